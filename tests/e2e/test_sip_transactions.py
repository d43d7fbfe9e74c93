"""SIP transactions as peers see them on the wire: Hotline resends its 200 to a caller until
the ACK comes (RFC 3261 §13.3.1.4), and cancels the INVITE to an agent's phone that is still
ringing when the call no longer wants it (§9.1) — the caller hung up, or the ring timed out."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .peers import PhoneFactory, Sipp, assert_tone, duration_s, pcmu_pcap
from .server import CallCenter, agent_phone, sipp_phone

Tone = Callable[..., Path]
T1 = 0.5  # RFC 3261's round-trip estimate: the first retransmission interval


def traced(messages: str) -> list[tuple[float, str, str]]:
    """SIPp's -trace_msg file as (time, "sent"/"received", message) in order."""
    out = []
    pattern = re.compile(
        r"^-+ (\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+)\s*\n"
        r"(UDP|TCP) message (sent|received).*?:\n\n(.*?)(?=^-+ \d{4}-|\Z)",
        re.MULTILINE | re.DOTALL)
    for m in pattern.finditer(messages):
        stamp = datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%Y-%m-%d %H:%M:%S.%f")
        out.append((stamp.timestamp(), m.group(3), m.group(4)))
    return out


def test_our_200_to_the_caller_is_retransmitted_until_the_late_ack(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
    tmp_path: Path,
) -> None:
    queue = center.queue(wrap_up=1.0)
    agent = center.agent(queue)
    phone = agent_phone(center, phones, tone(1000), agent)
    audio_s = 4.0
    pcap = pcmu_pcap(tone(440, audio_s), tmp_path / "caller.pcap")

    result = sipp("uac_late_ack.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                  service=queue.did, keys={"pcap": str(pcap)},
                  duration_ms=round(audio_s * 1000), timeout_s=30).run()
    assert result.ok, result.summary()

    trace = traced(result.messages)
    ack_at = next(t for t, way, msg in trace if way == "sent" and msg.startswith("ACK "))
    oks = [t for t, way, msg in trace if way == "received" and msg.startswith("SIP/2.0 200")
           and re.search(r"^CSeq:\s*1 INVITE", msg, re.MULTILINE)]
    before_ack = [t for t in oks if t < ack_at]
    assert len(before_ack) >= 3, (oks, ack_at, result.summary())
    gaps = [b - a for a, b in itertools.pairwise(before_ack)]
    # T1, 2*T1, 4*T1...: each interval doubles (within the loop's timer jitter)
    for i, gap in enumerate(gaps):
        assert abs(gap - T1 * 2**i) <= 0.15 + 0.1 * T1 * 2**i, (gaps, result.summary())
    assert not [t for t in oks if t > ack_at + 0.1], (
        f"200 still resent after the ACK: {oks}, ACK at {ack_at}")

    # the call went on as usual: the agent talked with the caller until the caller hung up
    phone.wait("CALL_ESTABLISHED")
    phone.wait("CALL_CLOSED")
    (heard,) = phone.recordings("dec")
    end = duration_s(heard)
    assert_tone(heard, 440, end - 3.0, end - 1.0)
    cdr = center.wait_cdr(queue, outcome="answered")
    assert cdr["agent"] == agent.code
    bye_at = next(t for t, way, msg in trace if way == "sent" and msg.startswith("BYE "))
    # the conversation lasted from the answer to the BYE, the wait for the ACK included
    assert abs(cdr["talk"] - (bye_at - oks[0])) <= 0.5, (cdr, bye_at - oks[0])
    center.wait_media_released()


def test_caller_hanging_up_while_the_agent_phone_rings_cancels_the_invite(
    center: CallCenter, sipp: Callable[..., Sipp], tmp_path: Path, tone: Tone,
) -> None:
    # a caller who gives up within short_abandon (default 5 s) is a "short abandon", which
    # the wallboard leaves out of abandoned_today: this caller gives up sooner
    queue = center.queue(wrap_up=1.0, short_abandon=0.5)
    agent = center.agent(queue)
    with sipp_phone(center, sipp, agent, "uas_ring_until_cancel.xml") as phone:
        pcap = pcmu_pcap(tone(440, 1.0), tmp_path / "caller.pcap")
        caller = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                      service=queue.did, keys={"pcap": str(pcap)}, duration_ms=1000,
                      timeout_s=30).run()
        assert caller.ok, caller.summary()
        rang = phone.wait(timeout=10)
        assert rang.ok, rang.summary()  # INVITE, 180, CANCEL, 200, 487, ACK
        center.wait_agent_state(agent, "ready")  # the agent did nothing wrong

    cdr = center.wait_cdr(queue, outcome="abandoned")
    assert cdr["agent"] is None
    stats = center.queue_stats(queue)
    assert (stats["abandoned_today"], stats["answered_today"]) == (1, 0), stats
    cancelled = center.events.wait_for(type="offer_cancelled", agent=agent.code)
    assert cancelled["reason"] == "caller_left", cancelled
    center.wait_media_released()


def test_ring_timeout_cancels_a_slow_phone_and_frees_its_media_port(
    center: CallCenter, phones: PhoneFactory, sipp: Callable[..., Sipp], tmp_path: Path,
    tone: Tone,
) -> None:
    ring_timeout = 2.0
    queue = center.queue(ring_timeout=ring_timeout, wrap_up=1.0)
    slow, there = center.agent(queue), center.agent(queue)
    # the first phone (longest idle) rings until cancelled, and ends its INVITE with 487 only
    # half a second after answering the CANCEL, as a busy embedded phone may
    with sipp_phone(center, sipp, slow, "uas_ring_until_cancel.xml", duration_ms=500) as ringing:
        answering = agent_phone(center, phones, tone(1000), there)
        audio_s = 4.0
        pcap = pcmu_pcap(tone(440, audio_s), tmp_path / "caller.pcap")
        caller = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                      service=queue.did, keys={"pcap": str(pcap)},
                      duration_ms=round(audio_s * 1000), timeout_s=30).start()
        rang = ringing.wait(timeout=10)
        assert rang.ok, rang.summary()  # INVITE, 180, CANCEL, 200, (0.5 s) 487, ACK
        answering.wait("CALL_ESTABLISHED")
        state = center.agent_state(slow)
        assert (state["state"], state["reason"]) == ("not_ready", "no answer"), state
        result = caller.wait()
        assert result.ok, result.summary()
        answering.wait("CALL_CLOSED")

    trace = traced(rang.messages)
    invited = next(t for t, way, msg in trace if way == "received" and msg.startswith("INVITE"))
    cancelled = next(t for t, way, msg in trace if way == "received" and msg.startswith("CANCEL"))
    assert abs(cancelled - invited - ring_timeout) <= 0.5, (invited, cancelled)
    cdr = center.wait_cdr(queue, outcome="answered")
    assert cdr["agent"] == there.code
    # the RTP port opened for the INVITE to the slow phone is closed once its 487 came
    center.wait_media_released()
