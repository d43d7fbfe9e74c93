"""One-way delay added by the media engine while it bridges and records N other calls.

    python bench/media_delay.py [--calls 0,100,250] [--seconds 10]

The engine (uvloop, as in the server) runs in a child process with N+1 bridged, recorded
pairs of legs; a load process sends 50 packets/s into each leg of the N calls (PCMU, 20 ms) and
drains what comes back; this process sends a probe stream into the extra call's caller leg and
times each packet until the engine relays it out of the agent leg (CLOCK_MONOTONIC is the same
for all processes). Reported: probe delay percentiles, packets the engine received and sent,
and the engine process's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
FRAME = 160


def engine_main(pairs: int, ready: Any, stop: Any, out: Any, record_dir: str) -> None:
    import uvloop

    from hotline.media.engine import MediaEngine
    from hotline.media.recorder import StereoRecorder

    async def run() -> None:
        engine = MediaEngine(HOST, (30000, 39999))
        await engine.start()
        legs = []
        ports = []
        for i in range(pairs):
            a, b = await engine.open_leg(), await engine.open_leg()
            legs.append((a, b))
            ports.append((a.port, b.port))
            recorder = StereoRecorder(Path(record_dir) / f"{i}.wav")
            engine.bridge(a, b, recorder)
        ready.send(ports)
        remotes = ready.recv()  # where each leg's peer listens
        for (a, b), (ra, rb) in zip(legs, remotes, strict=True):
            a.configure((HOST, ra), "PCMU", 0, 101)
            b.configure((HOST, rb), "PCMU", 0, 101)
        ready.send("configured")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.wait)
        out.send(engine.stats())
        await engine.stop()

    uvloop.run(run())


def load_main(targets: list[tuple[int, int]], ready: Any, stop: Any) -> None:
    """Send 50 packets/s into every leg of every call; drain the replies."""
    socks = []
    for _ in targets:
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            socks.append(s)
    ready.send([(socks[2 * i].getsockname()[1], socks[2 * i + 1].getsockname()[1])
                for i in range(len(targets))])
    ready.recv()
    payload = b"\xff" * FRAME
    seq = 0
    tick = time.monotonic()
    while not stop.is_set():
        for i, (pa, pb) in enumerate(targets):
            for s, port in ((socks[2 * i], pa), (socks[2 * i + 1], pb)):
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * FRAME, i)
                s.sendto(header + payload, (HOST, port))
                try:
                    while True:
                        s.recv(2048)
                except BlockingIOError:
                    pass
        seq += 1
        tick += 0.02
        time.sleep(max(0.0, tick - time.monotonic()))


def measure(calls: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="hotline-delay-") as tmp:
        engine_end, here = ctx.Pipe()
        stop = ctx.Event()
        result_end, result = ctx.Pipe()
        engine = ctx.Process(target=engine_main, args=(calls + 1, engine_end, stop, result_end,
                                                       tmp))
        engine.start()
        ports = here.recv()
        probe_ports, load_ports = ports[0], ports[1:]
        load_end, load_here = ctx.Pipe()
        load = ctx.Process(target=load_main, args=(load_ports, load_end, stop))
        load.start()
        load_remotes = load_here.recv()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((HOST, 0))
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((HOST, 0))
        rx.settimeout(0.5)
        here.send([(tx.getsockname()[1], rx.getsockname()[1]), *load_remotes])
        here.recv()
        load_here.send("go")
        cpu0 = _cpu(engine.pid)
        t0 = time.monotonic()
        delays: list[float] = []
        sent = 0
        seq = 0
        tick = time.monotonic()
        while time.monotonic() - t0 < seconds:
            stamp = time.monotonic_ns()
            body = struct.pack("!Q", stamp) + b"\xff" * (FRAME - 8)
            tx.sendto(struct.pack("!BBHII", 0x80, 0, seq, seq * FRAME, 7) + body,
                      (HOST, probe_ports[0]))
            sent += 1
            seq = (seq + 1) & 0xFFFF
            try:
                data = rx.recv(2048)
                delays.append((time.monotonic_ns() - struct.unpack_from("!Q", data, 12)[0]) / 1e6)
            except TimeoutError:
                pass
            tick += 0.02
            time.sleep(max(0.0, tick - time.monotonic()))
        cpu = (_cpu(engine.pid) - cpu0) / (time.monotonic() - t0)
        stop.set()
        stats = result.recv()
        engine.join(10)
        load.join(10)
    delays.sort()

    def pct(p: float) -> float:
        return round(delays[min(len(delays) - 1, int(p / 100 * len(delays)))], 3)

    return {
        "calls_loaded": calls, "probe_sent": sent, "probe_received": len(delays),
        "delay_ms_p50": pct(50), "delay_ms_p99": pct(99), "delay_ms_max": round(delays[-1], 3),
        "engine_cpu_core_fraction": round(cpu, 3), "engine": stats,
    }


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=lambda v: [int(x) for x in v.split(",")],
                        default=[0, 100, 250])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    for calls in args.calls:
        print(json.dumps(measure(calls, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
