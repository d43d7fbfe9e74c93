"""RTP (RFC 3550) packets, a sender's stream state and a receiver's statistics.

``parse`` runs on every packet that reaches a media socket, so it is one ``struct`` unpack
and a slice, and returns None (never raises) for whatever is not RTP version 2: the socket
is open to the Internet. Packets whose second byte is 192–223 are RTCP multiplexed on the
same port (RFC 5761 §4) and are rejected too.
"""

from __future__ import annotations

import random
import struct

from hotline.media.dtmf import telephone_event_payloads

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_HEADER_SIZE = 12

SEQ_MOD = 1 << 16


class RtpPacket:
    """One received packet; ``payload`` excludes CSRCs, the header extension and padding."""

    __slots__ = ("marker", "payload", "payload_type", "seq", "ssrc", "timestamp")

    def __init__(
        self, payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.seq = seq
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload

    def __repr__(self) -> str:
        return (
            f"RtpPacket(pt={self.payload_type}, marker={self.marker}, seq={self.seq}, "
            f"ts={self.timestamp}, ssrc={self.ssrc:#010x}, {len(self.payload)} bytes)"
        )


def parse(data: bytes) -> RtpPacket | None:
    """The RTP packet in ``data``, or None if it is not a well-formed RTP v2 packet."""
    size = len(data)
    if size < _HEADER_SIZE:
        return None
    b0, b1, seq, timestamp, ssrc = _HEADER.unpack_from(data)
    if b0 & 0xC0 != 0x80 or 192 <= b1 <= 223:
        return None
    start = _HEADER_SIZE + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if size < start + 4:
            return None
        start += 4 + (_EXT_HEADER.unpack_from(data, start)[1] << 2)
    end = size
    if b0 & 0x20:
        padding = data[-1]
        if padding == 0:  # the count includes itself
            return None
        end -= padding
    if end < start:
        return None
    return RtpPacket(b1 & 0x7F, b1 >= 0x80, seq, timestamp, ssrc, bytes(data[start:end]))


def build(
    payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes
) -> bytes:
    """A packet with the fixed 12-byte header only (no CSRCs, extension or padding)."""
    return (
        _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | (payload_type & 0x7F),
            seq & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc & 0xFFFFFFFF,
        )
        + payload
    )


class RtpStream:
    """What one outgoing stream remembers between packets.

    The initial sequence number, timestamp and SSRC are random (RFC 3550 §5.1) and drawn from
    the injected generator, so tests and simulations are reproducible.
    """

    __slots__ = ("payload_type", "seq", "ssrc", "timestamp")

    def __init__(self, payload_type: int, rng: random.Random) -> None:
        self.payload_type = payload_type
        self.seq = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self.ssrc = rng.getrandbits(32)

    def packet(
        self, payload: bytes, samples: int, marker: bool = False, payload_type: int | None = None
    ) -> bytes:
        """The next packet, stamped with the current timestamp, which then advances by
        ``samples`` (the payload's duration: 160 for 20 ms of G.711)."""
        data = _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | (self.payload_type if payload_type is None else payload_type),
            self.seq,
            self.timestamp,
            self.ssrc,
        )
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        return data + payload

    def skip(self, samples: int) -> None:
        """Account for time in which nothing was sent, so the receiver's clock stays right."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF

    def event_packets(
        self,
        digit: str,
        payload_type: int,
        duration_ms: int = 100,
        volume: int = 10,
        packet_ms: int = 20,
    ) -> list[bytes]:
        """RFC 4733 packets for one key press, to be sent ``packet_ms`` apart in place of audio.

        All carry the event's start timestamp (RFC 4733 §2.5.1.2); afterwards the stream's
        timestamp has advanced by the event's duration, where the next audio packet belongs.
        """
        start = self.timestamp
        payloads = telephone_event_payloads(digit, duration_ms, volume, packet_ms)
        packets = []
        for payload, marker, _ in payloads:
            packets.append(build(payload_type, marker, self.seq, start, self.ssrc, payload))
            self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (start + payloads[-1][2]) & 0xFFFFFFFF
        return packets


MAX_DROPOUT = 3000
MAX_MISORDER = 100


class RtpReceiverStats:
    """Reception quality of one incoming stream: counts, loss and interarrival jitter.

    Sequence numbers are extended past their 16-bit wrap as in RFC 3550 appendix A.1: a jump
    of more than ``MAX_DROPOUT`` ahead (or ``MAX_MISORDER`` behind) is believed only when the
    next packet follows it, as happens when the sender restarts; until then it is not counted.
    A new SSRC starts a new sequence space; totals carry over. There is no probation period:
    the first packet is trusted, since the call's signalling already told us who sends.
    """

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_clock_rate",
        "_cycles",
        "_expected_before",
        "_expected_prior",
        "_last_arrival",
        "_last_ts",
        "_max_seq",
        "_received_prior",
        "jitter",
        "received",
        "ssrc",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self._clock_rate = clock_rate
        self.ssrc: int | None = None
        self.received = 0
        self.jitter = 0.0  # RFC 3550 §6.4.1, in timestamp units
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq = -1
        self._expected_before = 0  # expected packets of earlier SSRCs / sequence restarts
        self._expected_prior = 0
        self._received_prior = 0
        self._last_arrival = 0.0
        self._last_ts: int | None = None

    def _restart(self, seq: int) -> None:
        self._expected_before = self.expected
        self._base_seq = seq
        self._max_seq = seq
        self._cycles = 0
        self._bad_seq = -1

    @property
    def extended_max_seq(self) -> int:
        """Highest sequence number seen, counting wraps (the RR's "extended highest")."""
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self.ssrc is None:
            return 0
        return self._expected_before + self.extended_max_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Packets expected but not received; duplicates can hide losses, never go below 0."""
        return max(0, self.expected - self.received)

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / self._clock_rate

    def update(self, packet: RtpPacket, arrival: float, timing: bool = True) -> bool:
        """Count ``packet``, which arrived at ``arrival`` seconds (any monotonic origin).

        Returns False for a packet outside the believed sequence space (not counted). Pass
        ``timing=False`` for packets whose timestamp is not their sampling instant, such as
        RFC 4733 events, which all carry their start time and would inflate the jitter.
        """
        seq = packet.seq
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None:
                self._restart(seq)
            else:
                self._base_seq = self._max_seq = seq
            self.ssrc = packet.ssrc
            self._last_ts = None
        else:
            delta = (seq - self._max_seq) & 0xFFFF
            if delta < MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += SEQ_MOD
                self._max_seq = seq
            elif delta <= SEQ_MOD - MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return False
                self._restart(seq)  # two in a row: the sender restarted its sequence
                self._last_ts = None
            else:  # a duplicate or a packet reordered by less than MAX_MISORDER
                extended = self._cycles + seq - (SEQ_MOD if seq > self._max_seq else 0)
                if extended < self._base_seq:  # it was sent before the first one we saw
                    self._base_seq = extended
        self.received += 1
        if timing:
            last_ts = self._last_ts
            if last_ts is not None:
                # Transit difference, with the timestamp difference taken modulo 2**32.
                ts_delta = ((packet.timestamp - last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                d = (arrival - self._last_arrival) * self._clock_rate - ts_delta
                self.jitter += (abs(d) - self.jitter) / 16.0
            self._last_ts = packet.timestamp
            self._last_arrival = arrival
        return True

    def interval_report(self) -> tuple[int, int]:
        """(fraction lost since the previous call, in 1/256ths; cumulative lost), as an RTCP
        reception report carries them (RFC 3550 appendix A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = (
            0
            if expected_interval <= 0 or lost_interval <= 0
            else ((lost_interval << 8) // expected_interval)
        )
        return min(fraction, 255), min(self.lost, 0x7FFFFF)
