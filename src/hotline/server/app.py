"""The Hotline server: HTTP API, CTI event stream, live ACD and traffic drivers in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from hotline import web
from hotline.calls.switch import SwitchConfig
from hotline.db.database import migrate, open_database
from hotline.db.schema import Tenant
from hotline.events.store import EventStore
from hotline.media.tts import TtsError
from hotline.server import problems
from hotline.server.adherence import LiveAdherence
from hotline.server.api import (
    adherence,
    auth,
    config,
    control,
    ivr,
    notices,
    realtime,
    reports,
    telephony,
    wfm,
)
from hotline.server.catalog import ensure_platform, tenant_setup
from hotline.server.hub import Hub
from hotline.server.live import LiveCenter
from hotline.server.security import generate_password
from hotline.server.state import ServerState

log = logging.getLogger("hotline.server")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
API = "/api/v1"


@dataclass
class Settings:
    db_url: str
    demo: bool = False
    url: str = "http://127.0.0.1:8080"
    admin_password: str | None = None  # first start only; generated and printed when absent
    demo_password: str | None = None
    stats_period: float = 1.0
    sip: SwitchConfig | None = None  # None: no SIP (API and simulated traffic only)
    recordings: Path | None = None  # default: "recordings" beside a SQLite database
    say: Callable[[str], None] = print  # where the one-time start-up notice goes


def default_db_url(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'hotline.db').resolve()}"


def default_recordings(db_url: str) -> Path:
    """Recordings live beside an SQLite database, else under ./data/recordings."""
    if db_url.startswith("sqlite:///"):
        return Path(db_url.removeprefix("sqlite:///")).parent / "recordings"
    return Path("data") / "recordings"


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_database(settings.db_url)
        await asyncio.to_thread(migrate, engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        store = EventStore(engine)
        center = LiveCenter(store)
        hub = Hub()
        center.publishers.append(hub.publish)
        state = ServerState(engine=engine, sessions=sessions, center=center, hub=hub)
        state.recordings = settings.recordings or default_recordings(settings.db_url)
        if settings.sip is not None:
            state.sip_realm = settings.sip.realm
        app.state.hotline = state
        app.state.login_hooks = []
        notice: list[str] = [
            f"Hotline is serving {settings.url}  (screens: {settings.url}/#/login in 中文 or "
            f"English; API: {settings.url}{API}/docs)"]
        with sessions() as db:
            generated = ensure_platform(db, settings.admin_password)
            if generated:
                notice.append(
                    f"  platform admin: tenant 'platform', user 'admin', password {generated}"
                )
            demo_tenant = None
            demo_phone_notice = None
            if settings.demo:
                from hotline.server import demo

                password = settings.demo_password or generate_password()
                demo_tenant, users, created = demo.seed(db, password)
                if settings.demo_password:
                    shown = "(from HOTLINE_DEMO_PASSWORD)"
                else:
                    shown = password if created else "(as printed when it was first created)"
                notice.append(f"  demo tenant '{demo.SLUG}' ({demo.NAME}); password {shown}")
                notice.append(f"    users: {', '.join(users[:4])}, agents {users[4]} … {users[-1]}")
                if settings.sip is not None:
                    created_phones = demo.ensure_phones(
                        db, demo_tenant, password, settings.sip.realm
                    )
                    demo.ensure_supervisor_phone(db, demo_tenant, password, settings.sip.realm)
                    try:
                        demo.ensure_ivr(db, demo_tenant)
                    except TtsError as err:  # the demo still takes calls, without its IVR
                        db.rollback()
                        log.warning("demo IVR not created: %s", err)
                    phone_password = (
                        password if created_phones and not settings.demo_password else shown
                    )
                    phones = " or ".join(ext for _, ext in demo.PHONE_AGENTS)
                    demo_phone_notice = (
                        f"  phones: register {phones} with password {phone_password} at {{sip}}"
                        "\n    then call sip:" + demo.PHONE_DID + "@{sip} from another "
                        "softphone on your network: the IVR (1 中文, 2 English) puts you "
                        "through to a registered phone; sip:" + demo.DIRECT_DID + "@{sip} "
                        "rings it directly"
                        f"\n    the supervisor's phone is {demo.SUPERVISOR_PHONE} (same password):"
                        " as user supervisor, PUT /api/v1/calls/<id>/monitor with mode listen,"
                        " whisper, barge or take_over calls it into a call"
                    )
            for tenant in db.scalars(select(Tenant).order_by(Tenant.id)):
                center.add_tenant(tenant_setup(db, tenant))
        live_adherence = state.adherence = LiveAdherence(sessions, hub, center.clock)
        for running in center.tenants.values():
            live_adherence.start_tenant(running)
        center.publishers.append(live_adherence.publish)
        await center.start()
        switch = None
        if settings.sip is not None:
            from hotline.calls.switch import Switch

            switch = Switch(center, sessions, state.recordings, settings.sip)
            try:
                await switch.start()
            except OSError as err:
                await center.stop()
                raise SystemExit(
                    f"cannot listen for SIP on {settings.sip.host}:{settings.sip.port}: "
                    f"{err.strerror or err}"
                ) from None
            state.telephony = switch
            if demo_phone_notice is not None:
                notice.append(demo_phone_notice.format(
                    sip=f"{settings.sip.advertised}:{switch.port}"))
            notice.append(
                f"  SIP: {settings.sip.advertised}:{switch.port} (UDP and TCP), "
                f"realm '{settings.sip.realm}', RTP ports "
                f"{settings.sip.rtp_ports[0]}-{settings.sip.rtp_ports[1]}"
            )
        traffic = None
        if demo_tenant is not None:
            from hotline.server.demo import DemoTraffic

            traffic = DemoTraffic(center, demo_tenant.id, adherence=live_adherence)
            app.state.login_hooks.append(traffic.release)
            await traffic.start()

        async def ticker() -> None:
            while True:
                await asyncio.sleep(settings.stats_period)
                now = center.clock()
                tenants = list(center.tenants.values())
                for tenant in tenants:
                    hub.publish_stats(tenant, now)
                try:
                    live_adherence.tick(tenants, now)
                    await live_adherence.extend(tenants, now)
                except Exception:  # the stats ticks must go on
                    log.exception("adherence tick failed")

        tick = asyncio.create_task(ticker())
        settings.say("\n".join(notice))
        try:
            yield
        finally:
            tick.cancel()
            if traffic is not None:
                await traffic.stop()
            if switch is not None:
                await switch.stop()
            await center.stop()
            engine.dispose()

    app = FastAPI(
        title="Hotline",
        version="0.1.0",
        description="Open-source call center: ACD, CTI and reports.",
        lifespan=lifespan,
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
    )
    problems.install(app)
    for module in (auth, config, control, realtime, reports, telephony, ivr, notices, wfm,
                   adherence):
        app.include_router(module.router, prefix=API)

    @app.get(f"{API}/health", tags=["health"])
    async def health() -> dict[str, object]:
        center = app.state.hotline.center
        if center.failure is not None:
            raise problems.ApiError(503, "Service Unavailable", str(center.failure))
        out: dict[str, object] = {
            "status": "ok",
            "tenants": len(center.tenants),
            "events_stored": center.stored_events,
        }
        switch = app.state.hotline.telephony
        if switch is not None:
            out.update(switch.stats())
        return out

    web.mount(app)  # last: the API's routes come first
    return app


def serve(
    db_url: str | None,
    host: str,
    port: int,
    data_dir: Path,
    demo: bool,
    log_level: str = "info",
    sip: SwitchConfig | None = None,
) -> None:
    import uvicorn

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    hotline_log = logging.getLogger("hotline")
    hotline_log.addHandler(handler)
    hotline_log.setLevel(log_level.upper())
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    settings = Settings(
        db_url=db_url or default_db_url(data_dir),
        demo=demo,
        url=f"http://{url_host}:{port}",
        admin_password=os.environ.get("HOTLINE_ADMIN_PASSWORD") or None,
        demo_password=os.environ.get("HOTLINE_DEMO_PASSWORD") or None,
        say=lambda text: print(text, file=sys.stdout, flush=True),
        sip=sip,
        recordings=data_dir / "recordings",
    )

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # SIGTERM/SIGINT mean a graceful shutdown that ends with exit status 0 (uvicorn
            # would re-raise the signal once shut down, and the process would die of it).
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    app = create_app(settings)
    # No per-message deflate: compressing each small event for each connection costs more
    # CPU than the whole fan-out (see bench/server_websocket.py).
    config_ = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ws_per_message_deflate=False,
    )
    Server(config_).run()
