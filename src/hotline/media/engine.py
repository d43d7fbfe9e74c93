"""The media engine: RTP legs on the asyncio loop that also runs SIP and the ACD.

A call has legs (one UDP socket each). A leg either plays audio to its peer (music on hold,
prompts: one shared ticker sends every playing leg's next frame, paced from a monotonic
schedule so a late wake-up never stretches the audio), or is bridged to another leg, in which
case every packet received is relayed at once (no added buffering) and, when the call is
recorded, decoded into the recorder: caller left, agent right.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hotline.media import g711, rtp
from hotline.media.dtmf import InbandDtmfDetector, TelephoneEventReceiver
from hotline.media.mixer import Mix
from hotline.media.recorder import StereoRecorder

log = logging.getLogger("hotline.media")
FRAME = 160  # samples per 20 ms packet at 8 kHz
LATCH_PACKETS = 5  # packets in a row from one unsignalled source before we answer there
PTIME = 0.020
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Sound:
    """Audio ready to send: the same samples pre-encoded in each codec (encoded once)."""

    name: str
    encoded: dict[str, bytes]
    samples: int

    @classmethod
    def from_pcm(cls, name: str, pcm: np.ndarray) -> Sound:
        pad = (-len(pcm)) % FRAME
        if pad:
            pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
        return cls(name, {c: g711.encode(c, pcm) for c in ("PCMU", "PCMA")}, len(pcm))


def builtin_music(seconds: float = 12.0) -> np.ndarray:
    """A soft, looping chime melody: music on hold that needs no file."""
    rate = 8000
    notes = [
        523.25,
        659.25,
        783.99,
        659.25,
        587.33,
        698.46,
        880.0,
        698.46,
        523.25,
        659.25,
        783.99,
        1046.5,
        783.99,
        659.25,
        587.33,
        523.25,
    ]
    note_len = seconds / len(notes)
    t = np.arange(int(rate * note_len)) / rate
    envelope = np.exp(-3.0 * t / note_len) * np.minimum(1.0, t / 0.01)
    parts = []
    for f in notes:
        tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t)
        parts.append(0.25 * envelope * tone / 1.3)
    out = np.concatenate(parts)
    return np.asarray(np.round(out * 32767), dtype=np.int16)


class _LegProtocol(asyncio.DatagramProtocol):
    def __init__(self, leg: Leg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.leg.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable while the peer is not listening yet: RTP is best effort


class Leg:
    """One RTP endpoint of a call."""

    def __init__(self, engine: MediaEngine, port: int, rng: random.Random) -> None:
        self.engine = engine
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None
        self.sdp_remote: Address | None = None
        self.latched = False
        self.codec = "PCMU"
        self.payload_type = 0
        self.dtmf_payload_type: int | None = None
        self.sending = True  # False while the peer holds us (sendonly/inactive)
        self.stream = rtp.RtpStream(0, rng)
        self.peer: Leg | None = None
        self.mix: Mix | None = None  # in a call of three: packets wait here for the mix
        self.inbox: deque[bytes] = deque()
        self.sound: Sound | None = None
        self.sound_pos = 0
        self.sound_loop = True
        self.on_sound_end: Callable[[], None] | None = None
        self.recorder: StereoRecorder | None = None
        self.channel = 0
        self.record_start = 0.0
        self.on_digit: Callable[[str], None] | None = None
        self.events = TelephoneEventReceiver()
        self.inband: InbandDtmfDetector | None = None
        self.received_packets = 0
        self.sent_packets = 0
        self._candidate: tuple[Address, bytes] | None = None  # (source, SSRC) asking to latch
        self._candidate_count = 0
        self._event_in = -1  # the peer's timestamp of the key press being relayed
        self._event_out = 0
        self.closed = False

    # -------------------------------------------------------------- set-up
    def configure(
        self,
        remote: Address,
        codec: str,
        payload_type: int,
        dtmf_payload_type: int | None,
        sending: bool = True,
    ) -> None:
        if remote != self.sdp_remote:  # new (or moved) media: expect it there, latch again
            self.sdp_remote = remote
            self.remote = remote
            self.latched = False
            self._candidate = None
            self._candidate_count = 0
        self.codec = codec
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.sending = sending
        if dtmf_payload_type is None and self.on_digit is not None and self.inband is None:
            self.inband = InbandDtmfDetector()

    def listen_for_digits(self, callback: Callable[[str], None] | None) -> None:
        self.on_digit = callback
        if callback is not None and self.dtmf_payload_type is None:
            self.inband = InbandDtmfDetector()

    # -------------------------------------------------------------- receive (hot path)
    def received(self, data: bytes, addr: Address) -> None:
        if self.closed:
            return
        if addr != self.remote:
            if not self._latch(data, addr):
                return
        elif not self.latched:
            self.latched = True
        # Fast path: a plain audio packet (version 2, no padding/extension/CSRC, our codec)
        if len(data) > 12 and data[0] == 0x80 and (data[1] & 0x7F) == self.payload_type:
            self.received_packets += 1
            payload = data[12:]
            peer = self.peer
            if peer is not None and peer.sound is None:
                peer.send_audio(payload, self.codec, data[1] >= 0x80)
            elif self.mix is not None:
                Mix.queue(self, payload)
            self._heard(payload)
            return
        pkt = rtp.parse(data)
        if pkt is None:
            return
        self.received_packets += 1
        pt = pkt.payload_type
        if pt == self.payload_type:
            payload = pkt.payload
            peer = self.peer
            if peer is not None and peer.sound is None:
                peer.send_audio(payload, self.codec, pkt.marker)
            elif self.mix is not None:
                Mix.queue(self, payload)
            self._heard(payload)
        elif pt == self.dtmf_payload_type:
            key = self.events.feed(pkt.payload, pkt.timestamp, pkt.marker)
            if key is not None and self.on_digit is not None:
                self.on_digit(key)
            peer = self.peer
            if peer is not None and peer.sound is None:
                peer.relay_event(pkt.payload, pkt.timestamp, pkt.marker)

    def _latch(self, data: bytes, addr: Address) -> bool:
        """Symmetric RTP (RFC 7362) without its hijack: a peer behind NAT sends from another
        address than its SDP says, and we answer there; but only well-formed RTP of the
        negotiated payload types counts, the SDP address wins whenever it speaks, and another
        address must send LATCH_PACKETS packets in a row (one SSRC) before it is believed."""
        if self.sdp_remote is None or len(data) < 12 or data[0] & 0xC0 != 0x80:
            return False
        pt = data[1] & 0x7F
        if pt != self.payload_type and pt != self.dtmf_payload_type:
            return False
        if addr == self.sdp_remote:  # the signalled peer itself: always believed
            self.remote = addr
            self.latched = True
            self._candidate = None
            return True
        if self.latched and self.remote == self.sdp_remote:
            return False  # the signalled address already speaks: nobody else may
        key = (addr, data[8:12])
        if key != self._candidate:
            self._candidate = key
            self._candidate_count = 0
        self._candidate_count += 1
        if self._candidate_count < LATCH_PACKETS:
            return False
        self.remote = addr
        self.latched = True
        return True

    def _heard(self, payload: bytes) -> None:
        """Audio from this leg's phone: into the recording (still encoded: it is decoded in
        bulk when written) and, without RFC 4733, to the in-band DTMF detector."""
        if self.recorder is not None:
            self.recorder.write_g711(
                self.channel, self.engine.now() - self.record_start, self.codec, payload
            )
        if self.inband is not None and self.on_digit is not None:
            for digit in self.inband.feed(g711.decode(self.codec, payload)):
                self.on_digit(digit)

    # -------------------------------------------------------------- send
    def send_audio(self, payload: bytes, codec: str, marker: bool = False) -> None:
        if self.remote is None or self.transport is None or not self.sending:
            return
        if codec != self.codec:
            payload = payload.translate(g711.ULAW_TO_ALAW if codec == "PCMU" else g711.ALAW_TO_ULAW)
        packet = self.stream.packet(payload, len(payload), marker, self.payload_type)
        self.transport.sendto(packet, self.remote)
        self.sent_packets += 1

    def relay_event(self, payload: bytes, timestamp: int, marker: bool) -> None:
        """Pass on an RFC 4733 key press from the bridged peer: every packet of one event
        keeps one timestamp (ours, taken when the event began), as the RFC requires."""
        pt = self.dtmf_payload_type
        if pt is None or len(payload) < 4 or self.remote is None or self.transport is None:
            return
        stream = self.stream
        if timestamp != self._event_in:
            self._event_in = timestamp
            self._event_out = stream.timestamp
        duration = (payload[2] << 8) | payload[3]
        packet = rtp.build(pt, marker, stream.seq, self._event_out, stream.ssrc, payload)
        stream.seq = (stream.seq + 1) & 0xFFFF
        stream.timestamp = max(stream.timestamp, (self._event_out + duration) & 0xFFFFFFFF)
        self.transport.sendto(packet, self.remote)
        self.sent_packets += 1

    def play(
        self, sound: Sound | None, loop: bool = True, on_end: Callable[[], None] | None = None
    ) -> None:
        """Play ``sound`` to the peer (None stops); replaces what was playing."""
        self.sound = sound
        self.sound_pos = 0
        self.sound_loop = loop
        self.on_sound_end = on_end
        if sound is not None:
            self.engine.playing.add(self)
        else:
            self.engine.playing.discard(self)

    def _next_frame(self) -> None:
        sound = self.sound
        if sound is None:
            return
        data = sound.encoded[self.codec]
        pos = self.sound_pos
        frame = data[pos : pos + FRAME]
        self.sound_pos = pos + FRAME
        if self.sound_pos >= len(data):
            if self.sound_loop:
                self.sound_pos = 0
            else:
                ended = self.on_sound_end
                self.play(None)
                if ended is not None:
                    ended()  # may start the next sound
        if self.remote is not None and self.transport is not None and self.sending:
            self.transport.sendto(
                self.stream.packet(frame, FRAME, pos == 0, self.payload_type), self.remote
            )
            self.sent_packets += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.play(None)
        if self.peer is not None and self.peer.peer is self:
            self.peer.peer = None
        self.peer = None
        if self.mix is not None:
            self.mix.drop(self)
            self.mix = None
        if self.transport is not None:
            self.transport.close()
        self.engine.release(self)


class MediaEngine:
    def __init__(
        self, host: str, ports: tuple[int, int] = (20000, 29999), rng: random.Random | None = None
    ) -> None:
        self.host = host
        self.port_min, self.port_max = ports
        self.rng = rng or random.SystemRandom()
        self.legs: dict[int, Leg] = {}
        self.playing: set[Leg] = set()
        self.mixes: set[Mix] = set()
        self._ticker: asyncio.TimerHandle | None = None
        self._tick_at = 0.0
        self.late_ticks = 0
        self.closed_received = 0
        self.closed_sent = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._tick_at = self.loop.time() + PTIME
        self._ticker = self.loop.call_at(self._tick_at, self._tick)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for leg in list(self.legs.values()):
            leg.close()

    async def open_leg(self) -> Leg:
        """A leg on a free even port of the range (odd ports are left for RTCP), picked at
        random: a port nobody can predict is one nobody can spray in advance."""
        assert self.loop is not None
        low = self.port_min + (self.port_min % 2)
        span = (self.port_max - low) // 2 + 1
        start = self.rng.randrange(span)
        for i in range(min(span, 64)):
            port = low + 2 * ((start + i * 7919) % span)  # a prime stride visits many ports
            if port in self.legs:
                continue
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            except OSError as err:  # out of file descriptors
                raise RuntimeError(f"cannot open an RTP socket: {err}") from err
            try:
                sock.bind((self.host, port))
                sock.setblocking(False)
                leg = Leg(self, port, self.rng)
                transport, _ = await self.loop.create_datagram_endpoint(
                    functools.partial(_LegProtocol, leg), sock=sock
                )
            except OSError:
                sock.close()
                continue
            leg.transport = transport
            self.legs[port] = leg
            return leg
        raise RuntimeError("no free RTP port in the configured range")

    def release(self, leg: Leg) -> None:
        if self.legs.pop(leg.port, None) is not None:
            self.closed_received += leg.received_packets
            self.closed_sent += leg.sent_packets
        self.playing.discard(leg)

    def stats(self) -> dict[str, Any]:
        """Legs and RTP packets (received, sent) since start: for health and benchmarks."""
        legs = list(self.legs.values())
        return {
            "legs": len(legs),
            "playing": len(self.playing),
            "bridged": sum(1 for leg in legs if leg.peer is not None),
            "mixes": len(self.mixes),
            "packets_received": self.closed_received + sum(g.received_packets for g in legs),
            "packets_sent": self.closed_sent + sum(g.sent_packets for g in legs),
            "late_ticks": self.late_ticks,
        }

    def bridge(self, caller: Leg, agent: Leg, recorder: StereoRecorder | None,
               record_start: float | None = None) -> None:
        """Connect two legs both ways; the recorder gets caller left (0), agent right (1).
        ``record_start``: when the recording began (a call bridged again after a mix)."""
        caller.play(None)
        agent.play(None)
        for leg in (caller, agent):
            if leg.mix is not None:
                self.unmix(leg.mix)
        caller.peer, agent.peer = agent, caller
        if recorder is not None:
            start = self.now() if record_start is None else record_start
            for leg, channel in ((caller, 0), (agent, 1)):
                leg.recorder = recorder
                leg.channel = channel
                leg.record_start = start

    def mix(self, hears: dict[Leg, tuple[Leg, ...]], recorder: StereoRecorder | None = None,
            channels: dict[Leg, int] | None = None, record_start: float = 0.0) -> Mix:
        """Put legs in a call of three (or more), ``hears`` saying who hears whom; a call's
        recording goes on through the mix."""
        m = Mix(self.now())
        m.set_hearing(hears)
        m.record(recorder, channels or {}, record_start)
        for leg in m.legs:
            leg.play(None)
            leg.peer = None
            leg.recorder = None
            if leg.mix is not None and leg.mix is not m:
                self.unmix(leg.mix)
            leg.mix = m
        self.mixes.add(m)
        return m

    def unmix(self, m: Mix) -> None:
        self.mixes.discard(m)
        for leg in m.legs:
            if leg.mix is m:
                leg.mix = None
                leg.inbox.clear()

    def unbridge(self, leg: Leg) -> None:
        peer = leg.peer
        for one in (leg, peer):
            if one is not None:
                one.peer = None
                one.recorder = None

    # -------------------------------------------------------------- pacing
    def _tick(self) -> None:
        assert self.loop is not None
        now = self.loop.time()
        behind = now - self._tick_at
        frames = 1
        if behind > 0.1:  # stalled: resynchronise instead of bursting seconds of audio
            self.late_ticks += 1
            self._tick_at = now
        elif behind > PTIME:
            frames = int(behind // PTIME) + 1  # catch up a little: the peer's jitter buffer
            self._tick_at += (frames - 1) * PTIME
        for _ in range(frames):
            for mix in list(self.mixes):
                try:
                    mix.tick(now)
                except Exception:
                    log.exception("media mix failed")
                    self.unmix(mix)
            for leg in list(self.playing):
                try:
                    leg._next_frame()
                except Exception:  # one broken leg must not silence the others
                    log.exception("media leg %s failed", leg.port)
                    leg.play(None)
        self._tick_at += PTIME
        self._ticker = self.loop.call_at(self._tick_at, self._tick)

