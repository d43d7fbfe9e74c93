"""Configuration: tenants, users, skills, queues, agents, reason codes, dispositions, business
hours, and the audit log. Changes that matter to routing apply to the running ACD at once.

(No ``from __future__ import annotations`` here: the generic resources build their
handlers at import time and FastAPI must see the real types.)
"""

import time
from collections.abc import Callable
from typing import Any

import anyio.from_thread
from fastapi import APIRouter, Query
from pydantic import Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotline.db.schema import (
    Agent,
    AuditEntry,
    BusinessHours,
    Disposition,
    InboundRoute,
    Queue,
    ReasonCode,
    Skill,
    Tenant,
    User,
)
from hotline.server import ivr_store
from hotline.server.catalog import (
    AgentIn,
    BusinessHoursIn,
    Code,
    DispositionIn,
    Model,
    QueueIn,
    ReasonIn,
    SkillIn,
    TenantSettings,
    UserIn,
    UserPatch,
    agent_config,
    queue_settings,
    queue_spec,
    tenant_setup,
)
from hotline.server.live import Tenant as LiveTenant
from hotline.server.problems import (
    ApiError,
    field_errors,
    forbidden,
    invalid,
    invalid_fields,
    not_found,
)
from hotline.server.security import PLATFORM, Principal, hash_password
from hotline.server.state import DB, Admin, Caller, ServerState, State, Supervisor, audit

router = APIRouter()


def apply_live(state: ServerState, tenant_id: int, op: Callable[[LiveTenant, float], Any]) -> Any:
    """Run an operation on the tenant's live engine from a request worker thread."""
    return anyio.from_thread.run(state.center.submit, tenant_id, op)


def telephony_changed(state: ServerState) -> None:
    """Phone accounts, trunks or routes changed in the database: the SIP side re-reads them
    (from a request worker thread, once the change is committed)."""
    if state.telephony is not None:
        anyio.from_thread.run(state.telephony.reload)


def _check_skills(db: Session, tenant_id: int, used: dict[str, str]) -> None:
    """``used`` maps a field name to the skill it names; each must be defined."""
    known = set(db.scalars(select(Skill.code).where(Skill.tenant_id == tenant_id)))
    for field, skill in used.items():
        if skill not in known:
            raise invalid(field, f"unknown skill {skill!r} (define it under /skills first)")


def _row(db: Session, model: Any, tenant_id: int, key: str) -> Any:
    """The tenant's record of ``model`` named ``key`` (its code; a user's username), or None."""
    column = model.username if model is User else model.code
    return db.scalar(select(model).where(model.tenant_id == tenant_id, column == key))


def _one(db: Session, model: Any, tenant_id: int, key: str, what: str) -> Any:
    row = _row(db, model, tenant_id, key)
    if row is None:
        raise not_found(f"{what} {key!r}")
    return row


def _unique(db: Session, model: Any, tenant_id: int, key: str, what: str) -> None:
    if _row(db, model, tenant_id, key) is not None:
        raise ApiError(409, "Conflict", f"{what} {key!r} already exists")


# ---------------------------------------------------------------------- tenants (platform)
class AdminIn(Model):
    username: Code
    password: str = Field(min_length=8, max_length=200)


class TenantIn(Model):
    slug: Code
    name: str = Field(min_length=1, max_length=200)
    settings: TenantSettings = TenantSettings()
    admin: AdminIn


class TenantPatch(Model):
    name: str | None = Field(None, min_length=1, max_length=200)
    settings: TenantSettings | None = None


def _platform(caller: Principal) -> None:
    if not caller.platform_admin:
        raise forbidden("only platform administrators manage tenants")


def _tenant_out(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, "settings": t.settings, "created_at": t.created_at}


@router.get("/tenants", tags=["tenants"])
def list_tenants(caller: Caller, db: DB) -> list[dict[str, Any]]:
    if caller.platform_admin:
        return [_tenant_out(t) for t in db.scalars(select(Tenant).order_by(Tenant.id))]
    tenant = db.get(Tenant, caller.tenant_id)
    return [_tenant_out(tenant)] if tenant else []


@router.post("/tenants", status_code=201, tags=["tenants"])
def create_tenant(body: TenantIn, caller: Caller, db: DB, state: State) -> dict[str, Any]:
    _platform(caller)
    if db.scalar(select(Tenant).where(Tenant.slug == body.slug)) is not None:
        raise ApiError(409, "Conflict", f"tenant {body.slug!r} already exists")
    now = time.time()
    tenant = Tenant(
        slug=body.slug,
        name=body.name,
        settings=body.settings.model_dump(mode="json"),
        created_at=now,
    )
    db.add(tenant)
    db.flush()
    db.add(
        User(
            tenant_id=tenant.id,
            username=body.admin.username,
            display_name=body.admin.username,
            password_hash=hash_password(body.admin.password),
            role="admin",
            teams=[],
            queues=[],
            created_at=now,
        )
    )
    audit(db, caller, "tenant.create", body.slug)
    db.commit()
    setup = tenant_setup(db, tenant)
    anyio.from_thread.run_sync(state.center.add_tenant, setup)
    return _tenant_out(tenant)


def _tenant(db: Session, slug: str) -> Tenant:
    tenant = db.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise not_found(f"tenant {slug!r}")
    return tenant


@router.get("/tenants/{slug}", tags=["tenants"])
def get_tenant(slug: str, caller: Caller, db: DB) -> dict[str, Any]:
    tenant = _tenant(db, slug)
    if not caller.platform_admin and tenant.id != caller.tenant_id:
        raise not_found(f"tenant {slug!r}")
    return _tenant_out(tenant)


@router.patch("/tenants/{slug}", tags=["tenants"])
def patch_tenant(
    slug: str, body: TenantPatch, caller: Caller, db: DB, state: State
) -> dict[str, Any]:
    tenant = _tenant(db, slug)
    if not (caller.platform_admin or (caller.role == "admin" and tenant.id == caller.tenant_id)):
        raise not_found(f"tenant {slug!r}") if tenant.id != caller.tenant_id else forbidden()
    if body.name is not None:
        tenant.name = body.name
    if body.settings is not None:
        tenant.settings = body.settings.model_dump(mode="json")
    audit(db, caller, "tenant.update", slug, **body.model_dump(mode="json", exclude_none=True))
    db.commit()
    if body.settings is not None:
        telephony_changed(state)  # e.g. phone_login
        running = state.center.tenants.get(tenant.id)
        if running is not None and state.adherence is not None:
            anyio.from_thread.run_sync(state.adherence.set_rules, running,
                                       body.settings.adherence.rules())
    return _tenant_out(tenant)


@router.delete("/tenants/{slug}", status_code=204, tags=["tenants"])
def delete_tenant(slug: str, caller: Caller, db: DB, state: State) -> None:
    _platform(caller)
    tenant = _tenant(db, slug)
    if tenant.slug == PLATFORM:
        raise ApiError(409, "Conflict", "the platform tenant cannot be deleted")
    anyio.from_thread.run_sync(state.center.remove_tenant, tenant.id)
    db.delete(tenant)
    audit(db, caller, "tenant.delete", slug)
    db.commit()
    state.forget_credentials()
    telephony_changed(state)  # its phones, trunks and numbers went with it


# ---------------------------------------------------------------------- users
def _user_out(u: User) -> dict[str, Any]:
    return {
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "teams": u.teams,
        "queues": u.queues,
        "active": u.active,
    }


def _user(db: Session, tenant_id: int, username: str) -> User:
    return _one(db, User, tenant_id, username, "user")  # type: ignore[no-any-return]


@router.get("/users", tags=["users"])
def list_users(caller: Supervisor, db: DB) -> list[dict[str, Any]]:
    rows = db.scalars(select(User).where(User.tenant_id == caller.tenant_id).order_by(User.id))
    return [_user_out(u) for u in rows]


@router.post("/users", status_code=201, tags=["users"])
def create_user(body: UserIn, caller: Admin, db: DB) -> dict[str, Any]:
    _unique(db, User, caller.tenant_id, body.username, "user")
    user = User(
        tenant_id=caller.tenant_id,
        username=body.username,
        display_name=body.display_name,
        password_hash=hash_password(body.password),
        role=body.role,
        teams=body.teams,
        queues=body.queues,
        active=body.active,
        created_at=time.time(),
    )
    db.add(user)
    audit(db, caller, "user.create", body.username, role=body.role)
    db.commit()
    return _user_out(user)


@router.get("/users/{username}", tags=["users"])
def get_user(username: str, caller: Supervisor, db: DB) -> dict[str, Any]:
    return _user_out(_user(db, caller.tenant_id, username))


@router.patch("/users/{username}", tags=["users"])
def patch_user(
    username: str, body: UserPatch, caller: Admin, db: DB, state: State
) -> dict[str, Any]:
    user = _user(db, caller.tenant_id, username)
    changes = body.model_dump(exclude_none=True)
    for key, value in changes.items():
        if key == "password":
            user.password_hash = hash_password(value)
        else:
            setattr(user, key, value)
    changes.pop("password", None)
    audit(
        db,
        caller,
        "user.update",
        username,
        **changes,
        password_changed=True if body.password else None,
    )
    if body.password is not None or body.role is not None or body.active is False:
        state.revoke_user(db, user.id)  # log-ins made under the old terms end now
    db.commit()
    state.forget_credentials()
    state.hub.drop_user(user.id)  # streams reconnect with the new teams and queues
    return _user_out(user)


@router.delete("/users/{username}", status_code=204, tags=["users"])
def delete_user(username: str, caller: Admin, db: DB, state: State) -> None:
    user = _user(db, caller.tenant_id, username)
    if user.id == caller.user_id:
        raise ApiError(409, "Conflict", "you cannot delete yourself")
    db.delete(user)
    audit(db, caller, "user.delete", username)
    db.commit()
    state.forget_credentials()
    state.hub.drop_user(user.id)


# ---------------------------------------------------------------------- simple coded resources
def _coded(
    path: str,
    table: type,
    schema: type[Model],
    tag: str,
    on_change: Callable[[ServerState, int, Session], None] | None = None,
    check: Callable[[Session, int], None] | None = None,
) -> None:
    """CRUD for a small coded resource. ``check`` may refuse a change (before it is
    committed); ``on_change`` tells the live center, after the commit: it must not run while
    this session holds SQLite's write lock, which the event store may be waiting for."""
    fields = [f for f in schema.model_fields if f != "code"]

    def out(row: Any) -> dict[str, Any]:
        return {"code": row.code, **{f: getattr(row, f) for f in fields}}

    def find(db: Session, tenant_id: int, code: str) -> Any:
        return _one(db, table, tenant_id, code, tag)

    def changed(state: ServerState, tenant_id: int, db: Session) -> None:
        if check is not None:
            check(db, tenant_id)
        db.commit()
        if on_change is not None:
            on_change(state, tenant_id, db)

    def list_(caller: Caller, db: DB) -> list[dict[str, Any]]:
        rows: Any = db.scalars(
            select(table).where(table.tenant_id == caller.tenant_id).order_by(table.code)  # type: ignore[attr-defined]
        )
        return [out(r) for r in rows]

    def create(body: schema, caller: Admin, db: DB, state: State) -> dict[str, Any]:  # type: ignore[valid-type]
        data = body.model_dump(mode="json")  # type: ignore[attr-defined]
        _unique(db, table, caller.tenant_id, data["code"], tag)
        row = table(tenant_id=caller.tenant_id, **data)
        db.add(row)
        audit(db, caller, f"{tag}.create", data["code"], **data)
        db.flush()
        changed(state, caller.tenant_id, db)
        return out(row)

    def get(code: str, caller: Caller, db: DB) -> dict[str, Any]:
        return out(find(db, caller.tenant_id, code))

    def replace(code: str, body: schema, caller: Admin, db: DB, state: State) -> dict[str, Any]:  # type: ignore[valid-type]
        data = body.model_dump(mode="json")  # type: ignore[attr-defined]
        if data["code"] != code:
            raise invalid("body.code", "must match the code in the path")
        row = find(db, caller.tenant_id, code)
        for f in fields:
            setattr(row, f, data[f])
        audit(db, caller, f"{tag}.update", code, **data)
        db.flush()
        changed(state, caller.tenant_id, db)
        return out(row)

    def remove(code: str, caller: Admin, db: DB, state: State) -> None:
        row = find(db, caller.tenant_id, code)
        db.delete(row)
        audit(db, caller, f"{tag}.delete", code)
        db.flush()
        changed(state, caller.tenant_id, db)

    router.add_api_route(f"/{path}", list_, methods=["GET"], tags=[tag], name=f"list_{tag}")
    router.add_api_route(
        f"/{path}", create, methods=["POST"], status_code=201, tags=[tag], name=f"create_{tag}"
    )
    router.add_api_route(f"/{path}/{{code}}", get, methods=["GET"], tags=[tag], name=f"get_{tag}")
    router.add_api_route(
        f"/{path}/{{code}}", replace, methods=["PUT"], tags=[tag], name=f"replace_{tag}"
    )
    router.add_api_route(
        f"/{path}/{{code}}",
        remove,
        methods=["DELETE"],
        status_code=204,
        tags=[tag],
        name=f"delete_{tag}",
    )


def _reasons_changed(state: ServerState, tenant_id: int, db: Session) -> None:
    codes = set(db.scalars(select(ReasonCode.code).where(ReasonCode.tenant_id == tenant_id)))

    def op(t: LiveTenant, now: float) -> None:
        t.reasons = codes

    apply_live(state, tenant_id, op)


def _dispositions_changed(state: ServerState, tenant_id: int, db: Session) -> None:
    codes = set(db.scalars(select(Disposition.code).where(Disposition.tenant_id == tenant_id)))

    def op(t: LiveTenant, now: float) -> None:
        t.dispositions = codes

    apply_live(state, tenant_id, op)


def _skill_in_use(db: Session, tenant_id: int) -> None:
    known = set(db.scalars(select(Skill.code).where(Skill.tenant_id == tenant_id)))
    for agent in db.scalars(select(Agent).where(Agent.tenant_id == tenant_id)):
        for skill in agent.skills:
            if skill not in known:
                raise ApiError(409, "Conflict", f"skill {skill!r} is used by agent {agent.code}")
    for queue in db.scalars(select(Queue).where(Queue.tenant_id == tenant_id)):
        spec = queue_spec(queue.code, queue.labels, queue.settings)
        for tier in spec.config().requirement_tiers:
            for skill in tier:
                if skill not in known:
                    raise ApiError(
                        409, "Conflict", f"skill {skill!r} is required by queue {queue.code}"
                    )


_coded("skills", Skill, SkillIn, "skill", check=_skill_in_use)
_coded("reason-codes", ReasonCode, ReasonIn, "reason_code", _reasons_changed)
_coded("dispositions", Disposition, DispositionIn, "disposition", _dispositions_changed)
def _hours_in_use(db: Session, tenant_id: int) -> None:
    """A calendar an IVR flow branches on must stay: its calls would have no hours to ask."""
    known = set(db.scalars(select(BusinessHours.code)
                           .where(BusinessHours.tenant_id == tenant_id)))
    for row in ivr_store.latest_flows(db, tenant_id):
        for code in ivr_store.flow_hours(row.definition) - known:
            raise ApiError(409, "Conflict", f"business hours {code!r} are used by IVR flow "
                           f"{row.code}: change the flow first")


_coded("business-hours", BusinessHours, BusinessHoursIn, "business_hours",
       lambda state, tenant_id, db: telephony_changed(state), _hours_in_use)


# ---------------------------------------------------------------------- queues
def _queue_out(q: Queue) -> dict[str, Any]:
    return queue_spec(q.code, q.labels, q.settings).model_dump(mode="json")


def _queue_row(db: Session, tenant_id: int, code: str) -> Queue:
    return _one(db, Queue, tenant_id, code, "queue")  # type: ignore[no-any-return]


def _save_queue(
    db: Session, state: ServerState, caller: Principal, spec: QueueIn, row: Queue | None
) -> dict[str, Any]:
    used = {f"body.skills.{s}": s for s in spec.skills}
    for i, step in enumerate(spec.relax):
        used.update({f"body.relax.{i}.skills.{s}": s for s in step.skills})
    _check_skills(db, caller.tenant_id, used)
    if spec.exit is not None and spec.exit.overflow is not None:
        target = spec.exit.overflow
        if target == spec.id:
            raise invalid("body.exit.overflow", "a queue cannot overflow to itself")
        if _row(db, Queue, caller.tenant_id, target) is None:
            raise invalid("body.exit.overflow", f"unknown queue {target!r}")
    try:
        cfg = spec.config()
    except ValueError as err:  # the engine's own invariants, should a schema miss one
        raise invalid("body", str(err)) from None
    sl = spec.service_level.config() if spec.service_level is not None else None

    def op(t: LiveTenant, now: float) -> None:
        t.acd.set_queue(now, cfg)
        if sl is not None:
            t.service_levels[cfg.id] = sl
            t.today.set_service_level(cfg.id, sl)

    apply_live(state, caller.tenant_id, op)
    if row is None:
        row = Queue(tenant_id=caller.tenant_id, code=spec.id)
        db.add(row)
        action = "queue.create"
    else:
        action = "queue.update"
    row.labels = {str(k): v for k, v in spec.labels.items()}
    row.settings = queue_settings(spec)
    audit(db, caller, action, spec.id, **row.settings)
    db.commit()
    telephony_changed(state)  # its recording policy
    return _queue_out(row)


@router.get("/queues", tags=["queue"])
def list_queues(caller: Caller, db: DB) -> list[dict[str, Any]]:
    rows = db.scalars(select(Queue).where(Queue.tenant_id == caller.tenant_id).order_by(Queue.id))
    return [_queue_out(q) for q in rows]


@router.post("/queues", status_code=201, tags=["queue"])
def create_queue(body: QueueIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    _unique(db, Queue, caller.tenant_id, body.id, "queue")
    return _save_queue(db, state, caller, body, None)


@router.get("/queues/{code}", tags=["queue"])
def get_queue(code: str, caller: Caller, db: DB) -> dict[str, Any]:
    return _queue_out(_queue_row(db, caller.tenant_id, code))


@router.put("/queues/{code}", tags=["queue"])
def replace_queue(code: str, body: QueueIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    if body.id != code:
        raise invalid("body.id", "must match the queue in the path")
    return _save_queue(db, state, caller, body, _queue_row(db, caller.tenant_id, code))


@router.patch("/queues/{code}", tags=["queue"])
def patch_queue(
    code: str, body: dict[str, Any], caller: Supervisor, db: DB, state: State
) -> dict[str, Any]:
    """Change some of a queue's settings live (supervisors: their own queues)."""
    if caller.role == "supervisor" and code not in caller.queues:
        raise forbidden(f"queue {code!r} is not one of your queues")
    row = _queue_row(db, caller.tenant_id, code)
    if "id" in body and body["id"] != code:
        raise invalid("body.id", "a queue cannot be renamed")
    merged = {"id": code, "labels": row.labels, **row.settings, **body}
    merged = {k: v for k, v in merged.items() if v is not None}
    try:
        spec = QueueIn.model_validate(merged)
    except ValidationError as err:
        raise invalid_fields(field_errors(err.errors(), ("body",))) from None
    return _save_queue(db, state, caller, spec, row)


@router.delete("/queues/{code}", status_code=204, tags=["queue"])
def delete_queue(code: str, caller: Admin, db: DB, state: State) -> None:
    row = _queue_row(db, caller.tenant_id, code)
    dids = list(
        db.scalars(
            select(InboundRoute.did)
            .where(InboundRoute.tenant_id == caller.tenant_id, InboundRoute.queue == code)
            .order_by(InboundRoute.did)
        )
    )
    if dids:
        raise ApiError(
            409,
            "Conflict",
            f"queue {code!r} takes the calls to {', '.join(dids)}: change those routes first",
        )
    flows = ivr_store.flows_using(db, caller.tenant_id, "queues", code)
    if flows:
        raise ApiError(409, "Conflict",
                       f"queue {code!r} takes calls from {', '.join(flows)}: change it first")
    apply_live(state, caller.tenant_id, lambda t, now: t.acd.remove_queue(now, code))
    db.delete(row)
    audit(db, caller, "queue.delete", code)
    db.commit()


# ---------------------------------------------------------------------- agents
def _agent_out(a: Agent, username: str | None) -> dict[str, Any]:
    return {
        "code": a.code,
        "display_name": a.display_name,
        "user": username,
        "extension": a.extension,
        "team": a.team,
        "skills": a.skills,
        "wrap_up": a.wrap_up,
        "auto_ready": a.auto_ready,
    }


def _agent_row(db: Session, tenant_id: int, code: str) -> Agent:
    return _one(db, Agent, tenant_id, code, "agent")  # type: ignore[no-any-return]


def _username(db: Session, user_id: int | None) -> str | None:
    return None if user_id is None else db.scalar(select(User.username).where(User.id == user_id))


def _save_agent(
    db: Session, state: ServerState, caller: Principal, body: AgentIn, row: Agent | None
) -> dict[str, Any]:
    _check_skills(db, caller.tenant_id, {f"body.skills.{s}": s for s in body.skills})
    user_id = None
    if body.user is not None:
        user = _row(db, User, caller.tenant_id, body.user)
        if user is None:
            raise invalid("body.user", f"unknown user {body.user!r}")
        other = db.scalar(select(Agent).where(Agent.user_id == user.id))
        if other is not None and (row is None or other.id != row.id):
            raise invalid("body.user", f"user {body.user!r} is already agent {other.code}")
        user_id = user.id
    if row is None:
        row = Agent(tenant_id=caller.tenant_id, code=body.code)
        db.add(row)
        action = "agent.create"
    else:
        action = "agent.update"
    row.display_name = body.display_name
    row.user_id = user_id
    row.extension = body.extension
    row.team = body.team
    row.skills = dict(body.skills)
    row.wrap_up = body.wrap_up
    row.auto_ready = body.auto_ready
    cfg = agent_config(row)
    team = body.team

    def op(t: LiveTenant, now: float) -> None:
        t.acd.set_agent(now, cfg)
        t.teams[cfg.id] = team

    apply_live(state, caller.tenant_id, op)
    audit(db, caller, action, body.code, **body.model_dump(mode="json"))
    db.commit()
    state.forget_credentials()
    return _agent_out(row, body.user)


@router.get("/agents", tags=["agent"])
def list_agents(
    caller: Caller, db: DB, team: str | None = Query(None, max_length=64)
) -> list[dict[str, Any]]:
    query = (
        select(Agent, User.username)
        .outerjoin(User, Agent.user_id == User.id)
        .where(Agent.tenant_id == caller.tenant_id)
    )
    if team is not None:
        query = query.where(Agent.team == team)
    return [_agent_out(a, u) for a, u in db.execute(query.order_by(Agent.code))]


@router.post("/agents", status_code=201, tags=["agent"])
def create_agent(body: AgentIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    _unique(db, Agent, caller.tenant_id, body.code, "agent")
    return _save_agent(db, state, caller, body, None)


@router.get("/agents/{code}", tags=["agent"])
def get_agent(code: str, caller: Caller, db: DB) -> dict[str, Any]:
    row = _agent_row(db, caller.tenant_id, code)
    return _agent_out(row, _username(db, row.user_id))


@router.put("/agents/{code}", tags=["agent"])
def replace_agent(code: str, body: AgentIn, caller: Admin, db: DB, state: State) -> dict[str, Any]:
    if body.code != code:
        raise invalid("body.code", "must match the agent in the path")
    return _save_agent(db, state, caller, body, _agent_row(db, caller.tenant_id, code))


@router.delete("/agents/{code}", status_code=204, tags=["agent"])
def delete_agent(code: str, caller: Admin, db: DB, state: State) -> None:
    row = _agent_row(db, caller.tenant_id, code)
    apply_live(state, caller.tenant_id, lambda t, now: t.acd.remove_agent(now, code))
    db.delete(row)  # and its phone account (foreign key, on delete cascade)
    audit(db, caller, "agent.delete", code)
    db.commit()
    telephony_changed(state)


# ---------------------------------------------------------------------- audit log
@router.get("/audit", tags=["audit"])
def audit_log(
    caller: Admin,
    db: DB,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(
        None, ge=1, le=2**62, description="entries with id < before (paging)"
    ),
) -> dict[str, Any]:
    query = select(AuditEntry).where(AuditEntry.tenant_id == caller.tenant_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(db.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))
    total = db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == caller.tenant_id)
    )
    return {
        "total": total,
        "entries": [
            {
                "id": r.id,
                "ts": r.ts,
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "detail": r.detail,
            }
            for r in rows
        ],
    }
