"""Per-packet cost of the media core: what one RTP packet (20 ms of G.711, 160 samples) costs
in each step a media engine takes, to compare with the budget of one core.

    python bench/media_core.py

Budget: 400 calls x 2 legs x 50 packets/s in each direction = 80,000 packets/s received
(and as many sent), i.e. 12.5 µs per packet if one core does everything.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hotline.media import g711, rtp
from hotline.media.dtmf import InbandDtmfDetector, TelephoneEventReceiver
from hotline.media.recorder import StereoRecorder


def per_call_us(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Microseconds per call: the best of 5 runs, each long enough to time reliably."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 5:
            break
        n *= 2
    best = elapsed
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    rng = random.Random(1)
    t = np.arange(160) / 8000
    pcm = np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    ulaw = g711.encode("PCMU", pcm)
    stream = rtp.RtpStream(0, rng)
    packet = stream.packet(ulaw, 160)
    stats = rtp.RtpReceiverStats()
    parsed = rtp.parse(packet)
    assert parsed is not None
    events = TelephoneEventReceiver()
    detector = InbandDtmfDetector()
    arrival = [0.0]

    def stats_update() -> None:
        arrival[0] += 0.02
        parsed.seq = (parsed.seq + 1) & 0xFFFF
        parsed.timestamp = (parsed.timestamp + 160) & 0xFFFFFFFF
        stats.update(parsed, arrival[0])

    results: list[tuple[str, float]] = [
        ("rtp.parse (172-byte packet)", per_call_us(lambda: rtp.parse(packet))),
        ("RtpStream.packet (build)", per_call_us(lambda: stream.packet(ulaw, 160))),
        ("RtpReceiverStats.update", per_call_us(stats_update)),
        ("µ-law -> A-law translate, 160 B", per_call_us(lambda: ulaw.translate(g711.ULAW_TO_ALAW))),
        ("g711.decode 160 B", per_call_us(lambda: g711.decode("PCMU", ulaw))),
        ("g711.encode 160 samples", per_call_us(lambda: g711.encode("PCMU", pcm))),
        (
            "TelephoneEventReceiver.feed",
            per_call_us(lambda: events.feed(b"\x05\x0a\x00\xa0", 1000, False)),
        ),
        ("InbandDtmfDetector.feed 160 samples", per_call_us(lambda: detector.feed(pcm))),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        recorder = StereoRecorder(Path(tmp) / "bench.wav")
        media_time = [0.0]

        def record() -> None:
            recorder.write(0, media_time[0], pcm)
            recorder.write(1, media_time[0], pcm)
            media_time[0] += 0.02

        # Two writes per call (both legs); report the cost of one, flushes to disk included.
        results.append(("StereoRecorder.write 160 samples", per_call_us(record) / 2))
        recorder.close()

    width = max(len(name) for name, _ in results)
    for name, us in results:
        print(f"{name:<{width}}  {us:8.2f} µs")


if __name__ == "__main__":
    main()
