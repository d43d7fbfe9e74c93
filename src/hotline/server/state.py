"""What the request handlers share: database, live center, event hub; and who is calling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, Header, Request, WebSocket
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from hotline.db.schema import Agent, AuditEntry, Credential, Tenant, User
from hotline.server.adherence import LiveAdherence
from hotline.server.hub import Hub
from hotline.server.live import LiveCenter
from hotline.server.problems import ApiError, forbidden
from hotline.server.security import LoginThrottle, Principal, digest


class TelephonyError(Exception):
    """The SIP side cannot do what was asked; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Telephony(Protocol):
    """What the API asks of the SIP side (absent when the server runs without SIP)."""

    def phone_status(self, username: str) -> list[dict[str, Any]]:
        """The phone's current registrations (contact, source, user_agent, expires_in)."""
        ...

    def stats(self) -> dict[str, Any]:
        """SIP and media counters for the health check."""
        ...

    async def reload(self) -> None:
        """Re-read phone accounts, trunks and routes after the API changed them."""
        ...

    async def monitor(self, tenant_id: int, call_id: str, user: str, mode: str
                      ) -> dict[str, Any]:
        """Call ``user``'s phone into the call (or change its mode): listen, whisper, barge,
        take_over. Raises an error with an HTTP ``status`` when it cannot."""
        ...

    async def stop_monitor(self, tenant_id: int, call_id: str, user: str) -> None:
        """Hang up ``user``'s monitoring phone ("" for whoever's it is)."""
        ...

    async def recording_control(self, tenant_id: int, call_id: str, state: str
                                ) -> dict[str, Any]:
        """Start (on demand), pause or resume a call's recording (``state``: on, paused)."""
        ...

    async def transfer_out(self, tenant_id: int, call_id: str, number: str,
                           trunk: str | None = None) -> dict[str, Any]:
        """Blind transfer of a connected call to an outside number through a trunk."""
        ...

    async def consult(self, tenant_id: int, call_id: str, agent: str | None = None,
                      number: str | None = None, trunk: str | None = None) -> dict[str, Any]:
        """Hold the caller and connect the agent's phone to a colleague's or a number."""
        ...

    async def consult_cancel(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        """End the consultation: the agent has the caller back."""
        ...

    async def consult_transfer(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        """Hand the caller to the one consulted (attended transfer)."""
        ...

    async def conference(self, tenant_id: int, call_id: str) -> dict[str, Any]:
        """Caller, agent and the one consulted all hear each other."""
        ...

    async def dial(self, tenant_id: int, agent: str, number: str, queue: str | None = None,
                   trunk: str | None = None) -> dict[str, Any]:
        """Click-to-call: ring ``agent``'s phone, then ``number`` through a trunk."""
        ...


@dataclass
class ServerState:
    engine: Engine
    sessions: sessionmaker[Session]
    center: LiveCenter
    hub: Hub
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    sip_realm: str = "hotline"  # digest realm: phones' stored HA1s depend on it
    recordings: Path | None = None  # where call recordings are written
    telephony: Telephony | None = None
    adherence: LiveAdherence | None = None
    _principals: dict[str, tuple[Principal, float]] = field(default_factory=dict)

    def forget_credentials(self) -> None:
        """Drop cached principals (after a user, role or credential changes)."""
        self._principals.clear()

    def revoke_user(self, db: Session, user_id: int) -> None:
        """A user was deactivated, deleted, or got a new password or role: end its log-in
        sessions (API keys stay until revoked) and cut its open event streams."""
        db.execute(
            update(Credential)
            .where(Credential.user_id == user_id, Credential.kind == "token")
            .values(revoked=True)
        )
        self.forget_credentials()
        self.hub.drop_user(user_id)

    def authenticate(self, secret: str) -> Principal | None:
        key = digest(secret)
        now = time.time()
        hit = self._principals.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.sessions() as db:
            row = db.execute(
                select(Credential, User, Tenant)
                .join(User, Credential.user_id == User.id)
                .join(Tenant, Credential.tenant_id == Tenant.id)
                .where(Credential.secret_hash == key, Credential.revoked.is_(False))
            ).first()
            if row is None:
                return None
            cred, user, tenant = row
            if not user.active or (cred.expires_at is not None and cred.expires_at <= now):
                return None
            agent = db.scalar(select(Agent.code).where(Agent.user_id == user.id))
            principal = Principal(
                user_id=user.id,
                username=user.username,
                tenant_id=tenant.id,
                tenant_slug=tenant.slug,
                role=user.role,
                agent=agent,
                teams=frozenset(user.teams or ()),
                queues=frozenset(user.queues or ()),
            )
        expires = min(now + 60.0, cred.expires_at or now + 60.0)
        self._principals[key] = (principal, expires)
        return principal


def get_state(request: Request) -> ServerState:
    return request.app.state.hotline  # type: ignore[no-any-return]


def get_db(request: Request) -> Iterator[Session]:
    with get_state(request).sessions() as db:
        yield db


def _secret(authorization: str | None, api_key: str | None) -> str | None:
    if api_key:
        return api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _acting(state: ServerState, principal: Principal, tenant_slug: str | None) -> Principal:
    """A platform admin may act inside any tenant by naming it (``X-Hotline-Tenant``)."""
    if not tenant_slug or tenant_slug == principal.tenant_slug:
        return principal
    if not principal.platform_admin:
        raise forbidden("only platform administrators may act in another tenant")
    with state.sessions() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    if tenant is None:
        raise ApiError(404, "Not Found", f"tenant {tenant_slug!r} not found")
    return Principal(
        user_id=principal.user_id,
        username=f"{principal.tenant_slug}/{principal.username}",  # as the audit log shows it
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        role="admin",
    )


def get_principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    x_hotline_tenant: Annotated[str | None, Header()] = None,
) -> Principal:
    state = get_state(request)
    secret = _secret(authorization, x_api_key)
    principal = state.authenticate(secret) if secret else None
    if principal is None:
        raise ApiError(
            401,
            "Unauthorized",
            "a valid bearer token or API key is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return _acting(state, principal, x_hotline_tenant)


def websocket_principal(ws: WebSocket) -> Principal | None:
    """Browsers cannot set headers on a WebSocket: the token may come as ``?token=``."""
    state: ServerState = ws.app.state.hotline
    secret = _secret(ws.headers.get("authorization"), ws.headers.get("x-api-key"))
    secret = secret or ws.query_params.get("token")
    return state.authenticate(secret) if secret else None


class Roles:
    """Dependency: the caller must have one of these roles."""

    def __init__(self, *roles: str) -> None:
        self.roles = frozenset(roles)

    def __call__(self, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in self.roles:
            raise forbidden()
        return principal


def audit(db: Session, who: Principal, action: str, target: str, **detail: object) -> None:
    """Record a configuration change or supervisor action (the caller commits)."""
    db.add(
        AuditEntry(
            tenant_id=who.tenant_id,
            ts=time.time(),
            actor=who.username,
            action=action,
            target=target,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )


DB = Annotated[Session, Depends(get_db)]
State = Annotated[ServerState, Depends(get_state)]
Caller = Annotated[Principal, Depends(get_principal)]
Admin = Annotated[Principal, Depends(Roles("admin"))]
Supervisor = Annotated[Principal, Depends(Roles("admin", "supervisor"))]
Staff = Annotated[Principal, Depends(Roles("admin", "supervisor", "qa", "planner"))]
