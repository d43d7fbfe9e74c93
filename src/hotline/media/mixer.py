"""Mixing for calls with more than two parties: a supervisor listening, coaching or barging in.

A plain call relays each packet straight to the other leg. Once a third leg joins, the legs'
audio goes through a ``Mix`` instead: each received packet is queued (still encoded) on its
leg, and on every 20 ms tick of the engine the mix takes one frame from each leg and sends
each listener the sum of the legs it may hear — the hearing matrix is what tells listen,
whisper and barge apart. A few frames of queue absorb jitter; beyond that the oldest frame
is dropped, so the delay a mix adds stays under ``MAX_QUEUED`` frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from hotline.media import g711

if TYPE_CHECKING:
    from hotline.media.engine import Leg
    from hotline.media.recorder import StereoRecorder

FRAME = 160
MAX_QUEUED = 3  # frames a leg may have waiting (60 ms) before the oldest is dropped
SILENCE = np.zeros(FRAME, dtype=np.int16)


class Mix:
    def __init__(self, now: float) -> None:
        self.legs: list[Leg] = []
        self.hears: dict[Leg, tuple[Leg, ...]] = {}
        self.recorder: StereoRecorder | None = None
        self.channels: dict[Leg, int] = {}  # leg -> recording channel (0 caller, 1 agent side)
        self.record_start = now
        self.frames = 0  # ticks mixed

    def set_hearing(self, hears: dict[Leg, tuple[Leg, ...]]) -> None:
        """Who hears whom: listener -> the legs whose audio it gets (never itself)."""
        for listener, sources in hears.items():
            if listener in sources:
                raise ValueError("a leg never hears itself")
        self.hears = dict(hears)
        for leg in hears:
            if leg not in self.legs:
                self.legs.append(leg)

    def drop(self, leg: Leg) -> None:
        """A leg left (hung up): nobody hears it, it hears nothing."""
        self.hears = {k: tuple(x for x in v if x is not leg)
                      for k, v in self.hears.items() if k is not leg}
        if leg in self.legs:
            self.legs.remove(leg)
        self.channels.pop(leg, None)

    def record(self, recorder: StereoRecorder | None, channels: dict[Leg, int],
               start: float) -> None:
        """Go on with a call's recording: each leg's audio into its channel (a supervisor who
        speaks is heard on the agent's side), placed by the recording's own clock."""
        self.recorder = recorder
        self.channels = dict(channels)
        self.record_start = start

    @staticmethod
    def queue(leg: Leg, payload: bytes) -> None:
        """A packet received on a mixed leg (the engine's receive path)."""
        inbox = leg.inbox
        inbox.append(payload if leg.codec == "PCMU" else payload.translate(g711.ALAW_TO_ULAW))
        if len(inbox) > MAX_QUEUED:
            inbox.popleft()

    def tick(self, now: float) -> None:
        frames: dict[Leg, npt.NDArray[np.int32] | None] = {}
        for leg in self.legs:
            inbox = leg.inbox
            if inbox:
                frames[leg] = g711.decode("PCMU", inbox.popleft()).astype(np.int32)
            else:
                frames[leg] = None  # nothing arrived in time: silence from it
        for listener, sources in self.hears.items():
            total: npt.NDArray[np.int32] | None = None
            for source in sources:
                frame = frames.get(source)
                if frame is not None:
                    total = frame.copy() if total is None else total + frame
            pcm = SILENCE if total is None else np.clip(total, -32768, 32767).astype(np.int16)
            listener.send_audio(g711.encode(listener.codec, pcm), listener.codec)
        if self.recorder is not None:
            sides: list[npt.NDArray[np.int32] | None] = [None, None]
            for leg, channel in self.channels.items():
                frame = frames.get(leg)
                if frame is not None:
                    side = sides[channel]
                    sides[channel] = frame if side is None else side + frame
            t = now - self.record_start
            for channel, side in enumerate(sides):
                if side is not None:
                    self.recorder.write(channel, t,
                                        np.clip(side, -32768, 32767).astype(np.int16))
        self.frames += 1

