"""The media engine on real loopback sockets: whom a leg answers (symmetric RTP without its
hijack), and that bridged audio and key presses reach the other side."""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np

from hotline.calls.directory import Directory, TrunkEntry
from hotline.calls.switch import escape_user, safe_number
from hotline.media import g711
from hotline.media.engine import LATCH_PACKETS, MediaEngine, Sound

HOST = "127.0.0.1"


def rtp(seq: int, ssrc: int, pt: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 160, ssrc) + payload


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    s.settimeout(1.0)
    return s


async def bridged(engine: MediaEngine, caller_sdp: tuple[str, int],
                  agent_sdp: tuple[str, int]) -> tuple[int, int]:
    await engine.start()
    a, b = await engine.open_leg(), await engine.open_leg()
    a.configure(caller_sdp, "PCMU", 0, 101)
    b.configure(agent_sdp, "PCMU", 0, 101)
    engine.bridge(a, b, None)
    return a.port, b.port


def test_a_stranger_cannot_take_over_a_leg_before_or_after_the_phone_speaks() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, (41000, 41999))
        caller, agent, stranger = udp(), udp(), udp()
        a_port, b_port = await bridged(engine, caller.getsockname(), agent.getsockname())
        # junk, and a few RTP packets from an address the SDP never named
        stranger.sendto(b"x", (HOST, b_port))
        for seq in range(LATCH_PACKETS - 1):
            stranger.sendto(rtp(seq, 7), (HOST, b_port))
        await asyncio.sleep(0.05)
        agent.sendto(rtp(1, 99), (HOST, b_port))  # the signalled phone speaks: it is believed
        await asyncio.sleep(0.05)
        for seq in range(3 * LATCH_PACKETS):  # and nobody else may any more
            stranger.sendto(rtp(100 + seq, 7, payload=b"\x00" * 160), (HOST, b_port))
        caller.sendto(rtp(5, 42, payload=b"\x11" * 160), (HOST, a_port))
        await asyncio.sleep(0.05)
        # the caller's audio went to the agent's phone, not to the stranger
        assert agent.recv(2048)[12:] == b"\x11" * 160
        stranger.setblocking(False)
        try:
            got = stranger.recv(2048)
        except BlockingIOError:
            got = b""
        assert got == b""
        # and the caller heard the phone, not the stranger's packets
        heard = caller.recv(2048)
        assert heard[12:] == b"\xff" * 160
        await engine.stop()

    asyncio.run(main())


def test_a_phone_behind_nat_is_answered_where_it_really_sends_from() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, (42000, 42999))
        caller, phone = udp(), udp()
        unreachable = ("127.0.0.1", 9)  # what the phone's SDP claimed (its private address)
        a_port, b_port = await bridged(engine, caller.getsockname(), unreachable)
        for seq in range(LATCH_PACKETS):  # the phone's RTP, from its NAT's address
            phone.sendto(rtp(seq, 1234), (HOST, b_port))
        await asyncio.sleep(0.05)
        caller.sendto(rtp(1, 55, payload=b"\x22" * 160), (HOST, a_port))
        await asyncio.sleep(0.05)
        data = phone.recv(2048)
        assert data[12:] == b"\x22" * 160  # latched: the caller's audio reaches the phone
        await engine.stop()

    asyncio.run(main())


def test_key_presses_are_relayed_with_one_timestamp_per_event() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, (43000, 43999))
        caller, agent = udp(), udp()
        a_port, _ = await bridged(engine, caller.getsockname(), agent.getsockname())
        # one key press (digit 5): every packet carries the event's start timestamp
        for i, (duration, end) in enumerate(((160, False), (320, False), (480, True))):
            event = struct.pack("!BBH", 5, (0x80 if end else 0) | 10, duration)
            header = struct.pack("!BBHII", 0x80, 101 | (0x80 if i == 0 else 0), i, 8000, 9)
            caller.sendto(header + event, (HOST, a_port))
        await asyncio.sleep(0.05)
        packets = [agent.recv(2048) for _ in range(3)]
        assert {p[1] & 0x7F for p in packets} == {101}
        assert len({p[4:8] for p in packets}) == 1  # one event, one timestamp
        assert [p[12] for p in packets] == [5, 5, 5]
        await engine.stop()

    asyncio.run(main())


def test_a_trunk_can_only_bring_calls_for_its_own_tenants_numbers() -> None:
    import ipaddress

    d = Directory()
    carrier = ipaddress.ip_network("198.51.100.0/24")
    d.trunks = [TrunkEntry(1, "a-carrier", (carrier,)),
                TrunkEntry(2, "b-carrier", (ipaddress.ip_network("198.51.100.7/32"),))]
    assert d.trunk_for("198.51.100.7", 1).code == "a-carrier"  # type: ignore[union-attr]
    assert d.trunk_for("198.51.100.7", 2).code == "b-carrier"  # type: ignore[union-attr]
    assert d.trunk_for("198.51.100.9", 2) is None  # tenant 1's network: not for tenant 2
    assert d.trunk_for("198.51.100.9", None) is None  # no such number: nobody's


def test_caller_numbers_cannot_carry_header_syntax_into_agent_invites() -> None:
    assert safe_number('\r\nCall-Info: <sip:x>;answer-after=0\r\n"') == (
        "Call-Infosipxanswer-after0")
    assert safe_number("+86 138-0000-0000") == "+86138-0000-0000"
    assert safe_number("") is None and safe_number('"<>') is None
    assert escape_user("400#1") == "400%231"


def test_a_prompt_plays_to_its_end_then_its_callback_starts_the_next_sound() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, (43000, 43999))
        await engine.start()
        phone = udp()
        leg = await engine.open_leg()
        leg.configure(phone.getsockname(), "PCMU", 0, None)
        prompt = Sound.from_pcm("prompt", np.full(3 * 160, 1000, dtype=np.int16))
        music = Sound.from_pcm("music", np.full(160, -1000, dtype=np.int16))
        ended = asyncio.get_running_loop().create_future()

        def done() -> None:
            ended.set_result(True)
            leg.play(music)  # what an IVR does: the next sound, from the callback

        leg.play(prompt, loop=False, on_end=done)
        await asyncio.wait_for(ended, 1.0)
        await asyncio.sleep(0.1)
        payloads = [phone.recv(2048)[12:] for _ in range(5)]
        await engine.stop()
        first, after = g711.encode("PCMU", np.array([1000])), g711.encode("PCMU", np.array([-1000]))
        assert payloads[:3] == [first * 160] * 3  # the whole prompt, once
        assert payloads[3:] == [after * 160] * 2  # then the music, without a gap

    asyncio.run(main())
