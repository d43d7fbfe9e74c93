"""Log-in, log-out, who am I, and API keys for integrations."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from pydantic import Field
from sqlalchemy import select

from hotline.db.schema import Credential, Tenant, User
from hotline.server.catalog import Model
from hotline.server.problems import ApiError, not_found
from hotline.server.security import TOKEN_TTL, digest, new_secret, verify_password
from hotline.server.state import DB, Admin, Caller, State, audit

router = APIRouter(tags=["auth"])


class LoginIn(Model):
    tenant: str = Field(max_length=64)
    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class ApiKeyIn(Model):
    name: str = Field(min_length=1, max_length=100)
    username: str | None = None  # the user the key acts as (default: the caller)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


@router.post("/auth/login")
def login(body: LoginIn, request: Request, db: DB, state: State) -> dict[str, Any]:
    source = request.client.host if request.client else "?"
    account = f"account:{body.tenant}/{body.username}"
    wait = state.throttle.retry_after(account, f"ip:{source}")
    if wait > 0:
        raise ApiError(
            429,
            "Too Many Requests",
            "too many failed log-ins; try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    row = db.execute(
        select(User, Tenant)
        .join(Tenant, User.tenant_id == Tenant.id)
        .where(Tenant.slug == body.tenant, User.username == body.username)
    ).first()
    user = row[0] if row else None
    if not verify_password(user.password_hash if user else None, body.password) or not (
        user and user.active
    ):
        state.throttle.failed(account, f"ip:{source}")
        raise ApiError(401, "Unauthorized", "wrong tenant, username or password")
    state.throttle.succeeded(account)
    token = new_secret("hlt")
    now = time.time()
    db.add(
        Credential(
            tenant_id=user.tenant_id,
            user_id=user.id,
            kind="token",
            secret_hash=digest(token),
            prefix=token[:8],
            created_at=now,
            expires_at=now + TOKEN_TTL,
        )
    )
    db.commit()
    principal = state.authenticate(token)
    assert principal is not None
    for hook in request.app.state.login_hooks:
        hook(principal)
    return {"token": token, "token_type": "bearer", "expires_at": now + TOKEN_TTL, **me(principal)}


@router.post("/auth/logout", status_code=204)
def logout(
    caller: Caller, db: DB, state: State, authorization: Annotated[str | None, Header()] = None
) -> None:
    if authorization and authorization.lower().startswith("bearer "):
        cred = db.scalar(
            select(Credential).where(Credential.secret_hash == digest(authorization[7:].strip()))
        )
        if cred is not None and cred.kind == "token":
            cred.revoked = True
            db.commit()
    state.forget_credentials()


@router.get("/me")
def me(caller: Caller) -> dict[str, Any]:
    return {
        "user": caller.username,
        "tenant": caller.tenant_slug,
        "role": caller.role,
        "agent": caller.agent,
        "teams": sorted(caller.teams),
        "queues": sorted(caller.queues),
        "platform": caller.platform_admin,  # manages all tenants
    }


@router.post("/api-keys", status_code=201)
def create_api_key(body: ApiKeyIn, caller: Admin, db: DB) -> dict[str, Any]:
    username = body.username or caller.username
    user = db.scalar(
        select(User).where(User.tenant_id == caller.tenant_id, User.username == username)
    )
    if user is None:
        raise not_found(f"user {username!r}")
    key = new_secret("hlk")
    now = time.time()
    cred = Credential(
        tenant_id=caller.tenant_id,
        user_id=user.id,
        kind="api_key",
        name=body.name,
        secret_hash=digest(key),
        prefix=key[:8],
        created_at=now,
        expires_at=now + body.expires_in_days * 86400 if body.expires_in_days else None,
    )
    db.add(cred)
    audit(db, caller, "api_key.create", body.name, user=username)
    db.commit()
    return {
        "id": cred.id,
        "name": body.name,
        "key": key,
        "user": username,
        "expires_at": cred.expires_at,
    }


@router.get("/api-keys")
def list_api_keys(caller: Admin, db: DB) -> list[dict[str, Any]]:
    rows = db.execute(
        select(Credential, User.username)
        .join(User, Credential.user_id == User.id)
        .where(Credential.tenant_id == caller.tenant_id, Credential.kind == "api_key")
    )
    return [
        {
            "id": c.id,
            "name": c.name,
            "prefix": c.prefix,
            "user": u,
            "revoked": c.revoked,
            "created_at": c.created_at,
            "expires_at": c.expires_at,
        }
        for c, u in rows
    ]


@router.delete("/api-keys/{key_id}", status_code=204)
def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], caller: Admin, db: DB, state: State
) -> None:
    cred = db.scalar(
        select(Credential).where(
            Credential.id == key_id,
            Credential.tenant_id == caller.tenant_id,
            Credential.kind == "api_key",
        )
    )
    if cred is None:
        raise not_found(f"API key {key_id}")
    cred.revoked = True
    audit(db, caller, "api_key.revoke", cred.name)
    db.commit()
    state.forget_credentials()
