"""Call recording: the caller on the left channel, the agent on the right, in one WAV file.

Packets of the two legs arrive independently, with jitter, losses and silences (hold, VAD),
so each channel is placed by media time rather than by arrival count: contiguous audio is
appended as it comes, a real gap becomes silence, and audio is never dropped or reordered.
Only a second or two per channel is held in memory; the rest is already in the file.
"""

from __future__ import annotations

import logging
import os
import wave
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from hotline.media import g711

CALLER = 0
AGENT = 1
log = logging.getLogger("hotline.media")


def _linear(chunks: list[Any]) -> npt.NDArray[np.int16]:
    """One int16 array from chunks that are int16 arrays or µ-law bytes (runs of bytes are
    joined and decoded in one lookup)."""
    parts: list[npt.NDArray[np.int16]] = []
    run: list[bytes] = []
    for chunk in chunks:
        if isinstance(chunk, bytes):
            run.append(chunk)
            continue
        if run:
            parts.append(g711.decode("PCMU", b"".join(run)))
            run = []
        parts.append(chunk)
    if run:
        parts.append(g711.decode("PCMU", b"".join(run)))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


class StereoRecorder:
    """A 16-bit stereo WAV written as a call goes.

    ``write(channel, t, pcm)`` places ``pcm`` at media time ``t`` (seconds since the
    recording started). A chunk within ``tolerance`` samples (one 20 ms packet) of where
    its channel's audio ends is appended there, absorbing jitter; one further ahead starts
    at ``round(t * rate)`` after silence; one further behind is appended at the end anyway.

    Once both channels reach ``flush_seconds`` past what is already in the file, the common
    span is interleaved and written. If one channel has received nothing for twice that, it
    is taken to be silent up to ``flush_seconds`` behind the other, so memory stays bounded
    when a leg goes quiet (audio arriving for it later is appended, not lost).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int = 8000,
        flush_seconds: float = 1.0,
        tolerance: int = 160,
        io: Executor | None = None,
        channels: int = 2,
    ) -> None:
        """With ``io`` (an executor with one worker, so operations keep their order) the file
        is opened, written and closed there: a slow disk never stalls the caller's thread.
        ``channels=1`` records the caller alone (voicemail)."""
        if channels not in (1, 2):
            raise ValueError("a recording has one or two channels")
        self.channels = channels
        self.rate = rate
        self.path = os.fspath(path)
        self._io = io
        self._wav: wave.Wave_write | None = None
        self.tolerance = tolerance
        self._flush = max(1, round(flush_seconds * rate))
        self._chunks: tuple[list[Any], list[Any]] = ([], [])  # int16 arrays or µ-law bytes
        self._end = [0, 0]  # per channel: sample index where its audio ends
        self._written = 0  # samples per channel already in the file
        self._closed = False
        self._failed = False
        self._do(self._open)

    def _do(self, operation: object, *args: object) -> Future[None] | None:
        if self._io is None:
            self._guarded(operation, *args)
            return None
        return self._io.submit(self._guarded, operation, *args)

    def _guarded(self, operation: object, *args: object) -> None:
        if self._failed:
            return
        try:
            operation(*args)  # type: ignore[operator]
        except OSError:
            # A full or broken disk costs this recording, never the call.
            self._failed = True
            log.exception("recording %s failed", self.path)

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        wav = wave.open(self.path, "wb")  # noqa: SIM115 - open for the call
        wav.setnchannels(self.channels)
        wav.setsampwidth(2)
        wav.setframerate(self.rate)
        self._wav = wav

    def _emit(self, data: bytes) -> None:
        assert self._wav is not None
        self._wav.writeframes(data)

    def _finish(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    @property
    def failed(self) -> bool:
        """The file could not be written (see the log)."""
        return self._failed

    @property
    def duration(self) -> float:
        """Seconds recorded so far (the longer channel)."""
        return max(self._end) / self.rate

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory, all channels together."""
        return sum(self._end[: self.channels]) - self.channels * self._written

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, channel: int, t: float, pcm: npt.NDArray[np.int16]) -> None:
        """Record ``pcm`` (int16, 8 kHz by default) on ``channel`` at media time ``t``."""
        self._place(channel, t, len(pcm), np.array(pcm, dtype=np.int16))  # a copy

    def write_g711(self, channel: int, t: float, codec: str, payload: bytes) -> None:
        """Like :meth:`write` for a G.711 payload, kept encoded until it is written: the
        per-packet cost is a list append, the decoding one table lookup per flush."""
        ulaw = payload if codec == "PCMU" else payload.translate(g711.ALAW_TO_ULAW)
        self._place(channel, t, len(payload), ulaw)

    def _place(self, channel: int, t: float, n: int, chunk: Any) -> None:
        """Put ``n`` samples (``chunk``: int16 array or µ-law bytes) where they belong and
        write out what both channels have."""
        if self._closed:
            raise ValueError("recorder is closed")
        if channel != CALLER and (channel != AGENT or self.channels == 1):
            raise ValueError(f"no channel {channel} in a {self.channels}-channel recording")
        if n == 0:
            return
        chunks = self._chunks[channel]
        end = self._end[channel]
        start = round(t * self.rate)
        if start > end + self.tolerance:
            chunks.append(np.zeros(start - end, dtype=np.int16))
            end = start
        chunks.append(chunk)
        end += n
        self._end[channel] = end
        other = self._end[1 - channel] if self.channels == 2 else end
        if min(end, other) - self._written >= self._flush:
            self._write_through(min(end, other))
        elif end - self._written >= 2 * self._flush:
            self._pad(1 - channel, end - self._flush)
            self._write_through(end - self._flush)

    def _pad(self, channel: int, until: int) -> None:
        missing = until - self._end[channel]
        if missing > 0:
            self._chunks[channel].append(np.zeros(missing, dtype=np.int16))
            self._end[channel] = until

    def _write_through(self, until: int) -> None:
        """Write both channels' samples before ``until`` to the file."""
        count = until - self._written
        if count <= 0:
            return
        frames = np.empty((count, self.channels), dtype="<i2")
        for channel, chunks in enumerate(self._chunks[: self.channels]):
            audio = _linear(chunks)
            frames[:, channel] = audio[:count]
            chunks.clear()
            if len(audio) > count:
                chunks.append(audio[count:])
        self._do(self._emit, frames.tobytes())
        self._written = until

    def close(self) -> Future[None] | None:
        """Write what is left, the shorter channel padded with silence, and close the file.
        With an ``io`` executor, returns the future of the file's completion."""
        if self._closed:
            return None
        self._closed = True
        try:
            until = max(self._end)
            self._pad(CALLER, until)
            self._pad(AGENT, until)
            self._write_through(until)
        finally:
            done = self._do(self._finish)
        return done

    def __enter__(self) -> StereoRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
