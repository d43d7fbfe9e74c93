"""SDP parsing and offer/answer as Hotline meets them: real phones' offers, holds, refusals."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from hotline.sip.sdp import (
    MediaDescription,
    Negotiated,
    SdpError,
    SessionDescription,
    answer,
    negotiated_from_answer,
    offer,
    parse,
    serialise,
)

HOTLINE = "203.0.113.10"


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# Linphone desktop: opus first, several telephone-event clocks (only the 8 kHz one is ours),
# ICE, RTCP feedback, and a video stream that Hotline must refuse.
LINPHONE = crlf(
    """v=0
o=agent17 3092 1417 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=ice-pwd:32bd0e2a5c4b1e7a90e3f30b
a=ice-ufrag:6c1e2a4f
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=candidate:1 1 UDP 2130706431 192.168.1.20 7078 typ host
a=candidate:1 2 UDP 2130706430 192.168.1.20 7079 typ host
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack pli
"""
)

# baresip: LF line ends, bandwidth line, rtcp-mux, explicit ptime and sendrecv.
BARESIP = """v=0
o=- 1723538591 3170154419 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
m=audio 10008 RTP/AVP 96 9 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=ptime:20
a=sendrecv
a=label:1
"""

# Zoiper 5: telephone-event at 48 kHz listed before the 8 kHz one, GSM offered statically.
ZOIPER = crlf(
    """v=0
o=Z 0 1 IN IP4 192.168.0.101
s=Z
c=IN IP4 192.168.0.101
t=0 0
m=audio 8000 RTP/AVP 106 9 98 101 0 8 3
a=rtpmap:106 opus/48000/2
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
a=rtcp-mux
"""
)

# SIPp's stock UAC scenario: PCMU only, no DTMF.
SIPP = crlf(
    """v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""
)

# An ATA preferring A-law, static payload types only, 30 ms packets.
ATA_PCMA = crlf(
    """v=0
o=- 20518 0 IN IP4 198.51.100.7
s=SDP Data
c=IN IP4 198.51.100.7
t=0 0
m=audio 16400 RTP/AVP 8 0 18 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
"""
)

# RFC 4566 §5 example session, unchanged.
RFC4566_EXAMPLE = crlf(
    """v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
c=IN IP4 224.2.17.12/127
t=2873397496 2873404696
a=recvonly
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
"""
)

# A WebRTC gateway's offer: DTLS-SRTP only, which a plain RTP media server cannot take.
WEBRTC = crlf(
    """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Xq1K
a=ice-pwd:Zg3Jn6i0Y2hYv9mN5kP1qR7s
a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
"""
)

ALL_BODIES = [LINPHONE, BARESIP, ZOIPER, SIPP, ATA_PCMA, RFC4566_EXAMPLE, WEBRTC]


def body_lines(body: str) -> list[str]:
    return [line.rstrip("\r") for line in body.split("\n") if line.strip()]


# Parsing -----------------------------------------------------------------------------------


def test_parse_linphone_offer() -> None:
    sdp = parse(LINPHONE.encode())
    assert (sdp.origin_user, sdp.session_id, sdp.session_version) == ("agent17", 3092, 1417)
    assert sdp.origin_address == "192.168.1.20"
    assert sdp.session_name == "Talk"
    assert sdp.connection == "192.168.1.20"
    assert ("record", "off") in sdp.attributes
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 7078, "RTP/AVP")
    assert audio.formats == ["96", "97", "98", "0", "8", "18", "101", "99", "100"]
    rtpmap = audio.rtpmap()
    assert list(rtpmap) == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert rtpmap[96] == ("opus", 48000, 2)
    assert rtpmap[0] == ("PCMU", 8000, 1)  # static: no rtpmap line for it
    assert rtpmap[8] == ("PCMA", 8000, 1)
    assert rtpmap[18] == ("G729", 8000, 1)
    assert rtpmap[100] == ("telephone-event", 8000, 1)
    assert audio.fmtp() == {96: "useinbandfec=1", 97: "vbr=on", 98: "vbr=on", 18: "annexb=yes"}
    assert audio.attribute("rtcp") == "7079"
    assert audio.direction(sdp) == "sendrecv"
    assert audio.ptime is None
    assert (video.media, video.port) == ("video", 9078)
    assert video.rtpmap() == {96: ("VP8", 90000, 1), 97: ("H264", 90000, 1)}


def test_parse_accepts_lf_trailing_blanks_bandwidth_and_unknown_lines() -> None:
    body = "v=0 \no=- 1 2 IN IP4 10.0.0.5\t\ns=x\nt=0 0\ny=from the future\n\n"
    body += "m=audio 4000 RTP/AVP 0\nb=AS:64\nb=TIAS:64000\nq=what\na=x-vendor:1\n\n"
    sdp = parse(body)
    (audio,) = sdp.media
    assert sdp.other_lines == [("t", "0 0"), ("y", "from the future")]
    assert audio.other_lines == [("b", "AS:64"), ("b", "TIAS:64000"), ("q", "what")]
    assert audio.attributes == [("x-vendor", "1")]
    assert audio.connection is None


def test_parse_ipv6_multiple_times_port_count_and_rejected_stream() -> None:
    body = crlf(
        """v=0
o=bob 1 1 IN IP6 2001:db8::2
s=-
c=IN IP6 2001:db8::2
t=2873397496 2873404696
r=604800 3600 0 90000
t=0 0
m=audio 49170/2 RTP/AVP 0
m=video 0 RTP/AVP 31
"""
    )
    sdp = parse(body)
    assert sdp.connection == "2001:db8::2"
    assert sdp.connection_type == "IP6"
    assert sdp.origin_address_type == "IP6"
    assert [kind for kind, _ in sdp.other_lines] == ["t", "r", "t"]
    audio, video = sdp.media
    assert (audio.port, audio.port_count) == (49170, 2)
    assert video.port == 0
    assert serialise(sdp).decode() == body


def test_direction_comes_from_media_then_session_then_default() -> None:
    session_level = parse(SIPP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"))
    assert session_level.media[0].direction(session_level) == "sendonly"
    assert session_level.media[0].direction() == "sendrecv"
    both = parse(SIPP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n") + "a=inactive\r\n")
    assert both.media[0].direction(both) == "inactive"


def test_ptime_accepts_decimal_and_ignores_nonsense() -> None:
    for value, expected in [("20", 20), ("30.0", 30), (" 40", 40), ("0", None), ("x", None)]:
        sdp = parse(SIPP + f"a=ptime:{value}\r\n")
        assert sdp.media[0].ptime == expected


def test_broken_rtpmap_lines_are_ignored_not_fatal() -> None:
    sdp = parse(
        SIPP.replace("RTP/AVP 0", "RTP/AVP 0 96 97 98")
        + "a=rtpmap:96 opus\r\na=rtpmap:97 x/y\r\na=rtpmap:abc PCMU/8000\r\na=rtpmap:98\r\n"
    )
    assert sdp.media[0].rtpmap() == {0: ("PCMU", 8000, 1)}


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("", 1, "missing v="),
        ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", 1, "missing v="),
        ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n", 1, "version"),
        ("v=0\r\ns=x\r\n", None, "no o= line"),
        ("v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", 2, "o= needs"),
        ("v=0\r\no=- one 1 IN IP4 1.2.3.4\r\n", 2, "session id"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio\r\n", 4, "m= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 5x RTP/AVP 0\r\n", 3, "port"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", 3, "out of range"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio -1 RTP/AVP 0\r\n", 3, "port"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000/0 RTP/AVP 0\r\n", 3, "port count"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", 3, "c= needs"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=ATM NSAP x\r\n", 3, "network type"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nhello\r\n", 3, "<type>=<value>"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\n1=x\r\n", 3, "<type>=<value>"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=a\rb\r\n", 3, "control character"),
        ("v=0\r\nv=0\r\n", 2, "second v="),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=a\r\ns=b\r\n", 4, "second s="),
    ],
)
def test_malformed_bodies_name_the_line(body: str, line: int | None, words: str) -> None:
    with pytest.raises(SdpError) as caught:
        parse(body)
    assert words in str(caught.value)
    assert caught.value.line == line
    if line is not None:
        assert f"line {line}" in str(caught.value)


def test_sdp_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("garbage")


# Serialisation -----------------------------------------------------------------------------


@pytest.mark.parametrize("body", ALL_BODIES)
def test_round_trip_preserves_every_line(body: str) -> None:
    out = serialise(parse(body))
    assert out.endswith(b"\r\n")
    assert body_lines(out.decode()) == body_lines(body)


def test_round_trip_puts_lines_in_rfc_order_and_keeps_latin1_bytes() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=Caf\xe9\r\nt=0 0\r\nb=AS:1\r\nc=IN IP4 10.0.0.1\r\n"
        b"a=tool:x\r\nk=prompt\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\nb=AS:2\r\n"
        b"c=IN IP4 10.0.0.2\r\ni=voice\r\n"
    )
    out = serialise(parse(body))
    assert out == (
        b"v=0\r\no=- 1 1 IN IP4 h\r\ns=Caf\xe9\r\nc=IN IP4 10.0.0.1\r\nb=AS:1\r\nt=0 0\r\n"
        b"k=prompt\r\na=tool:x\r\nm=audio 4000 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 10.0.0.2\r\n"
        b"b=AS:2\r\na=sendonly\r\n"
    )


def test_serialise_is_strict_about_what_it_writes() -> None:
    sdp = SessionDescription("-", 1, 1, "2001:db8::1", session_name="", connection="2001:db8::1")
    sdp.media.append(MediaDescription("audio", 4000, "RTP/AVP", ["0"], attributes=[("flag", None)]))
    assert serialise(sdp) == (
        b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns= \r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\na=flag\r\n"
    )
    sdp.session_name = "two\r\nlines"
    with pytest.raises(SdpError):
        serialise(sdp)


# Answering phones' offers ------------------------------------------------------------------


def answer_to(
    body: str, codecs: Sequence[str] = ("PCMU", "PCMA")
) -> tuple[SessionDescription, Negotiated]:
    return answer(parse(body), HOTLINE, 30000, codecs, session_id=42)


def test_answer_linphone_picks_pcmu_and_the_8khz_dtmf_and_refuses_video() -> None:
    sdp, negotiated = answer_to(LINPHONE)
    assert negotiated == Negotiated(
        codec="PCMU",
        payload_type=0,
        dtmf_payload_type=100,
        remote_address="192.168.1.20",
        remote_port=7078,
        direction="sendrecv",
        ptime=20,
    )
    assert negotiated.sends and negotiated.receives
    audio, video = sdp.media
    assert (audio.port, audio.proto, audio.formats) == (30000, "RTP/AVP", ["0", "100"])
    assert audio.rtpmap() == {0: ("PCMU", 8000, 1), 100: ("telephone-event", 8000, 1)}
    assert audio.fmtp() == {100: "0-15"}
    assert audio.direction(sdp) == "sendrecv"
    assert audio.attribute("ptime") is None  # not offered, so not answered
    assert (video.media, video.port, video.proto) == ("video", 0, "RTP/AVP")
    assert video.formats == ["96", "97"]
    assert (sdp.connection, sdp.session_id, sdp.origin_address) == (HOTLINE, 42, HOTLINE)


def test_answer_is_valid_sdp_with_the_offer_shape() -> None:
    sdp, _ = answer_to(LINPHONE)
    text = serialise(sdp).decode()
    assert text == crlf(
        f"""v=0
o=- 42 1 IN IP4 {HOTLINE}
s=Hotline
c=IN IP4 {HOTLINE}
t=0 0
m=audio 30000 RTP/AVP 0 100
a=rtpmap:0 PCMU/8000
a=rtpmap:100 telephone-event/8000
a=fmtp:100 0-15
a=sendrecv
m=video 0 RTP/AVP 96 97
"""
    )
    assert serialise(parse(text)).decode() == text


def test_answer_baresip_mirrors_ptime() -> None:
    sdp, negotiated = answer_to(BARESIP)
    assert (negotiated.codec, negotiated.payload_type, negotiated.dtmf_payload_type) == (
        "PCMU",
        0,
        101,
    )
    assert negotiated.remote_address == "10.0.0.5"
    assert negotiated.remote_port == 10008
    assert sdp.media[0].attribute("ptime") == "20"


def test_answer_zoiper_follows_the_offerers_preference_within_our_codecs() -> None:
    _, negotiated = answer_to(ZOIPER)
    assert (negotiated.codec, negotiated.payload_type, negotiated.dtmf_payload_type) == (
        "PCMU",
        0,
        101,
    )
    sdp, alaw_only = answer_to(ZOIPER, codecs=("pcma",))
    assert (alaw_only.codec, alaw_only.payload_type) == ("PCMA", 8)
    assert sdp.media[0].formats == ["8", "101"]


def test_answer_ata_prefers_pcma_when_offered_first_and_uses_30ms() -> None:
    sdp, negotiated = answer_to(ATA_PCMA)
    assert (negotiated.codec, negotiated.payload_type, negotiated.ptime) == ("PCMA", 8, 30)
    assert sdp.media[0].attribute("ptime") == "30"


def test_answer_sipp_without_dtmf() -> None:
    sdp, negotiated = answer_to(SIPP)
    assert negotiated.dtmf_payload_type is None
    assert sdp.media[0].formats == ["0"]


def test_answer_dynamic_payload_type_for_g711_and_case_insensitive_names() -> None:
    body = SIPP.replace("RTP/AVP 0", "RTP/AVPF 96").replace(
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:96 pcma/8000"
    )
    sdp, negotiated = answer_to(body)
    assert (negotiated.codec, negotiated.payload_type) == ("PCMA", 96)
    assert sdp.media[0].proto == "RTP/AVPF"
    assert sdp.media[0].rtpmap() == {96: ("PCMA", 8000, 1)}


def test_answer_uses_media_level_connection_and_ipv6() -> None:
    body = crlf(
        """v=0
o=- 7 7 IN IP6 2001:db8::7
s=-
c=IN IP6 2001:db8::7
t=0 0
m=audio 5004 RTP/AVP 8
c=IN IP6 2001:db8::99
"""
    )
    sdp, negotiated = answer(parse(body), "2001:db8::10", 40000, session_id=1)
    assert negotiated.remote_address == "2001:db8::99"
    assert b"c=IN IP6 2001:db8::10\r\n" in serialise(sdp)


def test_answer_skips_earlier_streams_it_cannot_use() -> None:
    body = crlf(
        """v=0
o=- 1 1 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 0 RTP/AVP 0
m=audio 5000 RTP/SAVP 0
m=video 5002 RTP/AVP 31
m=audio 5004 RTP/AVP 0
"""
    )
    sdp, negotiated = answer_to(body)
    assert negotiated.remote_port == 5004
    assert [m.port for m in sdp.media] == [0, 0, 0, 30000]
    assert [m.proto for m in sdp.media] == ["RTP/AVP", "RTP/SAVP", "RTP/AVP", "RTP/AVP"]


@pytest.mark.parametrize(
    ("offered", "answered", "ours"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "recvonly", "recvonly"),
        ("recvonly", "sendonly", "sendonly"),
        ("inactive", "inactive", "inactive"),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str, ours: str) -> None:
    sdp, negotiated = answer_to(BARESIP.replace("a=sendrecv", f"a={offered}"))
    assert sdp.media[0].direction(sdp) == answered
    assert negotiated.direction == ours


def test_hold_with_sendonly_means_hotline_must_not_send() -> None:
    _, negotiated = answer_to(ZOIPER.replace("a=sendrecv", "a=sendonly"))
    assert negotiated.direction == "recvonly"
    assert not negotiated.sends and negotiated.receives


def test_hold_with_session_level_inactive() -> None:
    _, negotiated = answer_to(SIPP.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n"))
    assert negotiated.direction == "inactive"


def test_hold_with_null_address_rfc2543_style() -> None:
    held = BARESIP.replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0")
    sdp, negotiated = answer_to(held)
    assert negotiated.remote_address == "0.0.0.0"
    assert negotiated.direction == "recvonly"
    assert not negotiated.sends
    assert sdp.media[0].direction(sdp) == "recvonly"
    _, both_off = answer_to(held.replace("a=sendrecv", "a=recvonly"))
    assert both_off.direction == "inactive"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (SIPP.replace("RTP/AVP 0", "RTP/AVP 96").replace("0 PCMU", "96 opus/48000/2 x"), "none"),
        (
            BARESIP.replace("96 9 0 8 101", "96").replace("a=rtpmap:0 PCMU/8000\n", ""),
            "none of PCMU, PCMA",
        ),
        (SIPP.replace("RTP/AVP", "RTP/SAVP"), "no RTP/AVP audio"),
        (WEBRTC, "no RTP/AVP audio"),
        (SIPP.replace("m=audio 6000", "m=audio 0"), "no RTP/AVP audio"),
        (SIPP.replace("m=audio", "m=video"), "no RTP/AVP audio"),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n", "no RTP/AVP audio"),
        (SIPP.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU/16000"), "none of"),
        (SIPP.replace("c=IN IP4 127.0.0.1\r\n", ""), "no c= line"),
    ],
)
def test_unacceptable_offers_raise_for_488(body: str, words: str) -> None:
    with pytest.raises(SdpError) as caught:
        answer_to(body)
    assert words in str(caught.value)


def test_only_opus_offer_is_refused() -> None:
    only_opus = crlf(
        """v=0
o=- 5 5 IN IP4 10.0.0.9
s=-
c=IN IP4 10.0.0.9
t=0 0
m=audio 4000 RTP/AVP 111 126
a=rtpmap:111 opus/48000/2
a=rtpmap:126 telephone-event/8000
"""
    )
    with pytest.raises(SdpError, match="none of PCMU, PCMA"):
        answer_to(only_opus)


def test_pcmu_only_service_refuses_pcma_only_phone() -> None:
    with pytest.raises(SdpError):
        answer_to(ATA_PCMA.replace("8 0 18 101", "8 18 101"), codecs=["PCMU"])


def test_answer_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        answer(parse(SIPP), HOTLINE, 30000, codecs=["G729"])
    with pytest.raises(ValueError):
        answer(parse(SIPP), HOTLINE, 0)


def test_answer_without_session_id_makes_one_up() -> None:
    first, _ = answer(parse(SIPP), HOTLINE, 30000)
    second, _ = answer(parse(SIPP), HOTLINE, 30000)
    assert first.session_id != second.session_id
    assert 0 <= first.session_id < 2**63


# Hotline's own offers ----------------------------------------------------------------------


def test_offer_for_an_agent_phone() -> None:
    sdp = offer(HOTLINE, 31000, session_id=7)
    assert serialise(sdp).decode() == crlf(
        f"""v=0
o=- 7 1 IN IP4 {HOTLINE}
s=Hotline
c=IN IP4 {HOTLINE}
t=0 0
m=audio 31000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""
    )


def test_offer_options() -> None:
    sdp = offer(
        "2001:db8::10",
        31000,
        codecs=("PCMA",),
        dtmf_payload_type=None,
        session_id=7,
        session_version=3,
        direction="sendonly",
    )
    (audio,) = sdp.media
    assert audio.formats == ["8"]
    assert audio.direction(sdp) == "sendonly"
    assert sdp.session_version == 3
    assert b"o=- 7 3 IN IP6 2001:db8::10\r\n" in serialise(sdp)
    with pytest.raises(ValueError):
        offer(HOTLINE, 31000, codecs=(), session_id=1)
    with pytest.raises(ValueError):
        offer(HOTLINE, 31000, dtmf_payload_type=8, session_id=1)
    with pytest.raises(ValueError):
        offer(HOTLINE, 31000, session_id=1, direction="both")
    with pytest.raises(ValueError):
        offer(HOTLINE, 31000, session_id=1, ptime=0)


def phone_answer(media_line: str, *extra: str, connection: str = "192.168.1.20") -> str:
    return crlf(
        "\n".join(
            [
                "v=0",
                "o=agent17 99 100 IN IP4 192.168.1.20",
                "s=Talk",
                f"c=IN IP4 {connection}",
                "t=0 0",
                media_line,
                *extra,
                "",
            ]
        )
    )


def test_negotiated_from_a_phones_answer() -> None:
    ours = offer(HOTLINE, 31000, session_id=7)
    theirs = parse(
        phone_answer(
            "m=audio 7078 RTP/AVP 8 101",
            "a=rtpmap:101 telephone-event/8000",
            "a=ptime:30",
        )
    )
    assert negotiated_from_answer(ours, theirs) == Negotiated(
        codec="PCMA",
        payload_type=8,
        dtmf_payload_type=101,
        remote_address="192.168.1.20",
        remote_port=7078,
        direction="sendrecv",
        ptime=30,
    )


def test_negotiated_takes_the_first_offered_codec_in_the_answer() -> None:
    ours = offer(HOTLINE, 31000, session_id=7)
    theirs = parse(
        phone_answer("m=audio 7078 RTP/AVP 96 0 8", "a=rtpmap:96 opus/48000/2", "a=ptime:20")
    )
    negotiated = negotiated_from_answer(ours, theirs)
    assert (negotiated.codec, negotiated.payload_type) == ("PCMU", 0)
    assert negotiated.dtmf_payload_type is None


def test_negotiated_direction_and_hold_in_the_answer() -> None:
    ours = offer(HOTLINE, 31000, session_id=7)
    recvonly = parse(phone_answer("m=audio 7078 RTP/AVP 0", "a=recvonly"))
    assert negotiated_from_answer(ours, recvonly).direction == "sendonly"
    null = parse(phone_answer("m=audio 7078 RTP/AVP 0", connection="0.0.0.0"))
    assert negotiated_from_answer(ours, null).direction == "recvonly"
    announcement = offer(HOTLINE, 31000, session_id=7, direction="sendonly")
    plain = parse(phone_answer("m=audio 7078 RTP/AVP 0"))
    assert negotiated_from_answer(announcement, plain).direction == "sendonly"


@pytest.mark.parametrize(
    "body",
    [
        phone_answer("m=audio 0 RTP/AVP 0"),
        phone_answer("m=audio 7078 RTP/AVP 18"),
        phone_answer("m=audio 7078 RTP/AVP 96", "a=rtpmap:96 opus/48000/2"),
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\n",
        phone_answer("m=audio 7078 RTP/AVP 0", connection="x").replace("c=IN IP4 x\r\n", ""),
    ],
)
def test_refused_answers_raise(body: str) -> None:
    with pytest.raises(SdpError):
        negotiated_from_answer(offer(HOTLINE, 31000, session_id=7), parse(body))


def test_full_exchange_between_two_hotlines() -> None:
    ours = offer(HOTLINE, 31000, codecs=("PCMA", "PCMU"), session_id=7)
    their_sdp, theirs = answer(parse(serialise(ours)), "198.51.100.1", 42000, session_id=9)
    mine = negotiated_from_answer(ours, parse(serialise(their_sdp)))
    assert (theirs.codec, mine.codec) == ("PCMA", "PCMA")
    assert (theirs.remote_port, mine.remote_port) == (31000, 42000)
    assert (theirs.dtmf_payload_type, mine.dtmf_payload_type) == (101, 101)
    assert (theirs.ptime, mine.ptime) == (20, 20)


# Fuzzing -----------------------------------------------------------------------------------


def mutate(rng: random.Random, body: str) -> str:
    lines = body.split("\r\n")
    for _ in range(rng.randrange(1, 5)):
        action = rng.randrange(6)
        index = rng.randrange(len(lines))
        if action == 0:
            del lines[index]
            if not lines:
                lines = [""]
        elif action == 1:
            lines.insert(index, rng.choice(lines))
        elif action == 2:
            lines[index], lines[-1] = lines[-1], lines[index]
        else:
            line = list(lines[index])
            position = rng.randrange(len(line) + 1)
            noise = rng.choice(" /:=\t\r\n\x00-0123456789aém\ud800\udce9xyz")
            if action == 3 or not line:
                line.insert(position, noise)
            elif action == 4:
                del line[min(position, len(line) - 1)]
            else:
                line[min(position, len(line) - 1)] = noise
            lines[index] = "".join(line)
    return "\r\n".join(lines)


def test_mutated_bodies_only_ever_raise_sdp_error() -> None:
    rng = random.Random(4566)
    parsed = answered = 0
    for _ in range(4000):
        body = mutate(rng, rng.choice(ALL_BODIES).replace("\r\n", "\n").replace("\n", "\r\n"))
        try:
            sdp = parse(body.encode("utf-8", "surrogatepass") if rng.random() < 0.3 else body)
        except SdpError:
            continue
        parsed += 1
        out = serialise(sdp)
        assert parse(out) == sdp, "serialise then parse must be lossless"
        try:
            answer(sdp, HOTLINE, 30000, session_id=1)
        except SdpError:
            continue
        answered += 1
    assert parsed > 1000 and answered > 500


def test_a_media_address_that_is_a_host_name_is_refused() -> None:
    """Resolving it would stall the media loop on DNS for every packet: answer 488 instead."""
    named = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 rtp.example.com\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\n"
    )
    with pytest.raises(SdpError, match="not an IP address"):
        answer(named, HOTLINE, 20000)
