"""End-to-end telephony tests run in a private network namespace (only loopback).

When this directory is collected — by ``pytest``, ``make test`` or ``pytest tests/e2e`` — the
pytest process itself moves into a new network namespace during configuration, before any test
runs and while it has a single thread, so every test (of the whole session), every thread and
every child process (peers, Hotline, PostgreSQL) lives there. See README.md.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from .peers import (
    AnswerMode,
    BaresipPhone,
    PhoneFactory,
    Registration,
    Sipp,
    enter_private_netns,
    in_private_netns,
    scenario,
    tone_wav,
)
from .server import CallCenter, EventStream, HotlineServer

E2E_DIR = Path(__file__).resolve().parent
_netns_problem: str | None = None
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_configure(config: pytest.Config) -> None:
    global _netns_problem
    config.addinivalue_line(
        "markers", "e2e: end-to-end telephony test with real SIP peers (private network "
        "namespace, root, sip-tester and baresip)")
    try:
        enter_private_netns()
    except subprocess.CalledProcessError as exc:
        _netns_problem = f"{' '.join(exc.cmd)}: {exc.stderr.decode(errors='replace').strip()}"
    except (OSError, RuntimeError) as exc:
        _netns_problem = str(exc)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(node: pytest.Item) -> bool:
    return any(r.failed for r in node.stash.get(_REPORTS, {}).values())


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed: apt-get install -y {package}")


@pytest.fixture(autouse=True)
def _private_network() -> None:
    if _netns_problem is not None:
        pytest.fail(f"no private network namespace for the e2e tests: {_netns_problem} "
                    "(leave them out with -m 'not e2e')")
    assert in_private_netns(), "e2e tests must run in the private network namespace"


@pytest.fixture(scope="session")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tone(freq_hz, seconds=30.0)``: an 8 kHz mono WAV of a sine at 0.3 of full scale, made
    once per session. Long by default: baresip hangs up when its microphone file ends."""
    root = tmp_path_factory.mktemp("tones")

    def make(freq_hz: float, seconds: float = 30.0) -> Path:
        path = root / f"tone-{freq_hz:g}hz-{seconds:g}s.wav"
        return path if path.exists() else tone_wav(path, freq_hz, seconds)

    return make


@pytest.fixture
def phones(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PhoneFactory]:
    """``phones(name, mic_wav, answermode=..., registration=...)``: a started baresip phone,
    stopped after the test (its log is printed if the test failed)."""
    _require("baresip", "baresip-core")
    started: list[BaresipPhone] = []

    def make(name: str, mic_wav: Path, *, answermode: AnswerMode = "auto",
             registration: Registration | None = None) -> BaresipPhone:
        phone = BaresipPhone(name, tmp_path, mic_wav, answermode=answermode,
                             registration=registration)
        started.append(phone)
        return phone.start()

    yield make
    for phone in started:
        code = phone.stop()
        if _failed(request.node):
            print(f"--- baresip {phone.name} (exit {code}), {phone.log_path}\n"
                  f"{phone.log_tail()}")


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """``sipp(scenario_name_or_path, **Sipp_fields)``: a SIPp run (not started) with its
    files in the test's tmp dir; killed after the test if still running."""
    _require("sipp", "sip-tester")
    made: list[Sipp] = []

    def make(scenario_file: str | Path, **kwargs: Any) -> Sipp:
        path = scenario(scenario_file) if isinstance(scenario_file, str) else scenario_file
        run = Sipp(path, tmp_path / "sipp", **kwargs)
        made.append(run)
        return run

    yield make
    for run in made:
        run.stop()


@pytest.fixture(scope="session")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HotlineServer]:
    """One ``hotline serve --demo`` for the session (SIP on 127.0.0.1, debug log in its
    directory). Tests share it but never each other's queues, agents, numbers or source
    addresses (see ``center`` and ``server.fresh_loopback``)."""
    server = HotlineServer(tmp_path_factory.mktemp("hotline")).start()
    yield server
    server.stop()


@pytest.fixture
def center(request: pytest.FixtureRequest, hotline: HotlineServer) -> Iterator[CallCenter]:
    """The test's own queues and agents on the session's server, made as admin, and its CTI
    event stream; prints the server's log of the test if it failed."""
    log_start = hotline.log_size()
    admin = hotline.login("admin")
    events = EventStream(admin)
    yield CallCenter(hotline, admin, events)
    events.close()
    admin.close()
    if _failed(request.node):
        code = hotline.proc.poll() if hotline.proc is not None else None
        alive = "running" if code is None else f"exited with {code}"
        print(f"--- hotline ({alive}), {hotline.log_path}, this test's last lines:\n"
              f"{hotline.log_tail(120, since=log_start)}")


@pytest.fixture(scope="module")  # (Playwright's sync API runs an event loop while it is open:
def browser() -> Iterator[Browser]:  # tests after this module use asyncio.run themselves)
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (make test does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()
