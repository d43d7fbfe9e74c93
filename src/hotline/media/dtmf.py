"""DTMF both ways it reaches a call center: RFC 4733 telephone-events and in-band tones.

Key presses drive IVR menus and authentication, so a digit must be reported exactly once:
RFC 4733 senders repeat packets on purpose (updates, three end packets) and the network
loses or reorders some, while in-band detection must not hear digits in speech or music.
"""

from __future__ import annotations

import struct
from collections import deque

import numpy as np
import numpy.typing as npt

EVENT_DIGITS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


def telephone_event_payloads(
    digit: str, duration_ms: int = 100, volume: int = 10, packet_ms: int = 20
) -> list[tuple[bytes, bool, int]]:
    """(payload, marker, duration in samples) for each packet of one key press at 8 kHz.

    The first packet carries the marker bit, an update follows every ``packet_ms`` with the
    duration so far, and the final duration goes out three times with the E bit (RFC 4733
    §2.5.1.4). All packets share the event's start timestamp, which the caller supplies.
    ``volume`` is the tone's power level in -dBm0 (0–63).
    """
    event = EVENT_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if event < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume must be 0..63 (-dBm0), got {volume}")
    if packet_ms <= 0 or duration_ms <= 0:
        raise ValueError("duration_ms and packet_ms must be positive")
    total = duration_ms * 8
    step = packet_ms * 8
    if total > _MAX_DURATION:
        raise ValueError(f"duration_ms must be at most {_MAX_DURATION // 8} ms")
    packets: list[tuple[bytes, bool, int]] = []
    elapsed = step
    while elapsed < total:
        packets.append((_EVENT.pack(event, volume, elapsed), not packets, elapsed))
        elapsed += step
    end = _EVENT.pack(event, 0x80 | volume, total)
    packets.append((end, not packets, total))
    packets.append((end, False, total))
    packets.append((end, False, total))
    return packets


class TelephoneEventReceiver:
    """Turns one stream's RFC 4733 packets into digits, each reported once.

    An event is identified by its RTP timestamp, so the first packet seen of a new timestamp
    reports the digit, whichever packet that is: a lost start or a lost end changes nothing,
    and updates, end packets and their retransmissions of an already reported timestamp are
    ignored (the last few timestamps are remembered, for late arrivals). A long key press
    split into segments (RFC 4733 §2.5.2.3: the next segment starts at the previous one's
    timestamp plus its duration) is one press.
    """

    __slots__ = ("_duration", "_ended", "_event", "_recent", "_timestamp")

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=8)
        self._timestamp = -1
        self._event = -1
        self._duration = 0
        self._ended = True

    def feed(self, payload: bytes, timestamp: int, marker: bool) -> str | None:
        """The digit newly pressed according to this packet, or None."""
        if len(payload) < 4:
            return None
        event, flags, duration = _EVENT.unpack_from(payload)
        if event > 15:
            return None
        ended = flags >= 0x80
        if timestamp == self._timestamp:
            if event == self._event:
                self._duration = max(self._duration, duration)
                self._ended = self._ended or ended
            return None
        if timestamp in self._recent:
            return None  # a late packet of an earlier event
        step = (timestamp - self._timestamp) & 0xFFFFFFFF
        continues = (
            not marker
            and not self._ended
            and event == self._event
            and (step == self._duration or step == _MAX_DURATION)
        )
        self._recent.append(timestamp)
        self._timestamp = timestamp
        self._event = event
        self._duration = duration
        self._ended = ended
        return None if continues else EVENT_DIGITS[event]


ROW_FREQS = (697.0, 770.0, 852.0, 941.0)
COL_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")


def _db(value: float) -> float:
    return float(10.0 ** (value / 10.0))


class InbandDtmfDetector:
    """Digits in 8 kHz audio, for callers whose equipment sends DTMF as sound.

    The signal is cut into blocks of ``BLOCK`` = 205 samples (25.6 ms), the classic choice:
    its 39 Hz resolution separates adjacent DTMF tones (73 Hz or more apart) and leaves
    partly filled blocks usable. Each block's DFT is evaluated at the exact eight DTMF
    frequencies — the value a Goertzel filter computes — as one matrix product over all
    complete blocks, rather than a per-sample recurrence in Python.

    A block holds a digit when the strongest row tone and the strongest column tone are each
    ``dominance_db`` above the others in their group, both are above ``min_level_dbfs``,
    their twist is within limits (column up to ``normal_twist_db`` louder than the row, row
    up to ``reverse_twist_db`` louder than the column), and together they carry at least
    ``min_energy_fraction`` of the block's energy (speech and music spread theirs). A digit
    is reported once present in two consecutive blocks, one of which carries at least
    ``confirm_energy_fraction`` (a nearly full block of clean tone: this is what keeps
    vowels whose harmonics happen to sit on a row and a column frequency out), and the
    detector re-arms only after a block without a digit.

    Tones of 55 ms or more are always detected, 40 ms ones about half the time (it depends on
    how they straddle blocks), 25 ms ones never; keypads and gateways send 70–100 ms.
    """

    BLOCK = 205
    RATE = 8000

    def __init__(
        self,
        min_level_dbfs: float = -35.0,
        normal_twist_db: float = 8.0,
        reverse_twist_db: float = 4.0,
        dominance_db: float = 6.0,
        min_energy_fraction: float = 0.5,
        confirm_energy_fraction: float = 0.8,
    ) -> None:
        n = self.BLOCK
        t = np.arange(n) / self.RATE
        freqs = np.array(ROW_FREQS + COL_FREQS)
        phase = 2.0 * np.pi * np.outer(t, freqs)
        self._basis = np.ascontiguousarray(np.hstack((np.cos(phase), np.sin(phase))))
        # A sine of peak amplitude A yields |X|**2 = (A * n / 2)**2 at its own frequency.
        amplitude = 32768.0 * 10.0 ** (min_level_dbfs / 20.0)
        self._min_power = (amplitude * n / 2.0) ** 2
        self._normal_twist = _db(normal_twist_db)
        self._reverse_twist = _db(reverse_twist_db)
        self._dominance = _db(dominance_db)
        self._min_energy_fraction = min_energy_fraction
        self._confirm_energy_fraction = confirm_energy_fraction
        self._block = np.zeros(self.BLOCK)  # the block in progress, filled up to _fill
        self._fill = 0
        self._last: str | None = None
        self._last_confirmed = False
        self._armed = True

    def reset(self) -> None:
        """Forget everything, as at the start of a call."""
        self._fill = 0
        self._last = None
        self._last_confirmed = False
        self._armed = True

    def feed(self, pcm: npt.NDArray[np.int16]) -> list[str]:
        """Digits completed by these samples (usually none), in order."""
        n = self.BLOCK
        block = self._block
        total = len(pcm)
        pos = 0
        digits: list[str] = []
        while pos < total:
            fill = self._fill
            if fill == 0 and total - pos >= n:
                # Whole blocks straight from the input: one matrix product for all of them.
                count = (total - pos) // n
                blocks = np.asarray(pcm[pos : pos + count * n], dtype=np.float64)
                blocks = blocks.reshape(count, n)
                spectra = (blocks @ self._basis).tolist()
                energies = np.einsum("ij,ij->i", blocks, blocks).tolist()
                for spectrum, energy in zip(spectra, energies, strict=True):
                    self._advance(spectrum, energy, digits)
                pos += count * n
                continue
            take = min(n - fill, total - pos)
            block[fill : fill + take] = pcm[pos : pos + take]
            pos += take
            if fill + take < n:
                self._fill = fill + take
            else:
                self._fill = 0
                self._advance((block @ self._basis).tolist(), float(block @ block), digits)
        return digits

    def _advance(self, spectrum: list[float], energy: float, digits: list[str]) -> None:
        """Take one complete block into account, appending a newly pressed digit."""
        digit, confirmed = self._classify(spectrum, energy)
        if digit is None:
            self._armed = True
        elif self._armed and digit == self._last and (confirmed or self._last_confirmed):
            digits.append(digit)
            self._armed = False
        self._last = digit
        self._last_confirmed = confirmed

    def _classify(self, spectrum: list[float], energy: float) -> tuple[str | None, bool]:
        """The digit a block holds, if any, and whether it holds it cleanly enough to confirm.

        Plain Python on eight numbers: cheaper than numpy's per-call overhead at this size.
        """
        power = [spectrum[i] * spectrum[i] + spectrum[i + 8] * spectrum[i + 8] for i in range(8)]
        rows = power[:4]
        cols = power[4:]
        row_power = max(rows)
        col_power = max(cols)
        if row_power < self._min_power or col_power < self._min_power:
            return None, False
        if (
            col_power > row_power * self._normal_twist
            or row_power > col_power * self._reverse_twist
        ):
            return None, False
        rows.sort()
        cols.sort()
        # The second strongest of each group must be well below the strongest.
        if rows[2] * self._dominance > row_power or cols[2] * self._dominance > col_power:
            return None, False
        # A tone with |X|**2 = P contributes 2 * P / n to the block energy sum(x**2).
        share = 2.0 * (row_power + col_power) / (self.BLOCK * energy)
        if share < self._min_energy_fraction:
            return None, False
        digit = _KEYPAD[power.index(row_power)][power.index(col_power, 4) - 4]
        return digit, share >= self._confirm_energy_fraction
