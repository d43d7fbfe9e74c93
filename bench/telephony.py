"""SIP and media benchmarks against a real ``hotline serve`` with SIPp as callers and phones.

    python bench/telephony.py setup [--rate 300] [--seconds 20] [--agents 400]
    python bench/telephony.py media [--calls 100,200,400] [--seconds 20]

Runs itself inside a private network namespace (root; see ../shared/telephony/NOTES.md) so
nothing else on the machine shares its ports. ``setup``: callers at a fixed rate to a queue of
agents whose phones answer at once; the callers hang up 1 s after being answered. Reports
calls attempted/failed (SIPp), calls answered by agents (the server's own counts), and the
server's CPU. ``media``: N concurrent calls with audio both ways (PCMU, 50 packets/s per
direction), bridged and recorded by Hotline; reports the server's CPU per core, the UDP
receive drops in the namespace, packets relayed, and resident memory per call leg.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotline.sip.digest import answer as digest_answer
from hotline.sip.message import Response, parse
from server_harness import API, percentile, stop_server, wait_ready

HERE = Path(__file__).resolve().parent
MKPCAP = HERE.parent.parent / "shared" / "telephony" / "tools" / "mkpcap.py"
PASSWORD = "bench-password-1"
SIP_PORT = 5060
AGENT_PORT = 5080
DID = "500"


def in_namespace() -> None:
    """Re-run this script in a new network namespace with only loopback, once."""
    if os.environ.get("HOTLINE_BENCH_NETNS") == "1":
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes a private network namespace")
    cmd = " ".join([sys.executable, *[f"'{a}'" for a in sys.argv]])
    os.environ["HOTLINE_BENCH_NETNS"] = "1"
    os.execvp("unshare", ["unshare", "-n", "sh", "-c",
                          f"ip link set lo up && ip route add default dev lo && exec {cmd}"])


def tone_pcap(tmp: Path, name: str, freq: float, seconds: float) -> Path:
    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16) if freq else np.zeros(
        len(t), dtype=np.int16)
    wav = tmp / f"{name}.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    pcap = tmp / f"{name}.pcap"
    subprocess.run([sys.executable, str(MKPCAP), str(wav), str(pcap), "pcmu", "20"],
                   check=True, capture_output=True)
    return pcap


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def udp_drops() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [ln.split() for ln in lines if ln.startswith("Udp:")]
    head, values = udp[0], udp[1]
    return int(values[head.index("RcvbufErrors")]) + int(values[head.index("InErrors")])


def socket_drops(pid: int) -> int:
    """Datagrams the kernel dropped on the process's own UDP sockets (full receive buffers):
    loss inside Hotline, as opposed to the peers' sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    drops = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            drops += int(fields[-1])
    return drops


class Center:
    """The server with a bench queue of ``agents`` phones, all registered to one SIPp port."""

    def __init__(self, tmp: Path, agents: int) -> None:
        self.tmp = tmp
        port = 8097
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HOTLINE_DEMO_PASSWORD": PASSWORD}
        log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--demo", "--data-dir", str(tmp),
             "--port", str(port), "--sip", f"127.0.0.1:{SIP_PORT}", "--rtp-ports", "20000-39999",
             "--log-level", os.environ.get("HOTLINE_BENCH_LOG", "warning")],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_ready(self.base, self.proc)
        self.http = httpx.Client(base_url=self.base + API, timeout=30)
        token = self.http.post("/auth/login", json={
            "tenant": "demo-bank", "username": "admin", "password": PASSWORD}).json()["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.ok(self.http.post("/skills", json={"code": "bench", "labels": {}}))
        self.ok(self.http.post("/queues", json={
            "id": "bench", "skills": {"bench": 1}, "wrap_up": 0, "ring_timeout": 10}))
        self.ok(self.http.put(f"/routes/{DID}", json={"queue": "bench"}))
        self.users = []
        for i in range(agents):
            code, ext = f"bench-{i:04d}", str(50000 + i)
            self.ok(self.http.post("/agents", json={
                "code": code, "extension": ext, "skills": {"bench": 1}, "wrap_up": 0}))
            self.ok(self.http.put(f"/agents/{code}/phone", json={"password": PASSWORD}))
            self.users.append(ext)
        self.register_all()

    @staticmethod
    def ok(resp: httpx.Response) -> None:
        if resp.status_code >= 300:
            raise SystemExit(f"{resp.request.method} {resp.request.url}: {resp.text}")

    def register_all(self) -> None:
        """REGISTER every agent (digest) with a Contact at the SIPp agent port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        here = sock.getsockname()[1]
        for n, user in enumerate(self.users):
            cseq = 1
            auth = None
            for _ in range(2):
                lines = [
                    f"REGISTER sip:127.0.0.1:{SIP_PORT} SIP/2.0",
                    f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK{n}x{cseq};rport",
                    f"From: <sip:{user}@127.0.0.1>;tag=b{n}",
                    f"To: <sip:{user}@127.0.0.1>",
                    f"Call-ID: bench-reg-{n}", f"CSeq: {cseq} REGISTER",
                    f"Contact: <sip:{user}@127.0.0.1:{AGENT_PORT}>", "Expires: 3600",
                    "Max-Forwards: 70",
                ]
                if auth:
                    lines.append(f"Authorization: {auth}")
                data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
                resp = None
                for _ in range(5):  # as a phone would, resend what got no answer
                    sock.sendto(data, ("127.0.0.1", SIP_PORT))
                    try:
                        while True:
                            got = parse(sock.recv(65535))
                            if isinstance(got, Response) and got.status >= 200:
                                resp = got
                                break
                    except TimeoutError:
                        continue
                    break
                if resp is None:
                    raise SystemExit(f"agent {user}: no answer to REGISTER")
                if resp.status == 200:
                    break
                challenge = resp.headers.get("WWW-Authenticate") or ""
                auth = digest_answer(challenge, "REGISTER", f"sip:127.0.0.1:{SIP_PORT}", user,
                                     PASSWORD, cnonce=f"c{n}")
                cseq += 1
            else:
                raise SystemExit(f"agent {user} could not register")
        sock.close()

    def answer_waits(self) -> list[float]:
        """Median and 99th percentile of arrival → agent's answer (ms), from the CDRs."""
        waits: list[float] = []
        page = 1
        while True:
            got = self.http.get("/cdrs", params={"queue": "bench", "outcome": "answered",
                                                 "page": page, "page_size": 1000}).json()
            items = got["items"]
            waits += [c["wait"] for c in items if c.get("wait") is not None]
            if len(items) < 1000:
                break
            page += 1
        waits.sort()
        return [round(1000 * percentile(waits, p), 1) for p in (50, 99)]

    def queue_today(self) -> dict[str, object]:
        stats = self.http.get("/stats/realtime").json()
        return dict(stats["queues"]["bench"])

    def stop(self) -> None:
        stop_server(self.proc)


def sipp(scenario: str, *args: str, media: bool = True) -> subprocess.Popen[bytes]:
    """SIPp with one of our scenarios; without ``media`` the pcap playing is left out (SIPp
    starts a thread per playback, which would make SIPp, not Hotline, the bottleneck)."""
    path = HERE / "sipp" / scenario
    if not media:
        text = "\n".join(ln for ln in path.read_text().splitlines() if "play_pcap" not in ln)
        path = Path(tempfile.mkdtemp(prefix="hotline-sipp-")) / scenario
        path.write_text(text)
    return subprocess.Popen(
        ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-mi", "127.0.0.1",
         "-nostdin", "-trace_stat", "-stf", "/dev/null", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def sipp_counts(output: str) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's final screen."""
    ok = failed = 0
    for line in output.splitlines():
        parts = line.split()
        if line.strip().startswith("Successful call") and parts:
            ok = int(parts[-1])
        if line.strip().startswith("Failed call") and parts:
            failed = int(parts[-1])
    return ok, failed


def bench_setup(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    center = Center(tmp, args.agents)
    total = int(args.rate * args.seconds)
    phones = sipp("agent_answer.xml", "-p", str(AGENT_PORT), "-mp", "40000", media=False)
    time.sleep(1)
    cpu0, t0 = cpu_seconds(center.proc.pid), time.monotonic()
    user0, sys0 = cpu_times(center.proc.pid)
    profiler = None
    if os.environ.get("HOTLINE_BENCH_PROFILE"):
        profiler = subprocess.Popen(["py-spy", "record", "-p", str(center.proc.pid), "-o",
                                     os.environ["HOTLINE_BENCH_PROFILE"], "-f", "raw",
                                     "-d", str(int(args.seconds))])
    callers = sipp("caller.xml", f"127.0.0.1:{SIP_PORT}", "-s", DID, "-p", "5070",
                   "-d", "1000", "-r", str(args.rate), "-m", str(total),
                   "-l", str(args.rate * 5), "-mp", "45000",
                   "-timeout", str(args.seconds + 60), "-timeout_error", media=False)
    out, _ = callers.communicate()
    cpu1, t1 = cpu_seconds(center.proc.pid), time.monotonic()
    user1, sys1 = cpu_times(center.proc.pid)
    if profiler is not None:
        profiler.wait()
    time.sleep(2)
    today = center.queue_today()
    waits = center.answer_waits()
    phones.terminate()
    phones.wait()
    center.stop()
    ok, failed = sipp_counts(out.decode(errors="replace"))
    elapsed = t1 - t0
    return {
        "rate_offered": args.rate, "calls": total, "sipp_successful": ok, "sipp_failed": failed,
        "answered_by_agents": today.get("answered_today"), "offered": today.get("offered_today"),
        "abandoned": today.get("abandoned_today"), "elapsed_s": round(elapsed, 1),
        "answer_delay_ms_p50_p99": waits,
        "achieved_cps": round(ok / max(1e-9, elapsed - 1.0), 1),  # callers hold 1 s
        "server_cpu_core_fraction": round((cpu1 - cpu0) / elapsed, 3),
        "of_which_user": round((user1 - user0) / elapsed, 3),
        "of_which_kernel": round((sys1 - sys0) / elapsed, 3),
        "server_cpu_ms_per_call": round(1000 * (cpu1 - cpu0) / max(1, ok), 2),
    }


def flooder(rate: float, seconds: float, sources: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "sip_flooder.py"), str(SIP_PORT), str(rate), str(seconds),
         str(sources)],
        stdout=subprocess.PIPE,
    )


def bench_flood(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    """Call setups while a scanner floods the SIP port: do real calls still get through?"""
    center = Center(tmp, args.agents)
    total = int(args.rate * args.seconds)
    phones = sipp("agent_answer.xml", "-p", str(AGENT_PORT), "-mp", "40000", media=False)
    time.sleep(1)
    flood = flooder(args.flood, args.seconds + 1, args.sources)
    cpu0, t0 = cpu_seconds(center.proc.pid), time.monotonic()
    callers = sipp("caller.xml", f"127.0.0.1:{SIP_PORT}", "-s", DID, "-p", "5070",
                   "-d", "1000", "-r", str(args.rate), "-m", str(total),
                   "-l", str(args.rate * 5), "-mp", "45000",
                   "-timeout", str(args.seconds + 60), "-timeout_error", media=False)
    out, _ = callers.communicate()
    cpu1, t1 = cpu_seconds(center.proc.pid), time.monotonic()
    flood_out, _ = flood.communicate()
    health = center.http.get("/health").json()
    waits = center.answer_waits()
    today = center.queue_today()
    phones.terminate()
    phones.wait()
    center.stop()
    ok, failed = sipp_counts(out.decode(errors="replace"))
    return {
        "rate_offered": args.rate, "calls": total, "sipp_successful": ok, "sipp_failed": failed,
        "answered_by_agents": today.get("answered_today"),
        "answer_delay_ms_p50_p99": waits,
        "flood_datagrams": int(flood_out or 0), "flood_sources": args.sources,
        "sip": health.get("sip"),
        "server_cpu_core_fraction": round((cpu1 - cpu0) / (t1 - t0), 3),
    }


def bench_media(args: argparse.Namespace, tmp: Path) -> list[dict[str, object]]:
    results = []
    hold = args.seconds + 20
    caller_tone = tone_pcap(tmp, "caller440", 440, hold + 10)
    agent_tone = tone_pcap(tmp, "agent1000", 1000, hold + 10)
    for n in args.calls:
        run = tmp / f"n{n}"
        run.mkdir()
        center = Center(run, n + 10)
        rss0 = rss_mb(center.proc.pid)
        phones = sipp("agent_answer.xml", "-p", str(AGENT_PORT), "-key", "pcap", str(agent_tone),
                      "-mp", "40000")
        time.sleep(1)
        ramp = max(1.0, n / 50)
        callers = sipp("caller.xml", f"127.0.0.1:{SIP_PORT}", "-s", DID, "-p", "5070",
                       "-key", "pcap", str(caller_tone), "-d", str(int((hold + ramp) * 1000)),
                       "-r", "50", "-m", str(n), "-l", str(n), "-mp", "45000")
        time.sleep(ramp + 5)  # all calls up and bridged
        today = center.queue_today()
        drops0, cpu0, t0 = udp_drops(), cpu_seconds(center.proc.pid), time.monotonic()
        user0, sys0 = cpu_times(center.proc.pid)
        if os.environ.get("HOTLINE_BENCH_PROFILE"):
            subprocess.run(["py-spy", "record", "-p", str(center.proc.pid), "-o",
                            os.environ["HOTLINE_BENCH_PROFILE"], "-f", "raw",
                            "-d", str(int(args.seconds))], capture_output=True)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        drops1, cpu1, t1 = udp_drops(), cpu_seconds(center.proc.pid), time.monotonic()
        hotline_drops = socket_drops(center.proc.pid)
        user1, sys1 = cpu_times(center.proc.pid)
        rss1 = rss_mb(center.proc.pid)
        health = center.http.get("/health").json()
        out, _ = callers.communicate()
        phones.terminate()
        phones.wait()
        center.stop()
        ok, failed = sipp_counts(out.decode(errors="replace"))
        recordings = list((run / "recordings").rglob("*.wav"))
        results.append({
            "calls": n, "answered_when_measured": today.get("answered_today"),
            "sipp_successful": ok, "sipp_failed": failed,
            "server_cpu_core_fraction": round((cpu1 - cpu0) / (t1 - t0), 3),
            "of_which_user": round((user1 - user0) / (t1 - t0), 3),
            "of_which_kernel": round((sys1 - sys0) / (t1 - t0), 3),
            "udp_drops_in_namespace": drops1 - drops0,
            "udp_drops_on_hotline_sockets": hotline_drops,
            "media": health.get("media"),
            "rss_mb_per_leg": round((rss1 - rss0) / (2 * n), 3),
            "recordings": len(recordings),
        })
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--rate", type=int, default=300)
    s.add_argument("--seconds", type=float, default=20)
    s.add_argument("--agents", type=int, default=400)
    f = sub.add_parser("flood")
    f.add_argument("--rate", type=int, default=100)
    f.add_argument("--seconds", type=float, default=10)
    f.add_argument("--agents", type=int, default=200)
    f.add_argument("--flood", type=float, default=5000, help="scanner datagrams per second")
    f.add_argument("--sources", type=int, default=2000)
    m = sub.add_parser("media")
    m.add_argument("--calls", type=lambda v: [int(x) for x in v.split(",")],
                   default=[100, 200, 400])
    m.add_argument("--seconds", type=float, default=20)
    for p in (s, f, m):
        p.add_argument("--keep", help="keep the work directory (server log, recordings) here")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed: apt-get install sip-tester")
    in_namespace()
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.mode == "setup":
            print(json.dumps(bench_setup(args, work), indent=1))
        elif args.mode == "flood":
            print(json.dumps(bench_flood(args, work), indent=1))
        else:
            bench_media(args, work)


if __name__ == "__main__":
    main()
