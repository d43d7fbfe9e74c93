"""Media core: G.711 against its segment rules, RTP against RFC 3550 (and garbage), DTMF both
ways, prompt loading from every WAV flavour we accept, and the stereo call recorder."""

from __future__ import annotations

import contextlib
import random
import struct
import uuid
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hotline.media import g711, rtp
from hotline.media.dtmf import (
    EVENT_DIGITS,
    InbandDtmfDetector,
    TelephoneEventReceiver,
    telephone_event_payloads,
)
from hotline.media.recorder import AGENT, CALLER, StereoRecorder
from hotline.media.wav import PromptError, load_prompt, write_wav

ALL_CODES = bytes(range(256))
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)

# --------------------------------------------------------------------------- G.711


def test_g711_known_code_points() -> None:
    assert g711.ULAW_TO_LINEAR[0xFF] == 0
    assert g711.ULAW_TO_LINEAR[0x7F] == 0
    assert g711.ULAW_TO_LINEAR[0x80] == 32124  # largest positive µ-law level
    assert g711.ULAW_TO_LINEAR[0x00] == -32124
    assert g711.ALAW_TO_LINEAR[0xD5] == 8  # smallest positive A-law level
    assert g711.ALAW_TO_LINEAR[0x55] == -8
    assert g711.ALAW_TO_LINEAR[0xAA] == 32256
    assert g711.ALAW_TO_LINEAR[0x2A] == -32256
    for codec, byte in g711.SILENCE.items():
        assert abs(int(g711.decode(codec, bytes([byte]))[0])) <= 8
        assert g711.encode(codec, np.zeros(1, dtype=np.int16)) == bytes([byte])
    assert g711.PAYLOAD_TYPES == {"PCMU": 0, "PCMA": 8}


def test_g711_tables_are_int16_and_levels_symmetric() -> None:
    for table in (g711.ULAW_TO_LINEAR, g711.ALAW_TO_LINEAR):
        assert table.dtype == np.int16 and table.shape == (256,)
        levels = np.unique(table.astype(np.int64))
        assert np.array_equal(levels, -levels[::-1])  # every level has its mirror image


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_encode_decode_every_code(codec: str) -> None:
    decoded = g711.decode(codec, ALL_CODES)
    reencoded = g711.encode(codec, decoded)
    # Every level survives; a code maps back to itself unless another code shares its level.
    assert np.array_equal(g711.decode(codec, reencoded), decoded)
    values, counts = np.unique(decoded, return_counts=True)
    shared = set(values[counts > 1].tolist())
    for code in range(256):
        if int(decoded[code]) not in shared:
            assert reencoded[code] == code
    if codec == "PCMU":
        assert shared == {0}  # µ-law has a positive and a negative zero, 0xFF and 0x7F
        assert reencoded[0x7F] == reencoded[0xFF] == g711.SILENCE["PCMU"]
    else:
        assert shared == set()


def _ulaw_step(magnitude: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """G.711 µ-law: segment s holds biased magnitudes (|x| + 132) in [2**(7+s), 2**(8+s))."""
    segment = np.clip(np.floor(np.log2(magnitude + 132)).astype(np.int64) - 7, 0, 7)
    return np.left_shift(8, segment)


def _alaw_step(magnitude: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """G.711 A-law: segments 0 and 1 (|x| < 512) step by 16, each later one doubles."""
    segment = np.clip(np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int64) - 7, 0, 7)
    return np.left_shift(8, np.maximum(segment, 1))


def test_g711_quantisation_error_is_half_a_step_of_the_segment() -> None:
    x = ALL_INT16.astype(np.int64)
    magnitude = np.abs(x)
    for codec, step, clip in (("PCMU", _ulaw_step, 32635), ("PCMA", _alaw_step, 32767)):
        y = g711.decode(codec, g711.encode(codec, ALL_INT16)).astype(np.int64)
        error = np.abs(y - x)
        inside = magnitude <= clip
        assert np.all(error[inside] <= step(magnitude[inside]) // 2), codec
        # Beyond the largest level the output is that level (saturation, not wrap-around).
        top = int(y.max())
        assert np.all(y[x > top] == top) and np.all(y[x < -top] == -top)
        assert np.all(np.diff(y) >= 0), f"{codec} is not monotonic"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_encode_clips_and_rounds_other_dtypes(codec: str) -> None:
    values = np.array([1e9, -1e9, 1000.4, -0.2])
    expected = g711.encode(codec, np.array([32767, -32768, 1000, 0], dtype=np.int16))
    assert g711.encode(codec, values) == expected


def test_g711_transcoding_tables_agree_with_linear_path() -> None:
    u_to_a = g711.encode("PCMA", g711.decode("PCMU", ALL_CODES))
    a_to_u = g711.encode("PCMU", g711.decode("PCMA", ALL_CODES))
    assert ALL_CODES.translate(g711.ULAW_TO_ALAW) == u_to_a
    assert ALL_CODES.translate(g711.ALAW_TO_ULAW) == a_to_u
    assert g711.transcode("PCMU", "PCMA", ALL_CODES) == u_to_a
    assert g711.transcode("PCMA", "PCMA", b"\x01\x02") == b"\x01\x02"
    silence = bytes([g711.SILENCE["PCMU"]]) * 160
    assert silence.translate(g711.ULAW_TO_ALAW) == bytes([g711.SILENCE["PCMA"]]) * 160


def test_g711_unknown_codec_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="G722"):
        g711.decode("G722", b"\x00")
    with pytest.raises(ValueError):
        g711.encode("opus", np.zeros(4, dtype=np.int16))
    with pytest.raises(ValueError):
        g711.transcode("PCMU", "G729", b"\x00")


# --------------------------------------------------------------------------- RTP


def test_rtp_build_then_parse() -> None:
    data = rtp.build(8, True, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xd5" * 160)
    assert len(data) == 12 + 160
    assert data[0] == 0x80  # V=2, no padding, extension or CSRC
    packet = rtp.parse(data)
    assert packet is not None
    assert (packet.payload_type, packet.marker, packet.seq) == (8, True, 65535)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (
        0xFFFFFFFF,
        0xDEADBEEF,
        b"\xd5" * 160,
    )
    unmarked = rtp.parse(rtp.build(0, False, 1, 2, 3, b""))
    assert unmarked is not None and not unmarked.marker and unmarked.payload == b""


def test_rtp_parse_strips_csrcs_extension_and_padding() -> None:
    payload = b"hello world!"
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | 0, 7, 1234, 99)
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\x01" * 8
    padding = b"\x00\x00\x00\x04"
    packet = rtp.parse(header + csrcs + extension + payload + padding)
    assert packet is not None
    assert packet.payload == payload
    assert (packet.seq, packet.timestamp, packet.ssrc, packet.marker) == (7, 1234, 99, True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",
        b"\x80" * 11,
        struct.pack("!BBHII", 0x40, 0, 1, 2, 3) + b"x",  # version 1
        struct.pack("!BBHII", 0xC0, 0, 1, 2, 3) + b"x",  # version 3
        struct.pack("!BBHII", 0x8F, 0, 1, 2, 3) + b"\x00" * 40,  # 15 CSRCs need 60 bytes
        struct.pack("!BBHII", 0x90, 0, 1, 2, 3) + b"\x00\x00",  # extension header cut off
        struct.pack("!BBHII", 0x90, 0, 1, 2, 3) + struct.pack("!HH", 0, 3) + b"\x00" * 8,
        struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"abc\x00",  # padding count of zero
        struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"abc\x09",  # more padding than payload
        struct.pack("!BBHII", 0x80, 200, 1, 2, 3) + b"\x00" * 8,  # RTCP sender report
        struct.pack("!BBHII", 0x80, 201, 1, 2, 3) + b"\x00" * 8,  # RTCP receiver report
    ],
)
def test_rtp_parse_rejects_malformed(data: bytes) -> None:
    assert rtp.parse(data) is None


def test_rtp_parse_never_raises_on_garbage() -> None:
    rng = random.Random(3550)
    valid = rtp.build(0, False, 10, 20, 30, bytes(range(160)))
    accepted = 0
    for i in range(20000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 80))
        else:  # a valid packet with a few bytes corrupted and maybe cut short
            mutable = bytearray(valid[: rng.randrange(0, len(valid) + 1)])
            for _ in range(rng.randrange(1, 4)):
                if mutable:
                    mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable)
        packet = rtp.parse(data)
        if packet is not None:
            accepted += 1
            assert data[0] >> 6 == 2
            assert len(packet.payload) <= len(data) - 12
            assert 0 <= packet.payload_type < 128
    assert accepted > 0


def test_rtp_stream_advances_and_wraps() -> None:
    stream = rtp.RtpStream(0, random.Random(1))
    again = rtp.RtpStream(0, random.Random(1))
    assert (stream.seq, stream.timestamp, stream.ssrc) == (again.seq, again.timestamp, again.ssrc)
    stream.seq = 65534
    stream.timestamp = 2**32 - 160
    seen = []
    for i in range(4):
        packet = rtp.parse(stream.packet(b"\xff" * 160, 160, marker=i == 0))
        assert packet is not None
        seen.append((packet.seq, packet.timestamp, packet.marker, packet.ssrc))
    assert seen == [
        (65534, 2**32 - 160, True, stream.ssrc),
        (65535, 0, False, stream.ssrc),
        (0, 160, False, stream.ssrc),
        (1, 320, False, stream.ssrc),
    ]
    other = rtp.parse(stream.packet(b"", 0, payload_type=13))
    assert other is not None and other.payload_type == 13 and other.timestamp == 480


def test_rtp_stream_event_packets_follow_rfc4733() -> None:
    stream = rtp.RtpStream(0, random.Random(7))
    start_seq, start_ts = stream.seq, stream.timestamp
    packets = [rtp.parse(p) for p in stream.event_packets("7", payload_type=101)]
    assert all(p is not None for p in packets)
    parsed = [p for p in packets if p is not None]
    assert [p.seq for p in parsed] == [(start_seq + i) & 0xFFFF for i in range(len(parsed))]
    assert {p.timestamp for p in parsed} == {start_ts}
    assert [p.marker for p in parsed] == [True] + [False] * (len(parsed) - 1)
    assert {p.payload_type for p in parsed} == {101}
    assert stream.timestamp == (start_ts + 800) & 0xFFFFFFFF  # 100 ms at 8 kHz
    receiver = TelephoneEventReceiver()
    digits = [receiver.feed(p.payload, p.timestamp, p.marker) for p in parsed]
    assert [d for d in digits if d] == ["7"]


def _paced(count: int, seq0: int, ts0: int) -> list[rtp.RtpPacket]:
    return [
        rtp.RtpPacket(0, False, (seq0 + i) & 0xFFFF, (ts0 + 160 * i) & 0xFFFFFFFF, 42, b"")
        for i in range(count)
    ]


def test_rtp_receiver_perfect_stream_across_wraps() -> None:
    stats = rtp.RtpReceiverStats()
    # Sequence and timestamp both wrap within the stream.
    for i, packet in enumerate(_paced(1000, 65000, 2**32 - 40 * 160)):
        assert stats.update(packet, 100.0 + i * 0.020)
    assert stats.received == stats.expected == 1000
    assert stats.lost == 0
    assert stats.extended_max_seq == 65000 + 999
    assert stats.jitter < 1e-6


def test_rtp_receiver_counts_losses_reordering_and_duplicates() -> None:
    stats = rtp.RtpReceiverStats()
    packets = _paced(1000, 65500, 0)
    kept = [p for i, p in enumerate(packets) if i % 10 != 5]  # lose 10 %
    for i in range(0, len(kept) - 1, 7):  # swap neighbours now and then
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    for i, packet in enumerate(kept):
        stats.update(packet, i * 0.02)
    assert stats.received == 900
    assert stats.expected == 1000
    assert stats.lost == 100
    fraction, cumulative = stats.interval_report()
    assert fraction == (100 * 256) // 1000 and cumulative == 100
    assert stats.interval_report() == (0, 100)  # nothing new since
    stats.update(kept[-1], 100.0)  # a duplicate: counted, cannot make loss negative
    assert stats.received == 901 and stats.lost == 99


def test_rtp_receiver_jitter_matches_rfc3550_estimate() -> None:
    # Arrival noise uniform in ±5 ms: E|D| for the difference of two such is 2 * 5 / 3 ms.
    rng = random.Random(6)
    stats = rtp.RtpReceiverStats()
    values = []
    for i, packet in enumerate(_paced(6000, 0, 0)):
        stats.update(packet, i * 0.020 + rng.uniform(-0.005, 0.005))
        if i >= 1000:
            values.append(stats.jitter_ms)
    assert abs(sum(values) / len(values) - 10 / 3) < 0.2
    assert stats.jitter == pytest.approx(stats.jitter_ms * 8)


def test_rtp_receiver_ignores_events_for_jitter_when_told() -> None:
    stats = rtp.RtpReceiverStats()
    for i in range(50):
        stats.update(rtp.RtpPacket(101, i == 0, i, 8000, 5, b""), i * 0.02, timing=False)
    assert stats.jitter == 0.0 and stats.received == 50


def test_rtp_receiver_sequence_restart_and_new_ssrc() -> None:
    stats = rtp.RtpReceiverStats()
    for i, packet in enumerate(_paced(100, 1000, 0)):
        stats.update(packet, i * 0.02)
    # One stray packet far away is not believed ...
    assert not stats.update(rtp.RtpPacket(0, False, 30000, 0, 42, b""), 2.0)
    assert stats.received == 100 and stats.expected == 100
    # ... but two in a row mean the sender restarted its sequence numbers.
    assert not stats.update(rtp.RtpPacket(0, False, 40000, 0, 42, b""), 2.02)
    assert stats.update(rtp.RtpPacket(0, False, 40001, 160, 42, b""), 2.04)
    assert stats.received == 101 and stats.lost == 0
    # A new SSRC starts a new sequence space; totals carry on.
    for i in range(10):
        stats.update(rtp.RtpPacket(0, False, 7 + i, 0, 43, b""), 3.0 + i * 0.02)
    assert stats.ssrc == 43
    assert stats.received == 111 and stats.expected == 111 and stats.lost == 0


# --------------------------------------------------------------------------- RFC 4733


def test_telephone_event_payloads_layout() -> None:
    packets = telephone_event_payloads("#", duration_ms=100, volume=10, packet_ms=20)
    assert [marker for _, marker, _ in packets] == [True] + [False] * 6
    assert [duration for _, _, duration in packets] == [160, 320, 480, 640, 800, 800, 800]
    for payload, _, duration in packets:
        event, flags, field = struct.unpack("!BBH", payload)
        assert event == EVENT_DIGITS.index("#") == 11
        assert flags & 0x3F == 10 and field == duration
    assert [p[0][1] >> 7 for p in packets] == [0, 0, 0, 0, 1, 1, 1]
    assert struct.unpack("!B", telephone_event_payloads("d")[0][0][:1])[0] == 15
    short = telephone_event_payloads("1", duration_ms=20)
    assert [(m, d) for _, m, d in short] == [(True, 160), (False, 160), (False, 160)]
    for bad in ("E", "12", "", "x"):
        with pytest.raises(ValueError):
            telephone_event_payloads(bad)
    with pytest.raises(ValueError):
        telephone_event_payloads("1", volume=64)
    with pytest.raises(ValueError):
        telephone_event_payloads("1", duration_ms=9000)


def _press(digit: str, ts: int) -> list[tuple[bytes, int, bool]]:
    return [(p, ts, m) for p, m, _ in telephone_event_payloads(digit, duration_ms=120)]


def _receive(packets: list[tuple[bytes, int, bool]]) -> list[str]:
    receiver = TelephoneEventReceiver()
    return [d for d in (receiver.feed(*p) for p in packets) if d is not None]


def test_telephone_events_each_press_reported_once() -> None:
    presses = [_press(d, 1000 + 4000 * i) for i, d in enumerate("0123456789*#ABCD")]
    assert _receive([p for press in presses for p in press]) == list("0123456789*#ABCD")
    # The same key twice is two presses.
    assert _receive(_press("5", 0) + _press("5", 2000)) == ["5", "5"]


def test_telephone_events_survive_loss_and_retransmission() -> None:
    first, second, third = _press("1", 2**32 - 500), _press("2", 3000), _press("3", 6000)
    # Start lost (first packet seen is a continuation), end packets lost (next timestamp
    # starts the next press), every packet duplicated, and a late end packet of "1"
    # arriving during "3".
    packets = first[2:5] + second[:3] + [p for p in third for _ in range(2)]
    packets.insert(len(packets) - 3, first[-1])
    assert _receive(packets) == ["1", "2", "3"]
    # Only an end packet arrives: still one press.
    assert _receive([second[-1]] * 3) == ["2"]


def test_telephone_events_ignore_malformed_payloads() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.feed(b"\x01\x0a\x00", 100, True) is None  # shorter than 4 bytes
    assert receiver.feed(b"\x10\x0a\x00\xa0", 100, True) is None  # event 16: not DTMF
    assert receiver.feed(b"", 200, True) is None
    assert receiver.feed(b"\x09\x0a\x00\xa0", 300, True) == "9"


def test_telephone_event_long_press_split_in_segments_is_one_press() -> None:
    # RFC 4733 §2.5.2.3: a press longer than 0xFFFF samples continues as a new segment
    # whose timestamp is the previous one plus its duration.
    packets = [(struct.pack("!BBH", 4, 10, d), 5000, d == 160) for d in range(160, 65536, 160)]
    packets += [(struct.pack("!BBH", 4, 10, 0xFFFF), 5000, False)] * 3
    packets += [(struct.pack("!BBH", 4, 0x8A, 800), 5000 + 0xFFFF, False)] * 3
    assert _receive(packets) == ["4"]


# --------------------------------------------------------------------------- in-band DTMF

KEYS = {
    d: (r, c) for r, row in enumerate(("123A", "456B", "789C", "*0#D")) for c, d in enumerate(row)
}
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)


def _tone(
    freqs: list[tuple[float, float]], ms: float, rng: random.Random
) -> npt.NDArray[np.float64]:
    """Sum of sines given as (Hz, peak dBFS), with random phases."""
    t = np.arange(round(ms * 8)) / 8000.0
    out = np.zeros(len(t))
    for freq, dbfs in freqs:
        out += 32768 * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
    return out


def _dial(
    digits: str,
    rng: random.Random,
    on_ms: float = 60,
    off_ms: float = 60,
    row_db: float = -10,
    col_db: float = -10,
) -> npt.NDArray[np.float64]:
    parts = [np.zeros(round(off_ms * 8))]
    for digit in digits:
        r, c = KEYS[digit]
        parts.append(_tone([(ROWS[r], row_db), (COLS[c], col_db)], on_ms, rng))
        parts.append(np.zeros(round(off_ms * 8)))
    return np.concatenate(parts)


def _detect(signal: npt.NDArray[np.float64], rng: random.Random, **kw: float) -> list[str]:
    pcm = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
    detector = InbandDtmfDetector(**kw)
    found: list[str] = []
    i = 0
    while i < len(pcm):  # arbitrary chunk sizes, as packets and jitter buffers deliver them
        n = rng.choice([1, 7, 80, 160, 160, 160, 205, 240, 480, 1000])
        found += detector.feed(pcm[i : i + n])
        i += n
    return found


def test_inband_every_digit_once_in_order() -> None:
    rng = random.Random(1)
    for trial in range(5):  # different phases and block alignments
        lead = np.zeros(rng.randrange(205))
        signal = np.concatenate((lead, _dial(EVENT_DIGITS, rng)))
        assert _detect(signal, rng) == list(EVENT_DIGITS), trial


def test_inband_digits_through_ulaw_with_noise() -> None:
    rng = random.Random(2)
    nprng = np.random.default_rng(2)
    clean = _dial(EVENT_DIGITS, rng)
    tone_power = 2 * (32768 * 10 ** (-10 / 20)) ** 2 / 2  # two sines
    noisy = clean + nprng.normal(0, np.sqrt(tone_power / 100), len(clean))  # 20 dB SNR
    pcm = np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
    through = g711.decode("PCMU", g711.encode("PCMU", pcm)).astype(np.float64)
    assert _detect(through, rng) == list(EVENT_DIGITS)


def test_inband_quiet_digits_and_twist_limits() -> None:
    rng = random.Random(3)
    assert _detect(_dial("159#", rng, row_db=-28, col_db=-28), rng) == list("159#")
    # Column group louder by up to 8 dB (normal twist), row group by up to 4 dB (reverse).
    assert _detect(_dial("26", rng, row_db=-17, col_db=-10), rng) == list("26")
    assert _detect(_dial("26", rng, row_db=-10, col_db=-13), rng) == list("26")
    assert _detect(_dial("26", rng, row_db=-21, col_db=-10), rng) == []
    assert _detect(_dial("26", rng, row_db=-10, col_db=-16), rng) == []
    assert _detect(_dial("26", rng, row_db=-50, col_db=-50), rng) == []  # below the floor


def test_inband_long_press_once_and_rearm_after_gap() -> None:
    rng = random.Random(4)
    held = _dial("8", rng, on_ms=2000, off_ms=100)
    assert _detect(held, rng) == ["8"]
    assert _detect(_dial("88", rng, on_ms=80, off_ms=60), rng) == ["8", "8"]


def test_inband_duration_limits_at_every_block_alignment() -> None:
    # 55 ms is recognised however the tone straddles the 205-sample blocks; 25 ms never is.
    rng = random.Random(8)
    for lead in range(205):
        for on_ms, expected in ((55, ["0"]), (25, [])):
            signal = np.concatenate((np.zeros(lead), _dial("0", rng, on_ms=on_ms)))
            assert _detect(signal, rng) == expected, (lead, on_ms)


def _vowel(rng: random.Random, glide: float) -> npt.NDArray[np.float64]:
    f0 = rng.uniform(85, 300)
    formants = [
        (rng.uniform(600, 1000), rng.uniform(50, 100)),
        (rng.uniform(1100, 1800), rng.uniform(60, 130)),
        (rng.uniform(2200, 3000), rng.uniform(80, 200)),
    ]
    n = 800
    pitch = f0 * (1 + rng.choice([-glide, glide]) * np.linspace(-1, 1, n))
    phase = 2 * np.pi * np.cumsum(pitch) / 8000
    out = np.zeros(n)
    for k in range(1, int(3800 // f0) + 1):
        f = f0 * k
        # -6 dB/octave source and lips, times each two-pole resonance (centre F, bandwidth B).
        gain = k**-1.0
        for centre, bandwidth in formants:
            gain /= np.sqrt((1 - (f / centre) ** 2) ** 2 + (f * bandwidth / centre**2) ** 2)
        out += gain * np.sin(k * phase + rng.uniform(0, 6.3))
    return out * (32768 * 10 ** (-15 / 20) / np.sqrt(np.mean(out**2)))


def test_inband_no_digits_in_speech_noise_or_single_tones() -> None:
    rng = random.Random(5)
    nprng = np.random.default_rng(5)
    # Voiced "speech": 100 ms syllables, a random pitch each, 30 harmonics with random
    # amplitudes falling off with frequency.
    syllables = []
    for _ in range(300):
        f0 = rng.uniform(85, 300)
        harmonics = [
            (f0 * k, -12 - 20 * np.log10(k) - rng.uniform(0, 12))
            for k in range(1, 31)
            if f0 * k < 3800
        ]
        syllables.append(_tone(harmonics, 100, rng) / 4)
    assert _detect(np.concatenate(syllables), rng) == []
    # Two minutes of vowels, the classic talk-off risk: first formants in the row band,
    # second in the column band, three resonators of realistic bandwidth shaping a glottal
    # source whose pitch is steady or glides by ±3 % over each 100 ms syllable.
    vowels = [_vowel(rng, glide) for glide in (0.0, 0.03) for _ in range(600)]
    assert _detect(np.concatenate(vowels), rng) == []
    white = nprng.normal(0, 32768 * 10 ** (-12 / 20), 8000 * 10)
    assert _detect(white, rng) == []
    assert _detect(_tone([(440.0, -6)], 3000, rng), rng) == []
    for freq in ROWS + COLS:  # one tone of a pair is not a digit
        assert _detect(_tone([(freq, -10)], 500, rng), rng) == [], freq
    # A dial tone (350 + 440 Hz) and a ringback (440 + 480 Hz) are not digits either.
    assert _detect(_tone([(350.0, -13), (440.0, -13)], 2000, rng), rng) == []
    assert _detect(_tone([(440.0, -19), (480.0, -19)], 2000, rng), rng) == []


# --------------------------------------------------------------------------- WAV prompts


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WAVE"
    for chunk_id, data in chunks:
        body += chunk_id + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def _fmt_extensible(tag: int, channels: int, rate: int, bits: int) -> bytes:
    subformat = uuid.UUID(f"{tag:08x}-0000-0010-8000-00aa00389b71").bytes_le
    mask = (1 << channels) - 1
    return _fmt(0xFFFE, channels, rate, bits) + struct.pack("<HHI", 22, bits, mask) + subformat


def _wav(fmt: bytes, data: bytes) -> bytes:
    # An odd-sized unknown chunk before the data, as editors leave behind.
    return _riff((b"fmt ", fmt), (b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00"), (b"data", data))


SIGNAL = np.rint(20000 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype(np.int16)


def _as_int24(values: npt.NDArray[np.int64]) -> bytes:
    as_bytes = (values & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)
    return as_bytes[:, :3].tobytes()


@pytest.mark.parametrize(
    ("name", "fmt", "data", "tolerance"),
    [
        (
            "pcm8",
            _fmt(1, 1, 8000, 8),
            ((SIGNAL.astype(np.int64) >> 8) + 128).astype(np.uint8).tobytes(),
            256,
        ),
        ("pcm16", _fmt(1, 1, 8000, 16), SIGNAL.astype("<i2").tobytes(), 0),
        ("pcm24", _fmt(1, 1, 8000, 24), _as_int24(SIGNAL.astype(np.int64) << 8), 0),
        ("pcm32", _fmt(1, 1, 8000, 32), (SIGNAL.astype("<i4") << 16).tobytes(), 0),
        ("float32", _fmt(3, 1, 8000, 32), (SIGNAL / 32768).astype("<f4").tobytes(), 0),
        ("float64", _fmt(3, 1, 8000, 64), (SIGNAL / 32768).astype("<f8").tobytes(), 0),
        ("ext-pcm24", _fmt_extensible(1, 1, 8000, 24), _as_int24(SIGNAL.astype(np.int64) << 8), 0),
        ("ext-float", _fmt_extensible(3, 1, 8000, 32), (SIGNAL / 32768).astype("<f4").tobytes(), 0),
        ("ulaw", _fmt(7, 1, 8000, 8), g711.encode("PCMU", SIGNAL), 640),
        ("alaw", _fmt(6, 1, 8000, 8), g711.encode("PCMA", SIGNAL), 512),
    ],
)
def test_prompt_formats(name: str, fmt: bytes, data: bytes, tolerance: int, tmp_path: Path) -> None:
    blob = _wav(fmt, data)
    loaded = load_prompt(blob)
    assert loaded.dtype == np.int16 and loaded.shape == SIGNAL.shape, name
    assert np.abs(loaded.astype(np.int64) - SIGNAL).max() <= tolerance, name
    path = tmp_path / f"{name}.wav"
    path.write_bytes(blob)
    assert np.array_equal(load_prompt(path), loaded)
    assert np.array_equal(load_prompt(str(path)), loaded)


def test_prompt_g711_wav_is_decoded_exactly() -> None:
    data = g711.encode("PCMA", SIGNAL)
    assert np.array_equal(load_prompt(_wav(_fmt(6, 1, 8000, 8), data)), g711.decode("PCMA", data))


def test_prompt_channels_are_mixed_down() -> None:
    stereo = np.stack((SIGNAL, SIGNAL), axis=1).astype("<i2").tobytes()
    assert np.array_equal(load_prompt(_wav(_fmt(1, 2, 8000, 16), stereo)), SIGNAL)
    opposite = np.stack((SIGNAL, -SIGNAL), axis=1).astype("<i2").tobytes()
    assert not load_prompt(_wav(_fmt(1, 2, 8000, 16), opposite)).any()
    six = np.repeat(SIGNAL[:, None], 6, axis=1).astype("<i4") << 16
    assert np.array_equal(load_prompt(_wav(_fmt_extensible(1, 6, 8000, 32), six.tobytes())), SIGNAL)


def _spectrum_peak(pcm: npt.NDArray[np.int16], rate: int = 8000) -> tuple[float, float]:
    """(frequency of the strongest bin, share of the energy within ±20 Hz of it)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm)))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    peak = float(freqs[spectrum.argmax()])
    near = np.abs(freqs - peak) <= 20
    return peak, float(spectrum[near].sum() / spectrum.sum())


def test_prompt_44k1_stereo_resampled_to_8k_mono() -> None:
    rate, seconds = 44100, 2.0
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)
    data = np.stack((left, right), axis=1).astype("<f4").tobytes()
    pcm = load_prompt(_wav(_fmt(3, 2, rate, 32), data))
    assert len(pcm) == 16000
    peak, share = _spectrum_peak(pcm)
    assert abs(peak - 440) <= 1 and share > 0.99
    # 6 kHz is above the new Nyquist rate: filtered out, not folded down to 2 kHz.
    core = pcm[800:-800].astype(np.float64)
    assert abs(np.sqrt(np.mean(core**2)) / (0.5 * 32768 / np.sqrt(2)) - 1) < 0.02


def test_prompt_irregular_rate_and_streamed_size() -> None:
    rate = 11111  # 8000/11111 cannot be reduced: resampled by the nearest simple ratio
    t = np.arange(rate) / rate
    data = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype("<f4").tobytes()
    pcm = load_prompt(_wav(_fmt(3, 1, rate, 32), data))
    assert abs(len(pcm) - 8000) <= 1
    peak, share = _spectrum_peak(pcm)
    assert abs(peak - 1000) <= 1 and share > 0.99
    # A writer that could not seek back leaves the data size at 0xFFFFFFFF: read to the end.
    blob = bytearray(_riff((b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", SIGNAL.tobytes())))
    blob[40:44] = b"\xff\xff\xff\xff"
    assert np.array_equal(load_prompt(bytes(blob)), SIGNAL)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"ID3\x04\x00" + bytes(100), "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "not a RIFF/WAVE file"),
        (
            _riff((b"fmt ", _fmt(0x55, 1, 8000, 0)), (b"data", b"\x00" * 10)),
            r"unsupported format 0x55 \(MPEG",
        ),
        (
            _riff((b"fmt ", _fmt(0x11, 1, 8000, 4)), (b"data", b"\x00" * 10)),
            "unsupported format 0x11",
        ),
        (_riff((b"fmt ", _fmt(1, 1, 8000, 16))), "data chunk missing"),
        (_riff((b"fmt ", _fmt(1, 1, 8000, 16)), (b"junk", b"\x00" * 9)), "data chunk missing"),
        (_riff((b"data", b"\x00\x00")), "data chunk before fmt"),
        (_riff((b"junk", b"")), "fmt chunk missing"),
        (_riff((b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", b"")), "empty audio"),
        (_riff((b"fmt ", _fmt(1, 1, 8000, 16)), (b"data", b"\x00")), "empty audio"),
        (_riff((b"fmt ", _fmt(1, 1, 8000, 12)), (b"data", b"\x00\x00")), "unsupported sample size"),
        (_riff((b"fmt ", _fmt(1, 0, 8000, 16)), (b"data", b"\x00\x00")), "0 channels"),
        (_riff((b"fmt ", _fmt(1, 1, 0, 16)), (b"data", b"\x00\x00")), "sample rate"),
        (_riff((b"fmt ", b"\x01\x00\x01\x00")), "truncated fmt"),
        (_wav(_fmt(1, 1, 8000, 16), SIGNAL.tobytes())[:-100], "truncated"),
    ],
)
def test_prompt_errors_name_the_problem(blob: bytes, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        load_prompt(blob)


def test_prompt_length_guard_and_missing_file(tmp_path: Path) -> None:
    one_minute = _wav(_fmt(1, 1, 8000, 16), bytes(2 * 8000 * 60))
    assert len(load_prompt(one_minute, max_minutes=1)) == 8000 * 60
    with pytest.raises(PromptError, match=r"longer than 0\.5 minutes"):
        load_prompt(one_minute, max_minutes=0.5)
    with pytest.raises(PromptError, match="cannot read"):
        load_prompt(tmp_path / "absent.wav")
    with pytest.raises(PromptError, match="cannot read"):
        load_prompt(tmp_path)  # a directory


def test_prompt_garbage_only_ever_raises_prompt_error() -> None:
    rng = random.Random(9)
    good = _wav(_fmt_extensible(1, 2, 16000, 24), bytes(600))
    for cut in range(len(good)):
        with contextlib.suppress(PromptError):
            load_prompt(good[:cut])
    for _ in range(3000):
        blob = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        with contextlib.suppress(PromptError):
            load_prompt(bytes(blob))
        with contextlib.suppress(PromptError):
            load_prompt(b"RIFF" + rng.randbytes(4) + b"WAVE" + rng.randbytes(rng.randrange(60)))


def test_write_wav_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    write_wav(path, SIGNAL)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    assert np.array_equal(load_prompt(path), SIGNAL)
    stereo = np.stack((SIGNAL, np.zeros_like(SIGNAL)), axis=1)
    write_wav(path, stereo, rate=16000, channels=2)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, 16000, len(SIGNAL))
    assert len(load_prompt(path)) == len(SIGNAL) // 2


# --------------------------------------------------------------------------- recorder


def _read_stereo(path: Path) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return frames[:, 0], frames[:, 1]


def _sine(freq: float, start: int, n: int) -> npt.NDArray[np.int16]:
    return np.rint(8000 * np.sin(2 * np.pi * freq * (start + np.arange(n)) / 8000)).astype(np.int16)


def test_recorder_two_legs_with_jitter_and_a_gap(tmp_path: Path) -> None:
    rng = random.Random(11)
    path = tmp_path / "call.wav"
    seconds = 10
    recorder = StereoRecorder(path, flush_seconds=1.0)
    events = []
    for k in range(seconds * 50):
        events.append((k * 0.02 + rng.uniform(0, 0.015), CALLER, k))
        if not 150 <= k < 175:  # the agent's leg is silent from 3.0 s to 3.5 s
            events.append((k * 0.02 + rng.uniform(0, 0.015), AGENT, k))
    events.sort()
    for t, channel, k in events:
        freq = 440.0 if channel == CALLER else 1000.0
        recorder.write(channel, t, _sine(freq, k * 160, 160))
    assert recorder.duration == pytest.approx(seconds, abs=0.02)
    recorder.close()
    recorder.close()  # idempotent
    left, right = _read_stereo(path)
    assert abs(len(left) - seconds * 8000) <= 160
    assert _spectrum_peak(left)[0] == pytest.approx(440, abs=2)
    assert _spectrum_peak(right)[0] == pytest.approx(1000, abs=2)
    assert not right[3 * 8000 + 160 : int(3.5 * 8000) - 160].any()  # the gap is silence
    # Every sample written is in the file, in order: the caller's leg is one unbroken
    # stream, the agent's leg resumes within a packet of 3.5 s.
    assert np.array_equal(left[: seconds * 8000], _sine(440, 0, seconds * 8000))
    assert np.array_equal(right[: 3 * 8000], _sine(1000, 0, 3 * 8000))
    tail = _sine(1000, int(3.5 * 8000), int(6.5 * 8000))
    offsets = [
        at
        for at in range(int(3.5 * 8000) - 160, int(3.5 * 8000) + 161)
        if np.array_equal(right[at : at + len(tail)], tail)
    ]
    assert len(offsets) == 1


def test_recorder_contiguous_stream_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "exact.wav"
    with StereoRecorder(path) as recorder:
        for k in range(300):
            recorder.write(CALLER, k * 0.02, _sine(440, k * 160, 160))
            recorder.write(AGENT, k * 0.02, _sine(1000, k * 160, 160))
    left, right = _read_stereo(path)
    assert np.array_equal(left, _sine(440, 0, 300 * 160))
    assert np.array_equal(right, _sine(1000, 0, 300 * 160))


def test_voicemail_recorder_writes_one_channel_as_it_goes(tmp_path: Path) -> None:
    """A voicemail has only the caller: mono, written while the caller speaks (not held until
    the end), and a second channel is refused rather than silently dropped."""
    path = tmp_path / "voicemail.wav"
    caller = g711.encode("PCMU", _sine(440, 0, 200 * 160))
    recorder = StereoRecorder(path, channels=1, flush_seconds=1.0)
    for k in range(200):
        recorder.write_g711(CALLER, k * 0.02, "PCMU", caller[k * 160 : (k + 1) * 160])
    assert recorder.buffered_samples <= 8000 + 160  # at most a second held in memory
    with pytest.raises(ValueError):
        recorder.write(AGENT, 0.0, _sine(1000, 0, 160))
    recorder.close()
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 8000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.array_equal(data, g711.decode("PCMU", caller))
    assert recorder.duration == pytest.approx(4.0)


def test_recorder_keeps_g711_payloads_encoded_and_writes_what_they_decode_to(
    tmp_path: Path,
) -> None:
    """The media engine records packets as received (µ-law or A-law); the file holds exactly
    their decoded audio, also across a gap and mixed with linear writes."""
    caller = g711.encode("PCMU", _sine(440, 0, 300 * 160))
    agent = g711.encode("PCMA", _sine(1000, 0, 300 * 160))
    path = tmp_path / "g711.wav"
    with StereoRecorder(path, io=None) as recorder:
        for k in range(300):
            part = slice(k * 160, (k + 1) * 160)
            recorder.write_g711(CALLER, k * 0.02, "PCMU", caller[part])
            if not 100 <= k < 150:  # half a second of silence from the agent
                recorder.write_g711(AGENT, k * 0.02, "PCMA", agent[part])
    left, right = _read_stereo(path)
    assert np.array_equal(left, g711.decode("PCMU", caller))
    expected = g711.decode("PCMU", agent.translate(g711.ALAW_TO_ULAW))
    expected[100 * 160 : 150 * 160] = 0
    assert np.array_equal(right, expected)


def test_recorder_memory_is_bounded_even_with_one_quiet_leg(tmp_path: Path) -> None:
    rng = random.Random(12)
    for both in (True, False):
        path = tmp_path / f"long-{both}.wav"
        recorder = StereoRecorder(path, flush_seconds=1.0)
        peak = 0
        for k in range(60 * 50):
            chunk = _sine(300, k * 160, 160)
            recorder.write(CALLER, k * 0.02 + rng.uniform(0, 0.01), chunk)
            if both:
                recorder.write(AGENT, k * 0.02 + rng.uniform(0, 0.01), chunk)
            peak = max(peak, recorder.buffered_samples)
        assert peak < 3 * 1.0 * 8000
        recorder.close()
        left, right = _read_stereo(path)
        assert len(left) == 60 * 8000
        assert np.array_equal(left, _sine(300, 0, 60 * 8000))
        assert np.array_equal(right, left) if both else not right.any()


def test_recorder_never_drops_or_reorders_late_audio(tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    recorder = StereoRecorder(path)
    first = np.full(160, 1000, dtype=np.int16)
    late = np.full(160, 2000, dtype=np.int16)
    recorder.write(CALLER, 1.0, first)  # starts after a second of silence
    recorder.write(CALLER, 0.2, late)  # claims to be from before: appended after
    recorder.write(AGENT, 0.0, np.zeros(0, dtype=np.int16))  # empty chunks are fine
    assert recorder.duration == pytest.approx(1.04)
    recorder.close()
    with pytest.raises(ValueError):
        recorder.write(CALLER, 2.0, first)
    with StereoRecorder(tmp_path / "x.wav") as other, pytest.raises(ValueError):
        other.write(2, 0.0, first)
    left, right = _read_stereo(path)
    assert not left[:8000].any()
    assert np.array_equal(left[8000:], np.concatenate((first, late)))
    assert not right.any()
