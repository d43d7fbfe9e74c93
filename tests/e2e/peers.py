"""Real SIP peers for the end-to-end tests: a private network namespace, free ports, test audio
(tones, PCMU pcaps) and its analysis (FFT, RMS), baresip phones driven over ``ctrl_tcp`` and
SIPp scenarios.

The machine-specific facts (how baresip and SIPp behave here) are in
``../shared/telephony/NOTES.md``; the tools next to it (``baresip_ctrl.py``, ``mkpcap.py``, the
baresip config template and the SIPp scenarios) are used from there, not copied.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
TELEPHONY = Path(os.environ.get("HOTLINE_TELEPHONY_DIR", REPO.parent / "shared" / "telephony"))
SIPP_SCENARIOS = TELEPHONY / "sipp"
LOCAL_SCENARIOS = E2E_DIR / "sipp"
LOCALHOST = "127.0.0.1"

Json = dict[str, Any]
AnswerMode = Literal["auto", "manual"]
RecordingKind = Literal["enc", "dec"]


def telephony_file(relative: str) -> Path:
    """A file of the shared telephony kit; fails clearly if the kit is not there."""
    path = TELEPHONY / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the e2e tests use the telephony kit in ../shared/telephony "
            "(or set HOTLINE_TELEPHONY_DIR)"
        )
    return path


# ------------------------------------------------------------- private network namespace
CLONE_NEWNET = 0x40000000


def _interfaces() -> set[str]:
    return {name for _, name in socket.if_nameindex()}


def _loopback_usable() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOCALHOST, 0))
    except OSError:
        return False
    return True


def in_private_netns() -> bool:
    """True when this thread's network namespace has only a loopback interface and it is up:
    nothing else can be listening on our ports and no packet can leave the machine."""
    return _interfaces() == {"lo"} and _loopback_usable()


def _netns_of_thread(native_id: int) -> str:
    return os.readlink(f"/proc/self/task/{native_id}/ns/net")


def enter_private_netns() -> None:
    """Move this process into a new network namespace with only ``lo`` (up, default route via
    lo so that peers that look for "the" local address find 127.0.0.1).

    A network namespace belongs to a thread: call this while the process has only the main
    Python thread (pytest's configure phase), so every later thread and child process
    inherits it. Needs root (CAP_SYS_ADMIN). Does nothing but bring lo up if the process is
    already in a namespace with only lo (e.g. started under ``unshare -n``)."""
    if _interfaces() != {"lo"}:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"unshare(CLONE_NEWNET) failed: {os.strerror(errno)} "
                                 "(the e2e tests need root for a private network namespace)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    subprocess.run(["ip", "route", "replace", "default", "dev", "lo"], check=True,
                   capture_output=True)
    if not in_private_netns():
        raise RuntimeError(f"not in a private network namespace: interfaces {_interfaces()}")
    mine = _netns_of_thread(threading.get_native_id())
    elsewhere = [t.name for t in threading.enumerate()
                 if t.native_id is not None and _netns_of_thread(t.native_id) != mine]
    if elsewhere:
        raise RuntimeError(f"threads left in the host network namespace: {elsewhere}")


# ----------------------------------------------------------------------------- ports
def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _udp_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOCALHOST, port))
            except OSError:
                return False
    return True


class PortAllocator:
    """Hands out blocks of consecutive ports (TCP and UDP both free on 127.0.0.1) from a range
    below the kernel's ephemeral range, so they never clash with ports the kernel picks for
    ``bind(0)``/outgoing sockets (e.g. the PostgreSQL fixture's ``free_port``). Each port is
    given out once per process, in order; in the private namespace nothing else allocates
    ports, so a block stays free until the peer it was given to binds it."""

    def __init__(self, first: int = 20000) -> None:
        self.first = first
        self.last = 0  # set on first use: the namespace's ephemeral range, once we are in it
        self._next = first
        self._lock = threading.Lock()

    def block(self, count: int = 1, align: int = 2) -> int:
        """First port of ``count`` free consecutive ports; the first is a multiple of
        ``align`` (RTP wants even ports, baresip's ``sip_listen`` p also takes p+1)."""
        with self._lock:
            if not self.last:
                self.last = _ephemeral_range()[0] - 1
            for _ in range(2):  # a second pass after wrapping around once
                while self._next + count - 1 <= self.last:
                    base = -(-self._next // align) * align
                    self._next = base + count
                    if base + count - 1 <= self.last and all(
                        _bindable(p) for p in range(base, base + count)
                    ):
                        return base
                self._next = self.first
        raise RuntimeError(f"no {count} free consecutive ports in {self.first}-{self.last}")


PORTS = PortAllocator()


def free_ports(count: int = 1, align: int = 2) -> int:
    """First of ``count`` consecutive free ports (see PortAllocator)."""
    return PORTS.block(count, align)


def free_port() -> int:
    return PORTS.block(1, 1)


# ------------------------------------------------------------------------- audio files
def tone_wav(path: Path, freq_hz: float, seconds: float, rate: int = 8000,
             amplitude: float = 0.3) -> Path:
    """A sine tone as a 16-bit mono WAV (amplitude relative to full scale)."""
    t = np.arange(round(seconds * rate)) / rate
    samples = np.round(amplitude * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def pcmu_pcap(wav: Path, pcap: Path, ptime_ms: int = 20) -> Path:
    """An RTP/PCMU pcap for SIPp's ``play_pcap_audio`` from an 8 kHz mono 16-bit WAV, made by
    the kit's ``tools/mkpcap.py``."""
    subprocess.run(
        [sys.executable, str(telephony_file("tools/mkpcap.py")), str(wav), str(pcap), "pcmu",
         str(ptime_ms)],
        check=True, capture_output=True,
    )
    return pcap


def read_wav(path: Path) -> tuple[npt.NDArray[np.float64], int]:
    """Samples of a 16-bit PCM WAV as floats in [-1, 1), shape (frames, channels), and the
    sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit samples, expected 16-bit")
        channels, rate = w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if not raw:
        raise ValueError(f"{path}: no audio frames (a recording that is still open?)")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    return data.reshape(-1, channels), rate


def _segment(path: Path, start_s: float, end_s: float | None,
             channel: int | None) -> tuple[npt.NDArray[np.float64], int]:
    data, rate = read_wav(path)
    x = data.mean(axis=1) if channel is None else data[:, channel]
    lo = round(start_s * rate)
    hi = len(x) if end_s is None else round(end_s * rate)
    if hi > len(x) or hi - lo < 2:
        raise ValueError(f"{path}: {len(x) / rate:.3f} s of audio, asked for {start_s}-{end_s} s")
    return x[lo:hi], rate


def duration_s(path: Path) -> float:
    data, rate = read_wav(path)
    return len(data) / rate


def rms(path: Path, channel: int | None = None, start_s: float = 0.0,
        end_s: float | None = None) -> float:
    """Root mean square level, relative to full scale (a full-scale sine is 0.707).
    ``channel=None`` averages the channels of a stereo file."""
    x, _ = _segment(path, start_s, end_s, channel)
    return float(np.sqrt(np.mean(x * x)))


def _power_spectrum(x: npt.NDArray[np.float64],
                    rate: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    spectrum[0] = 0.0  # DC offset is not a frequency anyone hears
    return np.fft.rfftfreq(len(x), 1.0 / rate), spectrum


def dominant_frequency(path: Path, start_s: float = 0.0, end_s: float | None = None,
                       channel: int | None = None) -> float:
    """Frequency (Hz) of the strongest FFT bin (Hann window) of [start_s, end_s). The bin
    width, i.e. the resolution, is 1 / (end_s - start_s) Hz."""
    x, rate = _segment(path, start_s, end_s, channel)
    freqs, power = _power_spectrum(x, rate)
    return float(freqs[int(np.argmax(power))])


def band_energy_fraction(path: Path, center_hz: float, half_width_hz: float,
                         start_s: float = 0.0, end_s: float | None = None,
                         channel: int | None = None) -> float:
    """Share of the signal's energy (DC excluded) within ``center_hz ± half_width_hz``: close
    to 1 for a clean tone at that frequency, small if another sound dominates."""
    x, rate = _segment(path, start_s, end_s, channel)
    freqs, power = _power_spectrum(x, rate)
    total = float(power.sum())
    if total == 0.0:
        return 0.0
    band = np.abs(freqs - center_hz) <= half_width_hz
    return float(power[band].sum()) / total


# ------------------------------------------------------------------------------ baresip
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies without cleaning up."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


_tools: dict[str, ModuleType] = {}


def _tool(name: str) -> ModuleType:
    """A module of the kit's tools/ directory, imported by path."""
    if name not in _tools:
        spec = importlib.util.spec_from_file_location(name, telephony_file(f"tools/{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _tools[name] = module
    return _tools[name]


def _wav_finalized(path: Path) -> bool:
    """baresip's sndfile writes the RIFF sizes only when the call's audio closes."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
        return len(head) == 8 and int.from_bytes(head[4:8], "little") + 8 == path.stat().st_size
    except OSError:
        return False


@dataclass(frozen=True)
class Registration:
    """What an agent phone registers with: registrar on 127.0.0.1:port, digest password."""

    registrar_port: int
    password: str
    regint: int = 600


_STATUS_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] audio=")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BaresipPhone:
    """One baresip process: a SIP phone on 127.0.0.1 whose microphone is a WAV file and which
    records both directions of each call to ``record_dir``.

    As a plain caller (``registration=None``) its AOR is ``sip:NAME@127.0.0.1`` with
    ``regint=0``; as an agent it registers ``sip:NAME@127.0.0.1:REGISTRAR_PORT`` with a digest
    password. Ports are allocated unless given: SIP p and p+1 (baresip takes both), RTP in an
    even 10-port range (RTP+RTCP, no rtcp-mux), and the ctrl_tcp port. Use the phone through
    ``request``/``wait`` (they keep every event in ``events``); ``ctrl`` is the kit's
    ``Ctrl`` client for anything else."""

    def __init__(self, name: str, workdir: Path, mic_wav: Path, *,
                 answermode: AnswerMode = "auto", registration: Registration | None = None,
                 sip_port: int | None = None, rtp_ports: tuple[int, int] | None = None,
                 ctrl_port: int | None = None) -> None:
        self.name = name
        self.dir = workdir / f"baresip-{name}"
        self.record_dir = self.dir / "recordings"
        self.log_path = self.dir / "baresip.log"
        self.mic_wav = mic_wav.resolve()
        self.answermode: AnswerMode = answermode
        self.registration = registration
        self.sip_port = sip_port if sip_port is not None else free_ports(2)
        if rtp_ports is None:
            first = free_ports(10)
            rtp_ports = (first, first + 9)
        self.rtp_ports = rtp_ports
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ctrl: Any = None
        self.events: list[Json] = []
        self._cursor = 0
        self._responses: dict[str, Json] = {}

    # -- identity
    @property
    def uri(self) -> str:
        """Where to send an INVITE to reach this phone directly."""
        return f"sip:{self.name}@{LOCALHOST}:{self.sip_port}"

    @property
    def aor(self) -> str:
        if self.registration is None:
            return f"sip:{self.name}@{LOCALHOST}"
        return f"sip:{self.name}@{LOCALHOST}:{self.registration.registrar_port}"

    def account_line(self) -> str:
        params = [f"answermode={self.answermode}", "audio_codecs=PCMU"]
        reg = self.registration
        if reg is None:
            params.insert(0, "regint=0")
        else:
            params[:0] = [f"auth_pass={reg.password}", f"regint={reg.regint}"]
        return f"<{self.aor};transport=udp>;" + ";".join(params)

    def write_config(self) -> None:
        template = telephony_file("baresip/config.template").read_text()
        values = {
            "SIP_PORT": self.sip_port, "MIC_WAV": self.mic_wav, "RTP_MIN": self.rtp_ports[0],
            "RTP_MAX": self.rtp_ports[1], "CTRL_PORT": self.ctrl_port,
            "RECORD_DIR": self.record_dir,
        }
        for key, value in values.items():
            template = template.replace(f"@{key}@", str(value))
        settings = [line for line in template.splitlines() if not line.startswith("#")]
        leftover = re.findall(r"@[A-Z_]+@", "\n".join(settings))
        assert not leftover, f"unfilled placeholders in the baresip template: {leftover}"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config").write_text(template)
        (self.dir / "accounts").write_text(self.account_line() + "\n")

    # -- process
    def start(self, timeout: float = 10.0) -> BaresipPhone:
        """Start baresip and connect to its ctrl_tcp; ready to dial and be called."""
        assert self.proc is None, "already started"
        self.write_config()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip {self.name} exited with {self.proc.returncode} "
                                   f"while starting:\n{self.log_tail()}")
            try:
                socket.create_connection((LOCALHOST, self.ctrl_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"baresip {self.name}: no ctrl_tcp on {self.ctrl_port}"
                                       f"\n{self.log_tail()}") from None
                time.sleep(0.05)
        self.ctrl = _tool("baresip_ctrl").Ctrl(self.ctrl_port)
        return self

    def stop(self, timeout: float = 2.0) -> int | None:
        """Quit baresip and return its exit code; safe to call twice. ``quit`` over ctrl first
        (it un-registers); if that takes longer than ``timeout`` (an un-REGISTER to a
        registrar that is gone waits for its transaction to time out) SIGTERM twice (baresip
        exits at once on the second), then SIGKILL."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None and self.ctrl is not None:
            with contextlib.suppress(OSError, SystemExit):
                self.ctrl.cmd("quit")
        for signal_after, wait_s in ((proc.terminate, timeout), (proc.terminate, 0.3),
                                     (proc.kill, 2.0)):
            try:
                proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                signal_after()
        proc.wait()
        if self.ctrl is not None:
            self.ctrl.s.close()
            self.ctrl = None
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The end of baresip's output, without its status-line updates and colours."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [_ANSI.sub("", line) for line in re.split(r"[\r\n]+", text)]
        kept = [line for line in kept if line.strip() and not _STATUS_LINE.match(line)]
        return "\n".join(kept[-lines:])

    # -- control
    def _pump(self, timeout: float) -> None:
        try:
            self.ctrl._read(timeout)
        except SystemExit as exc:  # the kit's client exits when baresip closes the socket
            raise RuntimeError(f"baresip {self.name}: {exc}\n{self.log_tail()}") from None
        for msg in self.ctrl.events:
            if msg.get("event"):
                self.events.append(msg)
            elif msg.get("response"):
                self._responses[str(msg.get("token"))] = msg
        self.ctrl.events.clear()

    def request(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a baresip command (``dial``, ``hangup``, ``accept``, ``sndcode``, ``reginfo``,
        …) and return its text output; raises if baresip reports failure."""
        assert self.ctrl is not None, "phone not started"
        try:
            self.ctrl.cmd(command, params)
        except SystemExit as exc:
            raise RuntimeError(f"baresip {self.name}: {exc}\n{self.log_tail()}") from None
        token = str(self.ctrl.tok)
        deadline = time.monotonic() + timeout
        while token not in self._responses:
            if time.monotonic() > deadline:
                raise TimeoutError(f"baresip {self.name}: no response to {command!r}\n"
                                   f"{self.log_tail()}")
            self._pump(0.1)
        response = self._responses.pop(token)
        data = _ANSI.sub("", str(response.get("data", "")))
        if not response.get("ok"):
            raise RuntimeError(f"baresip {self.name}: {command} {params!r} failed: {data}")
        return data

    def wait(self, event: str, timeout: float = 10.0) -> Json:
        """The next event of this type (e.g. ``CALL_INCOMING``, ``CALL_ESTABLISHED``,
        ``CALL_CLOSED``, ``CALL_DTMF_START``) after the last one ``wait`` returned."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self._cursor, len(self.events)):
                if self.events[i].get("type") == event:
                    self._cursor = i + 1
                    return self.events[i]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.get("type") for e in self.events[self._cursor:]]
                raise TimeoutError(f"baresip {self.name}: no {event} within {timeout} s "
                                   f"(events since: {seen})\n{self.log_tail()}")
            self._pump(min(remaining, 0.2))

    def dial(self, uri: str) -> None:
        self.request("dial", uri)

    def answer(self) -> None:
        """Accept the ringing incoming call (for ``answermode="manual"``)."""
        self.request("accept")

    def hangup(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Hang up the current call; by default wait until this phone reports it closed (its
        recordings are complete from then on)."""
        self.request("hangup")
        if wait:
            self.wait("CALL_CLOSED", timeout)

    def send_dtmf(self, digits: str) -> None:
        """Send digits as RFC 4733 telephone-events on the current call."""
        self.request("sndcode", digits)

    def dtmf_received(self, settle: float = 0.2) -> str:
        """The digits received so far (``CALL_DTMF_START`` events), after reading what
        arrives within ``settle`` seconds."""
        self._pump(settle)
        return "".join(str(e.get("param", "")) for e in self.events
                       if e.get("type") == "CALL_DTMF_START")

    def registration_state(self) -> str:
        """The account's state as ``reginfo`` shows it: ``OK`` once the registrar answered 200,
        ``ERR`` after a refusal or a timeout, ``zzz`` before any answer."""
        info = self.request("reginfo")
        match = re.search(r"^>\s*\S+\s+(\S+)", info, re.MULTILINE)
        return match.group(1) if match else info.strip()

    def registered(self) -> bool:
        return self.registration_state() == "OK"

    def wait_registered(self, timeout: float = 5.0) -> float:
        """Poll until registered and return the seconds it took; raises at once if the
        registrar refused. (REGISTER_OK usually fires before the ctrl connection exists, so
        it cannot be waited for as an event.)"""
        start = time.monotonic()
        while (state := self.registration_state()) != "OK":
            if state == "ERR" or time.monotonic() - start > timeout:
                raise AssertionError(f"baresip {self.name} is not registered ({state}) after "
                                     f"{time.monotonic() - start:.2f} s\n{self.log_tail()}")
            time.sleep(0.05)
        return time.monotonic() - start

    def recordings(self, kind: RecordingKind | None = None,
                   timeout: float = 5.0) -> list[Path]:
        """The call recordings, oldest first: ``dump-<YYYY-MM-DD-hh-mm-ss>-enc.wav`` (what
        this phone sent) and ``-dec.wav`` (what it heard), one pair per call. Waits until
        baresip has finished writing them (after its CALL_CLOSED). The names have a
        one-second resolution: two calls of one phone within a second share a pair."""
        pattern = "dump-*-*.wav" if kind is None else f"dump-*-{kind}.wav"
        paths = sorted(self.record_dir.glob(pattern))
        deadline = time.monotonic() + timeout
        while not all(_wav_finalized(p) for p in paths):
            if time.monotonic() > deadline:
                open_ = [p.name for p in paths if not _wav_finalized(p)]
                raise TimeoutError(f"baresip {self.name}: recordings still open: {open_}")
            time.sleep(0.05)
        return paths


class PhoneFactory(Protocol):
    """The ``phones`` fixture: a started phone, stopped after the test."""

    def __call__(self, name: str, mic_wav: Path, *, answermode: AnswerMode = "auto",
                 registration: Registration | None = None) -> BaresipPhone: ...


# --------------------------------------------------------------------------------- SIPp
@dataclass
class SippResult:
    """What a SIPp run left: exit code (0 = every call succeeded, 1 = some failed, 97 =
    stopped by command, 99 = no call processed, 255/254 = fatal error), its output and trace
    files, and the final counters of its statistics file."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    stats: dict[str, str]
    messages: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def _count(self, column: str) -> int | None:
        value = self.stats.get(column)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def successful_calls(self) -> int | None:
        return self._count("SuccessfulCall(C)")

    @property
    def failed_calls(self) -> int | None:
        return self._count("FailedCall(C)")

    @property
    def total_calls(self) -> int | None:
        return self._count("TotalCallCreated")

    @property
    def retransmissions(self) -> int | None:
        return self._count("Retransmissions(C)")

    def summary(self, tail: int = 3000) -> str:
        """For assertion messages: exit code, counters, stderr, errors and the SIP trace."""
        return (f"sipp exit {self.returncode}: {self.successful_calls} successful, "
                f"{self.failed_calls} failed calls\n$ {' '.join(self.command)}\n"
                f"--- stderr\n{self.stderr[-tail:]}\n--- errors\n{self.errors[-tail:]}\n"
                f"--- messages\n{self.messages[-tail:]}\n--- screen\n{self.stdout[-tail:]}")


def _last_stats(path: Path) -> dict[str, str]:
    try:
        rows = [r for r in path.read_text(errors="replace").splitlines() if r.strip()]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))


_sipp_runs = itertools.count(1)


@dataclass
class Sipp:
    """One SIPp run of ``scenario`` (absolute path; see ``scenario()``) against
    ``remote`` ("127.0.0.1:PORT"; None for a UAS that waits for requests). Local SIP (-p),
    media (-mp, 4 ports) and control (-cp) ports are allocated unless given. Always traces
    messages, errors, statistics and the final screen into ``workdir``."""

    scenario: Path
    workdir: Path
    remote: str | None = None
    service: str | None = None  # -s: user part of the request URI
    keys: Mapping[str, str] = field(default_factory=dict)  # -key NAME VALUE
    duration_ms: int | None = None  # -d: length of <pause/>
    calls: int | None = 1  # -m: stop after this many calls
    rate: float | None = None  # -r: calls per second
    limit: int | None = None  # -l: concurrent calls
    local_port: int | None = None
    media_port: int | None = None
    control_port: int | None = None
    timeout_s: float = 60.0  # -timeout with -timeout_error: SIPp fails if it takes longer
    extra_args: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.scenario = self.scenario.resolve()
        if self.local_port is None:
            self.local_port = free_ports(2)
        if self.media_port is None:
            self.media_port = free_ports(4)
        if self.control_port is None:
            self.control_port = free_port()
        self.name = f"sipp{next(_sipp_runs)}-{self.scenario.stem}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.message_file = self.workdir / f"{self.name}-messages.log"
        self.error_file = self.workdir / f"{self.name}-errors.log"
        self.stat_file = self.workdir / f"{self.name}-stats.csv"
        self.screen_file = self.workdir / f"{self.name}-screen.log"
        self.stdout_file = self.workdir / f"{self.name}.out"
        self.stderr_file = self.workdir / f"{self.name}.err"

    @property
    def port(self) -> int:
        """SIPp's local SIP port (-p)."""
        assert self.local_port is not None
        return self.local_port

    def command(self) -> list[str]:
        cmd = ["sipp"] + ([self.remote] if self.remote else [])
        cmd += ["-sf", str(self.scenario), "-i", LOCALHOST, "-mi", LOCALHOST,
                "-p", str(self.local_port), "-mp", str(self.media_port),
                "-cp", str(self.control_port), "-nostdin"]
        if self.service is not None:
            cmd += ["-s", self.service]
        for key, value in self.keys.items():
            cmd += ["-key", key, str(value)]
        for flag, value in (("-d", self.duration_ms), ("-m", self.calls), ("-r", self.rate),
                            ("-l", self.limit)):
            if value is not None:
                cmd += [flag, str(value)]
        cmd += ["-timeout", f"{max(1, round(self.timeout_s))}s", "-timeout_error",
                "-trace_msg", "-message_file", str(self.message_file),
                "-trace_err", "-error_file", str(self.error_file),
                "-trace_stat", "-stf", str(self.stat_file),
                "-trace_screen", "-screen_file", str(self.screen_file)]
        return cmd + list(self.extra_args)

    def start(self) -> Sipp:
        """Start in the background (a UAS, or a UAC while the test drives other peers)."""
        assert self.proc is None, "already started"
        with self.stdout_file.open("wb") as out, self.stderr_file.open("wb") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=self.workdir,
                                         preexec_fn=_die_with_parent)
        return self

    def wait_listening(self, timeout: float = 5.0) -> None:
        """Until SIPp has bound its SIP port (a UAS is then ready for requests)."""
        assert self.proc is not None, "not started"
        deadline = time.monotonic() + timeout
        while _udp_bindable(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} is not listening on {self.port}: "
                                   f"{self.wait(0).summary()}")
            time.sleep(0.02)

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit (killing it ``timeout`` s from now, by default a little after
        its own -timeout) and collect the result."""
        assert self.proc is not None, "not started"
        try:
            self.proc.wait(self.timeout_s + 10 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

        def text(path: Path) -> str:
            return path.read_text(errors="replace") if path.exists() else ""

        return SippResult(
            command=self.command(), returncode=self.proc.returncode,
            stdout=text(self.stdout_file), stderr=text(self.stderr_file),
            stats=_last_stats(self.stat_file), messages=text(self.message_file),
            errors=text(self.error_file),
        )

    def run(self, timeout: float | None = None) -> SippResult:
        return self.start().wait(timeout)

    def stop(self) -> None:
        """Kill it if still running (fixture teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def scenario(name: str) -> Path:
    """A SIPp scenario: this directory's ``sipp/NAME`` if there is one, else the kit's."""
    local = LOCAL_SCENARIOS / name
    return local if local.exists() else telephony_file(f"sipp/{name}")


def assert_tone(recording: Path, freq_hz: float, start_s: float, end_s: float, *,
                channel: int | None = None, level: float | None = None,
                purity: float = 0.95) -> None:
    """``recording`` holds a clean tone of ``freq_hz`` in [start_s, end_s) (of ``channel``):
    the strongest FFT bin is on it (±2 bins), at least ``purity`` of the energy is within
    ±10 bins, and, if ``level`` is given, its RMS is within -20 %/+5 % of it (G.711 keeps a
    tone's level within a fraction of a dB; gaps or attenuation lower it)."""
    where = f"{recording.name}" + ("" if channel is None else f" channel {channel}")
    bin_hz = 1.0 / (end_s - start_s)
    peak = dominant_frequency(recording, start_s, end_s, channel)
    assert abs(peak - freq_hz) <= 2 * bin_hz, (
        f"{where} [{start_s:.2f}, {end_s:.2f}) s: strongest at {peak} Hz, not {freq_hz} Hz")
    share = band_energy_fraction(recording, freq_hz, 10 * bin_hz, start_s, end_s, channel)
    assert share >= purity, f"{where}: only {share:.3f} of the energy at {freq_hz} Hz"
    if level is not None:
        measured = rms(recording, channel, start_s, end_s)
        assert 0.8 * level <= measured <= 1.05 * level, (
            f"{where}: RMS {measured:.4f}, the tone was sent at {level:.4f}")
