"""Malformed, torture and hostile SIP sent to the running server: each broken request that
carries what a response needs (Via, From, To, Call-ID, CSeq) is answered with the error a
sender can act on, nothing else is answered, nothing stops the server, and calls still work
afterwards — over UDP, and over TCP, where a framing error closes only that connection.

The messages are the parser's corpus (``tests/sip_corpus``, RFC 4475 and more; the manifest
says how each must be judged), random bytes and messages as large as a datagram can be."""

from __future__ import annotations

import contextlib
import random
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline.sip.message import MAX_MESSAGE_SIZE

from .peers import REPO, PhoneFactory, Sipp, assert_tone, free_ports, pcmu_pcap
from .server import (
    CallCenter,
    HotlineServer,
    SipClient,
    SipMessage,
    agent_phone,
    fresh_loopback,
    sip_client,
)

CORPUS = REPO / "tests" / "sip_corpus"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "manifest.yaml").read_text(encoding="utf-8"))
# the statuses that say "your message is malformed" (rather than "no such number", ...)
MALFORMED = {400, 416, 505, 513}
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4
Tone = Callable[..., Path]

_HEAD_FIELD = re.compile(rb"(?im)^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:(.*)$")
_CALL_ID = re.compile(rb"(?im)^(?:call-id|i)[ \t]*:[ \t]*(.*?)[ \t]*\r?$")
_FULL = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id"}


def head(data: bytes) -> bytes:
    return re.split(rb"\r?\n\r?\n", data.lstrip(b"\r\n"), maxsplit=1)[0]


def is_response(data: bytes) -> bool:
    return data.lstrip(b"\r\n").startswith(b"SIP/")


def _text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def answerable(data: bytes) -> bool:
    """A request with the five header fields a response is made of (RFC 3261 §8.2.6.2), as
    text (a response carries them back, and SIP text is UTF-8)."""
    fields = _HEAD_FIELD.findall(head(data))
    names = {_FULL.get(n.lower(), n.lower()) for n, _ in fields}
    return (not is_response(data) and names == {b"via", b"from", b"to", b"call-id", b"cseq"}
            and all(_text(value) for _, value in fields))


def call_id_of(data: bytes) -> str | None:
    m = _CALL_ID.search(head(data))
    return m.group(1).decode("utf-8", errors="replace") if m else None


def finals(answers: list[SipMessage]) -> list[int]:
    return [m.status for m in answers if m.status is not None and m.status >= 200]


@pytest.fixture
def client(hotline: HotlineServer) -> Iterator[SipClient]:
    """A SIP socket on a loopback address of its own: the guard's budget for an unknown
    address (a burst of 40 requests) is the test's alone."""
    with sip_client(hotline, fresh_loopback()) as c:
        yield c


@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if n.startswith("invalid/")))
def test_broken_message_is_answered_with_its_error_or_not_at_all(
    client: SipClient, name: str,
) -> None:
    case = MANIFEST[name]
    data = (CORPUS / name).read_bytes()
    answers = client.answers(data, call_id_of(data))
    if not answerable(data):
        assert answers == [], f"{case['case']}: answered {[m.start for m in answers]}"
        return
    statuses = finals(answers)
    assert len(statuses) == 1, f"{case['case']}: final responses {[m.start for m in answers]}"
    if case["outcome"] == "ok":  # the manifest's two that a receiver may accept
        return
    if case["reader"] in ("message", "uri", "via"):  # the status the parser's error carries
        assert statuses == [case["status"]], f"{case['case']}: {[m.start for m in answers]}"
    else:  # a From, To or Contact no one can read: refused, whatever else is wrong
        assert statuses[0] >= 400, f"{case['case']}: {[m.start for m in answers]}"
    response = next(m for m in answers if m.status == statuses[0])
    # the response reaches the sender and names its request
    assert response.header("call-id") == call_id_of(data)
    assert response.source == client.server.sip_address


@pytest.mark.parametrize("name", sorted(n for n in MANIFEST if n.startswith("valid/")))
def test_valid_torture_message_is_not_refused_as_malformed(
    client: SipClient, name: str,
) -> None:
    case = MANIFEST[name]
    data = (CORPUS / name).read_bytes()
    answers = client.answers(data, call_id_of(data))
    if is_response(data):  # to no transaction of ours: dropped
        assert answers == [], f"{case['case']}: answered {[m.start for m in answers]}"
        return
    statuses = finals(answers)
    assert len(statuses) == 1, f"{case['case']}: final responses {[m.start for m in answers]}"
    assert statuses[0] not in MALFORMED, f"{case['case']}: {[m.start for m in answers]}"


def test_random_bytes_and_the_largest_datagrams_leave_the_server_answering(
    client: SipClient,
) -> None:
    rng = random.Random(4475)
    bad_before = client.server.health()["sip"]["bad_messages"]
    for size in (1, 7, 100, 1400, 9000, MAX_DATAGRAM):
        noise = bytes(rng.getrandbits(8) for _ in range(size))
        assert client.answers(noise) == [], size
    # random text that looks like SIP, cut anywhere
    text, _ = client.request("INVITE", "sip:400@127.0.0.1", body=b"v=0\r\n" * 20)
    for cut in sorted(rng.sample(range(1, len(text)), 12)):
        answers = client.answers(text[:cut])
        assert finals(answers) in ([], [400]), (cut, [m.start for m in answers])
    # a request as large as a datagram can be
    data, call_id = client.request("OPTIONS", f"sip:127.0.0.1:{client.server.sip_port}",
                                   headers=[("X-Padding", "")])
    data = data.replace(b"X-Padding: ", b"X-Padding: " + b"p" * (MAX_DATAGRAM - len(data)))
    assert len(data) == MAX_DATAGRAM
    assert finals(client.answers(data, call_id)) in ([200], [513])
    health = client.server.health()
    assert health["status"] == "ok"
    assert health["sip"]["bad_messages"] > bad_before


def test_invite_to_a_real_number_with_an_unreadable_from_is_refused_and_keeps_no_port(
    center: CallCenter,
) -> None:
    queue = center.queue()
    media_port = free_ports(2)
    offer = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()
    with sip_client(center.server, fresh_loopback()) as caller:  # on the demo's LAN trunk
        data, call_id = caller.request(
            "INVITE", f"sip:{queue.did}@127.0.0.1:{center.server.sip_port}", body=offer,
            headers=[("Contact", f"<sip:e2e@{caller.host}:{caller.port}>"),
                     ("Content-Type", "application/sdp")])
        # RFC 4475 3.1.2.6's From: a display name whose quote never ends
        data = re.sub(rb"From: [^\r]*", b'From: "Mr. J. User <sip:j.user@example.com>;tag=q1',
                      data)
        caller.send(data)
        answers = caller.responses(call_id, timeout=3.0)
    # refused, with nothing left behind: no call, no RTP port held
    assert center.admin.get("/calls", queue=queue.id) == []
    outcome = (finals(answers), center.media_released(timeout=2.0))
    assert outcome == ([400], True), (
        f"responses {[m.start for m in answers]}; health {center.server.health()}")


# ---------------------------------------------------------------------- TCP
@contextlib.contextmanager
def tcp(server: HotlineServer) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((fresh_loopback(), 0))
    sock.connect(server.sip_address)
    sock.settimeout(3.0)
    try:
        yield sock
    finally:
        sock.close()


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server closes the connection (within the socket's timeout)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def read_response(sock: socket.socket) -> SipMessage:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed; got {data!r}"
        data += chunk
    return SipMessage.parse(data, sock.getpeername())


def tcp_request(client: SipClient, **kwargs: Any) -> tuple[bytes, str]:
    return client.request("OPTIONS", f"sip:127.0.0.1:{client.server.sip_port};transport=tcp",
                          transport="TCP", **kwargs)


@pytest.mark.parametrize("framing", ["no Content-Length", "Content-Length: ten",
                                     "two Content-Lengths", "Content-Length over the cap",
                                     "head over the cap"])
def test_tcp_framing_error_closes_the_connection_and_a_new_one_works(
    client: SipClient, framing: str,
) -> None:
    server = client.server
    data, _ = tcp_request(client)
    if framing == "no Content-Length":
        data = re.sub(rb"Content-Length: 0\r\n", b"", data)
    elif framing == "Content-Length: ten":
        data = data.replace(b"Content-Length: 0", b"Content-Length: ten")
    elif framing == "two Content-Lengths":
        data = data.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 5") + b"hello"
    elif framing == "Content-Length over the cap":
        data = data.replace(b"Content-Length: 0", f"Content-Length: {MAX_MESSAGE_SIZE}".encode())
    else:
        data = data.replace(b"\r\n\r\n", b"\r\n") + b"X-Padding: " + b"p" * MAX_MESSAGE_SIZE
    with tcp(server) as sock:
        sock.sendall(data)
        assert closed_by_peer(sock), framing
    with tcp(server) as sock:
        ok, call_id = tcp_request(client)
        sock.sendall(ok)
        answer = read_response(sock)
        assert (answer.status, answer.header("call-id")) == (200, call_id), answer.raw


def test_tcp_connection_survives_a_well_framed_bad_message(client: SipClient) -> None:
    with tcp(client.server) as sock:
        for name in ("invalid/badvers.sip", "invalid/missing-via.sip"):
            data = (CORPUS / name).read_bytes()
            if b"\nContent-Length:" not in data and b"\nl:" not in data:
                data = data.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n", 1)
            sock.sendall(data)
        answer = read_response(sock)  # 505 to the first; nothing to the second (no Via)
        assert answer.status == MANIFEST["invalid/badvers.sip"]["status"], answer.raw
        ok, call_id = tcp_request(client)
        sock.sendall(ok)
        answer = read_response(sock)
        assert (answer.status, answer.header("call-id")) == (200, call_id), answer.raw


# ---------------------------------------------------------------------- and then a call
def test_after_a_barrage_of_bad_messages_the_server_is_healthy_and_calls_work(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
    tmp_path: Path,
) -> None:
    rng = random.Random(3261)
    barrage = [(CORPUS / name).read_bytes() for name in sorted(MANIFEST)]
    barrage += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 2000)))
                for _ in range(20)]
    bad_before = center.server.health()["sip"]["bad_messages"]
    per_address = 30  # within the guard's burst for an unknown address
    for start in range(0, len(barrage), per_address):
        with sip_client(center.server, fresh_loopback()) as attacker:
            for data in barrage[start:start + per_address]:
                attacker.send(data)
            assert attacker.options() is not None  # processed all of it, still answering
    health = center.server.health()
    assert health["status"] == "ok", health
    assert health["sip"]["bad_messages"] > bad_before, health

    queue = center.queue()
    agent = center.agent(queue)
    phone = agent_phone(center, phones, tone(1000), agent)
    pcap = pcmu_pcap(tone(440, 3.0), tmp_path / "caller.pcap")
    caller = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                  service=queue.did, keys={"pcap": str(pcap)}, duration_ms=3000,
                  timeout_s=30).run()
    assert caller.ok, caller.summary()
    phone.wait("CALL_ESTABLISHED")
    phone.wait("CALL_CLOSED")
    (heard,) = phone.recordings("dec")
    assert_tone(heard, 440, 0.5, 2.0)
    assert center.wait_cdr(queue, outcome="answered")["agent"] == agent.code
    center.wait_media_released()
