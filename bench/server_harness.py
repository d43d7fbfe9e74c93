"""What the server benchmarks share: a real ``hotline serve`` process to measure, and
percentiles."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

API = "/api/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def start_server(
    tmp: Path, db_url: str, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``hotline serve`` on loopback; its output goes to ``tmp/server.log``."""
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    cmd = [
        sys.executable, "-m", "hotline", "serve", "--db", db_url, "--host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(tmp),
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}{API}/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
