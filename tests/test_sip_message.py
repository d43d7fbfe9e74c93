"""The SIP parser against RFC 4475-style torture messages and fuzzed variants of them.

``tests/sip_corpus`` holds one message per file; its manifest says whether a receiver that
follows the parser's contract -- :func:`parse`, then :func:`parse_uri` on a request's URI,
:func:`parse_via` on the Vias and :func:`parse_name_addr` on From, To and Contact -- accepts
each message, or which of those layers rejects it and with which status. Whatever the input,
nothing but :class:`SipError` may come out of any of them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline.sip.message import (
    MAX_MESSAGE_SIZE,
    Headers,
    Message,
    Request,
    Response,
    SipError,
    parse,
    parse_cseq,
    parse_host_port,
    parse_name_addr,
    parse_params,
    parse_uri,
    parse_via,
    response_to,
    split_commas,
    stream_frames,
)

CORPUS = Path(__file__).parent / "sip_corpus"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "manifest.yaml").read_text(encoding="utf-8")
)
ACCEPTED = sorted(name for name, case in MANIFEST.items() if case["outcome"] == "ok")
REJECTED = sorted(name for name, case in MANIFEST.items() if case["outcome"] == "error")


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def message(name: str) -> Message:
    return parse(corpus(name))


def request(name: str) -> Request:
    msg = parse(corpus(name))
    assert isinstance(msg, Request)
    return msg


def readers(msg: Message) -> list[tuple[str, Callable[[], object]]]:
    """The typed readers a receiver applies, in the order it applies them."""
    out: list[tuple[str, Callable[[], object]]] = []
    if isinstance(msg, Request):
        out.append(("uri", partial(parse_uri, msg.uri)))
    out += [("via", partial(parse_via, v)) for v in msg.headers.get_all("Via")]
    out.append(("from", partial(parse_name_addr, msg.headers.get("From") or "")))
    out.append(("to", partial(parse_name_addr, msg.headers.get("To") or "")))
    out += [
        ("contact", partial(parse_name_addr, c))
        for c in msg.headers.get_all("Contact")
        if c != "*"
    ]
    return out


def first_rejection(data: bytes) -> tuple[str, int] | None:
    try:
        msg = parse(data)
    except SipError as err:
        return "message", err.status
    for layer, read in readers(msg):
        try:
            read()
        except SipError as err:
            return layer, err.status
    return None


# ---------------------------------------------------------------------------- the manifest
def test_manifest_lists_every_corpus_file_and_nothing_else() -> None:
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.sip")}
    assert on_disk == set(MANIFEST)
    assert all(MANIFEST[name]["outcome"] == "ok" for name in on_disk if name.startswith("valid/"))


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_by_every_layer(name: str) -> None:
    assert first_rejection(corpus(name)) is None


@pytest.mark.parametrize("name", REJECTED)
def test_rejected_by_the_expected_layer_with_the_expected_status(name: str) -> None:
    case = MANIFEST[name]
    assert first_rejection(corpus(name)) == (case["reader"], case["status"])


@pytest.mark.parametrize("name", ACCEPTED)
def test_round_trip(name: str) -> None:
    msg = message(name)
    again = parse(bytes(msg))
    assert type(again) is type(msg)
    if isinstance(msg, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri) == (msg.method, msg.uri)
    else:
        assert isinstance(again, Response)
        assert again.status == msg.status
        if msg.reason:
            assert again.reason == msg.reason
    # Content-Length is rewritten from the body; everything else must come back as it was
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in msg.headers if h[0] != "Content-Length"
    ]
    assert again.body == msg.body
    # and what the readers make of it, written out and read again, is the same
    for via in msg.headers.get_all("Via"):
        assert parse_via(str(parse_via(via))) == parse_via(via)
    for name_ in ("From", "To", "Contact"):
        for value in msg.headers.get_all(name_):
            if value != "*":
                addr = parse_name_addr(value)
                assert parse_name_addr(str(addr)) == addr


# ---------------------------------------------------------------------------- RFC 4475 §3.1.1
def test_short_tortuous_invite() -> None:
    req = request("valid/wsinv.sip")
    assert req.uri == "sip:agent.42@queue.hotline.example.com;unknownparam"
    assert parse_uri(req.uri).params == {"unknownparam": None}
    to = parse_name_addr(req.headers.get("To") or "")  # "TO :" then a folded value
    assert (to.uri, to.tag) == ("sip:agent.42@queue.hotline.example.com", "8843921x")
    sender = parse_name_addr(req.headers.get("From") or "")
    assert sender.display == 'Dana \\"Q\\" Caller'  # escaped backslashes, then escaped quotes
    assert sender.tag == "7fz0q1"
    assert req.headers.get("Max-Forwards") == "0069"
    assert req.cseq == (11, "INVITE")  # folded between number and method
    vias = [parse_via(v) for v in req.headers.get_all("Via")]
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "192.0.2.8", None, "z9hG4bKws1nv"),  # "SIP  /   2.0 /UDP" over three lines
        ("TCP", "relay.example.net", None, "z9hG4bK77ab"),  # compact "v", comma-joined
        ("UDP", "198.51.100.14", None, "z9hG4bK88cd"),
    ]
    assert req.headers.get("Subject") == ""  # "s :" with no value
    assert req.headers.get("SurpriseHeader") == "an odd value that goes on"
    assert req.headers.get("WeirdButLegal") == ";;,,;;,;"  # unknown header: left alone
    contact = parse_name_addr(req.headers.get("m") or "")
    assert contact.display == 'Quoted "name" here'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.5"}
    assert req.headers.get_all("Route") == [
        "<sip:edge.hotline.example.com;lr;unknownwith=value;unknown-no-value>"
    ]
    assert req.body.startswith(b"v=0\r\n") and len(req.body) == 134


def test_wide_range_of_valid_characters() -> None:
    req = request("valid/intmeth.sip")
    assert req.method == "!odd-Method0123456789_*+`.%indeed'~"
    assert req.cseq == (139122385, req.method)
    uri = parse_uri(req.uri)
    assert uri.user == "1_odd.URI~(for-real!yes)&isn't+it$/wild?,/;;*"  # "?" and ";" in a user
    assert uri.password == "&it+has=1,a!*pass$wo~d_too.(right-it)"
    assert (uri.host, uri.params, uri.headers) == ("example.com", {}, "")
    to = parse_name_addr(req.headers.get("To") or "")
    assert to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs may escape controls
    assert parse_uri(to.uri).user == "1_odd.URI~(for-real!yes)&isn't+it$/wild?,/;;*"
    sender = parse_name_addr(req.headers.get("From") or "")
    assert sender.display == "tok1~` tok2'+_ tok3*%!.-"
    assert sender.tag == "_tok~1'+`*%!-."
    assert sender.params["fromparam''~+*_!.-%"] == "%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82"
    assert req.call_id == "intmeth.w%ZK-!.*_+'@w`~)(><:\\/\"][?}{"
    assert parse_via(req.headers.get("Via") or "").branch == "z9hG4bK-.!%66*_+`'~"
    assert req.headers.get("extHeader-!.%*+_`'~") == "\ufeff大停電"


def test_percent_escapes_are_decoded_once() -> None:
    req = request("valid/esc01.sip")
    uri = parse_uri(req.uri)
    assert (uri.user, uri.host) == ("sips:agent@example.com", "example.net")
    assert str(uri) == req.uri  # written back escaped, not as "sip:sips:agent@example.com@..."
    assert parse_uri(parse_name_addr(req.headers.get("To") or "").uri).user == "agent"
    assert parse_uri(parse_name_addr(req.headers.get("From") or "").uri).user == "I have spaces"
    contact = parse_uri(parse_name_addr(req.headers.get("Contact") or "").uri)
    assert contact.user == "caller"
    assert contact.params == {"lr": None, "name": "value%41"}  # not "valueA"
    assert parse_uri(str(contact)) == contact
    assert req.call_id == "esc01.83kd9sl20dkfk-29xx"  # compact "i"
    assert req.headers.get("Content-Type") == "application/sdp"  # compact "C", upper case


def test_escaped_nulls_in_uris() -> None:
    req = request("valid/escnull.sip")
    assert parse_uri(parse_name_addr(req.headers.get("To") or "").uri).user == "null-\x00-null"
    users = [parse_uri(parse_name_addr(c).uri).user for c in req.headers.get_all("Contact")]
    assert users == ["\x00", "\x00\x00"]
    assert req.headers.get("Content-Length") == "0"  # "L:0"
    assert str(parse_uri("sip:%00%00@host5.example.com")) == "sip:%00%00@host5.example.com"


def test_percent_that_is_not_an_escape() -> None:
    req = request("valid/esc02.sip")
    assert req.method == "RE%47IST%45R"  # an unknown method, not REGISTER
    assert parse_name_addr(req.headers.get("To") or "").display == "%Z%45"
    # "C%6Fntact" is some other header, not a third Contact
    contacts = [parse_name_addr(c).uri for c in req.headers.get_all("Contact")]
    assert contacts == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert parse_via(req.headers.get("Via") or "").params == {
        "rport": None, "branch": "z9hG4bKesc02"
    }


def test_display_name_right_against_the_angle_bracket() -> None:
    sender = parse_name_addr(request("valid/lwsdisp.sip").headers.get("From") or "")
    assert (sender.display, sender.uri, sender.tag) == ("caller", "sip:caller@example.com", "3k2")


def test_long_values() -> None:
    req = request("valid/longreq.sip")
    assert parse_uri(req.uri).user == "user" + "x" * 1200
    to = parse_name_addr(req.headers.get("To") or "")
    assert to.display == "Long" * 300 and to.tag == "t" * 1000
    assert len(req.call_id) == len("longreq.@example.com") + 2000
    vias = [parse_via(v) for v in req.headers.get_all("Via")]
    assert [v.host for v in vias] == (
        [f"sip{n}.example.com" for n in range(20)]
        + [f"relay{n}.example.net" for n in range(20, 40)]
        + [f"192.0.2.{n}" for n in range(40, 50)]
    )
    assert vias[0].branch == "z9hG4bK" + "b" * 1000 + "0"
    assert vias[-1].port == 5109
    assert req.headers.get("Unknown-" + "Long" * 100 + "-Header") == "value " * 800 + "end"


def test_trailing_octets_after_content_length_are_cut() -> None:
    req = request("valid/dblreq.sip")
    assert req.method == "REGISTER"
    assert req.body == b""  # the INVITE glued behind it is not read
    assert b"INVITE sip:joe@example.org" in corpus("valid/dblreq.sip")


def test_semicolons_in_the_user_part() -> None:
    uri = parse_uri(request("valid/semiuri.sip").uri)
    assert (uri.user, uri.host, uri.params) == ("agent;par=u@example.net", "example.com", {})
    accept = request("valid/semiuri.sip").headers.get_all("Accept")  # folded comma list
    assert accept == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag",
    ]


def test_varied_and_unknown_transports() -> None:
    req = request("valid/transports.sip")
    assert [parse_via(v).transport for v in req.headers.get_all("Via")] == [
        "UDP", "SCTP", "TLS", "UNKNOWN", "TLS-SCTP", "WS", "TCP"
    ]


def test_multipart_body_is_kept_byte_for_byte() -> None:
    data = corpus("valid/mpart01.sip")
    req = request("valid/mpart01.sip")
    assert req.body == data[data.index(b"\r\n\r\n") + 4 :]
    assert bytes(range(256)) in req.body  # binary part, not UTF-8
    content_type = req.headers.get("Content-Type") or ""
    kind, _, params = content_type.partition(";")
    assert (kind, parse_params(params)) == ("multipart/mixed", {"boundary": "7jsR3.ql-9"})


def test_unusual_reason_phrase() -> None:
    resp = message("valid/unreason.sip")
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (200, "= 2**3 * 5**2 (двести; а 199 — простое)")


def test_empty_reason_phrase() -> None:
    resp = message("valid/noreason.sip")
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (100, "")


def test_unknown_schemes_in_header_fields() -> None:
    req = request("valid/novelsc.sip")
    assert parse_name_addr(req.headers.get("To") or "").uri == "isbn:9780132350884"
    assert parse_name_addr(req.headers.get("From") or "").uri == "http://www.example.com"
    contact = parse_name_addr(req.headers.get("Contact") or "").uri
    assert contact == "name:Jane_Doe"
    with pytest.raises(SipError) as err:
        parse_uri(contact)  # fine as an address, but not a URI we could send to
    assert err.value.status == 416


# ---------------------------------------------------------------------------- our valid cases
def test_ipv6_references() -> None:
    req = request("valid/ipv6.sip")
    uri = parse_uri(req.uri)
    assert (uri.host, uri.port, uri.params) == ("2001:db8::10", 5070, {"transport": "tcp"})
    assert str(uri) == req.uri
    top, second = (parse_via(v) for v in req.headers.get_all("Via"))
    assert (top.transport, top.host, top.port) == ("TCP", "2001:db8::9:1", 5061)
    assert top.params["received"] == "2001:db8::9:255"
    assert str(top) == req.headers.get("Via")
    assert (second.host, second.port) == ("2001:db8::20", None)  # lower-cased
    contact = parse_uri(parse_name_addr(req.headers.get("Contact") or "").uri)
    assert (contact.user, contact.host, contact.port) == ("caller", "2001:db8::9:1", 5061)


def test_compact_names_are_mapped() -> None:
    req = request("valid/compact.sip")
    assert [name for name, _ in req.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact", "Supported",
        "Supported", "Subject", "Content-Type", "Content-Length",
    ]
    assert req.call_id == "compact-9281@192.0.2.4"
    assert req.headers.get_all("k") == ["timer", "100rel"]
    assert req.body == b"Hello there"


def test_several_values_on_one_line() -> None:
    req = request("valid/multivalue.sip")
    assert [parse_via(v).branch for v in req.headers.get_all("Via")] == [
        "z9hG4bKmv1", "z9hG4bKmv2", "z9hG4bKmv3"
    ]
    assert req.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert len(req.headers.get_all("Record-Route")) == 2
    assert req.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"]
    contacts = [parse_name_addr(c) for c in req.headers.get_all("Contact")]
    assert [(c.display, c.uri, c.params["q"]) for c in contacts] == [
        ("Smith, John", "sip:john,work@192.0.2.30", "0.7"),  # commas in quotes and in <>
        (None, "sip:john@198.51.100.2", "0.3"),
    ]
    assert parse_name_addr(req.headers.get("From") or "").display == "Smith, John"
    # not a list header: its commas stay inside the one value
    assert len(req.headers.get_all("Authorization")) == 1
    assert (req.headers.get("Authorization") or "").endswith('"0123456789abcdef0123456789abcdef"')


def test_register_with_contact_star() -> None:
    req = request("valid/register-star.sip")
    assert req.headers.get_all("Contact") == ["*"]
    assert req.headers.get("Expires") == "0"


def test_options_without_body_needs_content_length_only_on_streams() -> None:
    data = corpus("valid/options-nobody.sip")
    assert parse(data).body == b""
    with pytest.raises(SipError):
        parse(data, stream=True)


def test_keepalive_crlfs_before_a_message() -> None:
    data = corpus("valid/keepalive.sip")
    assert data.startswith(b"\r\n\r\n\r\n")
    assert request("valid/keepalive.sip").method == "OPTIONS"


def test_bare_lf_line_ends() -> None:
    req = request("valid/barelf.sip")
    assert req.body == b"line one\nline two\n"
    assert req.cseq == (4, "MESSAGE")


# ---------------------------------------------------------------------------- invalid details
def test_escaped_headers_in_the_request_uri_are_exposed_not_applied() -> None:
    req = request("invalid/escruri.sip")
    uri = parse_uri(req.uri)
    assert (uri.user, uri.host) == ("agent", "hotline.example.com")
    assert uri.headers == "Route=%3Csip:evil.example.com%3E"
    assert "Route" not in req.headers


def test_bad_date_is_not_the_parsers_business() -> None:
    assert request("invalid/baddate.sip").headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


def test_size_cap() -> None:
    base = corpus("valid/options-nobody.sip")
    head, _, _ = base.partition(b"\r\n\r\n")
    padding = MAX_MESSAGE_SIZE - len(head) - len(b"\r\nX-Pad: \r\n\r\n")
    exact = head + b"\r\nX-Pad: " + b"p" * padding + b"\r\n\r\n"
    assert len(exact) == MAX_MESSAGE_SIZE
    assert len(parse(exact).headers.get("X-Pad") or "") == padding
    big = head + b"\r\nX-Pad: " + b"p" * 70_000 + b"\r\n\r\n"  # ~70 KB
    with pytest.raises(SipError) as err:
        parse(big)
    assert err.value.status == 513


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0 INVITE", True), ("2147483647 INVITE", True), ("2147483648 INVITE", False),
     ("4294967296 INVITE", False), ("+1 INVITE", False), ("١ INVITE", False),
     ("1_0 INVITE", False), ("1", False), ("1 INVITE x", False), ("9" * 5000 + " INVITE", False)],
)
def test_cseq_values(value: str, ok: bool) -> None:
    if ok:
        assert parse_cseq(value)[1] == "INVITE"
    else:
        with pytest.raises(SipError):
            parse_cseq(value)


# ---------------------------------------------------------------------------- stream framing
def framed(*names: str) -> list[bytes]:
    return [corpus(n).lstrip(b"\r\n") for n in names]


STREAM = ("valid/wsinv.sip", "valid/mpart01.sip", "valid/compact.sip", "valid/barelf.sip")


def test_several_messages_in_one_buffer() -> None:
    messages = framed(*STREAM)
    buffer = bytearray(b"".join(messages))
    assert list(stream_frames(buffer)) == messages
    assert buffer == b""
    assert [parse(f, stream=True).call_id for f in messages] == [
        parse(m).call_id for m in messages
    ]


def test_a_message_split_byte_by_byte() -> None:
    messages = framed(*STREAM)
    buffer = bytearray()
    frames: list[bytes] = []
    for byte in b"".join(messages):
        buffer.append(byte)
        frames += stream_frames(buffer)
    assert frames == messages
    assert buffer == b""


def test_keepalive_crlfs_between_messages() -> None:
    first, second = framed("valid/compact.sip", "valid/ipv6.sip")
    buffer = bytearray(b"\r\n\r\n" + first + b"\r\n" + second + b"\r\n\r\n\r\n")
    assert list(stream_frames(buffer)) == [first, second]
    assert buffer == b""
    buffer += b"\r"  # half a keep-alive, then the next message
    assert list(stream_frames(buffer)) == []
    buffer += b"\n" + first
    assert list(stream_frames(buffer)) == [first]


def test_lf_message_before_a_crlf_one_is_framed_at_its_own_blank_line() -> None:
    lf, crlf = framed("valid/barelf.sip", "valid/compact.sip")
    assert list(stream_frames(bytearray(lf + crlf))) == [lf, crlf]


def test_partial_message_waits_for_the_rest() -> None:
    whole = framed("valid/mpart01.sip")[0]
    buffer = bytearray(whole[:-10])
    assert list(stream_frames(buffer)) == []
    buffer += whole[-10:]
    assert list(stream_frames(buffer)) == [whole]


@pytest.mark.parametrize("name", ["valid/options-nobody.sip", "invalid/mcl01.sip",
                                  "invalid/badcl-text.sip", "invalid/ncl.sip"])
def test_stream_without_one_readable_content_length(name: str) -> None:
    with pytest.raises(SipError):
        list(stream_frames(bytearray(corpus(name))))


def test_stream_oversize() -> None:
    huge_length = corpus("valid/compact.sip").replace(b"l: 11", b"l: 70000")
    with pytest.raises(SipError) as err:
        list(stream_frames(bytearray(huge_length)))
    assert err.value.status == 513
    with pytest.raises(SipError) as err:  # a head that never ends
        list(stream_frames(bytearray(b"INVITE sip:x@example.com SIP/2.0\r\n" + b"X" * 70_000)))
    assert err.value.status == 513


# ---------------------------------------------------------------------------- response_to
def test_response_to_copies_the_transaction_headers() -> None:
    req = request("valid/multivalue.sip")
    resp = response_to(req, 180, to_tag="ring1")
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")  # all, in order
    for name in ("From", "Call-ID", "CSeq"):
        assert resp.headers.get(name) == req.headers.get(name)
    assert resp.headers.get("To") == "<sip:agent@hotline.example.com>;tag=ring1"
    assert "Contact" not in resp.headers and "Route" not in resp.headers
    again = parse(bytes(resp))
    assert parse_name_addr(again.headers.get("To") or "").tag == "ring1"
    assert again.headers.get_all("Via") == req.headers.get_all("Via")


def test_response_to_keeps_an_existing_to_tag() -> None:
    req = request("valid/wsinv.sip")  # To: ... ;   tag    = 8843921x
    resp = response_to(req, 200, to_tag="other")
    assert resp.headers.get("To") == req.headers.get("To")
    assert parse_name_addr(resp.headers.get("To") or "").tag == "8843921x"


def test_response_to_without_a_tag_leaves_to_alone() -> None:
    req = request("valid/multivalue.sip")
    assert response_to(req, 100).headers.get("To") == req.headers.get("To")


def test_a_tag_parameter_inside_the_uri_is_not_a_to_tag() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
                       ("From", "<sip:a@example.com>;tag=f"),
                       ("To", "<sip:b@example.com;tag=uri-param>"),
                       ("Call-ID", "c1"), ("CSeq", "1 INVITE"), ("Timestamp", "54")])
    req = Request("INVITE", "sip:b@example.com", headers)
    resp = response_to(req, 100, to_tag="t9")
    assert parse_name_addr(resp.headers.get("To") or "").tag == "t9"
    assert resp.headers.get("Timestamp") == "54"


# ---------------------------------------------------------------------------- fuzzing
SEEDS = [corpus(name) for name in ACCEPTED if name != "valid/longreq.sip"]
NOISE = b" \t:;,<>\"\\%@[]?=/"


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip bytes
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 1:  # truncate
            del buf[at:]
        elif op in (2, 3):  # duplicate or drop a line
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            lines[i:i + 1] = [lines[i], lines[i]] if op == 2 else []
            buf = bytearray(b"\n".join(lines))
        elif op == 4:  # line-end and NUL noise
            buf[at:at] = rng.choice([b"\r", b"\n", b"\x00", b"\r\n", b"\r\n "])
        elif op == 5:  # separators where they hurt
            buf[at:at] = bytes([rng.choice(NOISE)])
        else:  # cut a span out
            del buf[at:at + rng.randint(1, 20)]
    return bytes(buf)


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_messages_raise_only_sip_error(seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for _ in range(5_000):
        data = mutate(rng, rng.choice(SEEDS))
        try:
            msg = parse(data)
        except SipError:
            continue
        accepted += 1
        for _, read in readers(msg):
            with contextlib.suppress(SipError):
                read()
        number, method = msg.cseq  # checked by parse, so readable
        assert 0 <= number < 2**31
        if isinstance(msg, Request):
            assert method == msg.method
        # whatever was accepted can be written out and read back the same
        again = parse(bytes(msg))
        assert list(again.headers)[:-1] == [h for h in msg.headers if h[0] != "Content-Length"]
        assert again.body == msg.body
        if isinstance(msg, Request):
            parse(bytes(response_to(msg, 400, to_tag="x")))
    assert 500 < accepted < 5_000  # enough mutants get past parse() to exercise the readers


@pytest.mark.parametrize("seed", range(2))
def test_fuzzed_streams_raise_only_sip_error(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(500):
        data = b"".join(mutate(rng, rng.choice(SEEDS)) for _ in range(3))
        buffer = bytearray()
        try:
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 400)
                buffer += data[pos:pos + step]
                pos += step
                for frame in stream_frames(buffer):
                    with contextlib.suppress(SipError):
                        parse(frame, stream=True)
        except SipError:
            continue


# Starting points for the reader fuzz: every address-like value the accepted corpus holds.
HEADER_VALUES = sorted(
    {
        value
        for msg in map(message, ACCEPTED)
        for key, value in msg.headers
        if key in ("Via", "From", "To", "Contact", "Route", "Record-Route")
    }
    | {msg.uri for msg in map(message, ACCEPTED) if isinstance(msg, Request)}
)
ALPHABET = "sipSIP:/2.0UDP <>\"\\;,=@?%[]:19af .\t\x00\x7fé大-_~tag"


def test_readers_on_random_text_raise_only_sip_error() -> None:
    rng = random.Random(3261)
    for i in range(20_000):
        if i % 2:
            text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
        else:
            chars = list(rng.choice(HEADER_VALUES))
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(chars) + 1)
                if rng.random() < 0.5:
                    chars.insert(at, rng.choice(ALPHABET))
                else:
                    del chars[at:at + rng.randint(1, 5)]
            text = "".join(chars)
        for read in (parse_uri, parse_via, parse_name_addr, parse_params, parse_host_port,
                     parse_cseq, split_commas):
            try:
                result = read(text)
            except SipError:
                continue
            # what a reader accepts, written out, reads back the same
            if read in (parse_uri, parse_via, parse_name_addr):
                assert read(str(result)) == result, text
