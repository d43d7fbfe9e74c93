"""Agent and call control: the CTI commands of agents, supervisors and integrations.

Every command runs on the tenant's live engine and returns after its events are stored.
Supervisors act on the agents of their teams and the calls of their queues; each such action
is written to the audit log.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy import select

from hotline.acd.engine import WRAP_UP, ACDError
from hotline.db.schema import CallRecord
from hotline.events.types import CallDisposed
from hotline.server.catalog import Code, Model
from hotline.server.live import Tenant
from hotline.server.problems import ApiError, forbidden, invalid, not_found
from hotline.server.security import Principal
from hotline.server.state import Caller, ServerState, State, TelephonyError, audit

router = APIRouter(tags=["control"])


class LoginIn(Model):
    ready: bool = False
    reason: str | None = Field(None, max_length=64)


class ReasonIn(Model):
    reason: str | None = Field(None, max_length=64)


class NotReadyIn(Model):
    reason: str = Field(max_length=64)


class WrapUpIn(Model):
    disposition: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=4000)


class ActingAgentIn(Model):
    agent: Code | None = None  # for admins and integrations acting for an agent


class TransferIn(Model):
    queue: Code | None = None
    agent: Code | None = None
    number: str | None = Field(None, pattern=r"^\+?[0-9]{1,32}$",
                               description="an outside number, dialled through a trunk")
    trunk: Code | None = Field(None, description="with number; default: the first trunk "
                               "taking calls out")


class MonitorIn(Model):
    mode: Literal["listen", "whisper", "barge", "take_over"] = Field(
        description="listen: hear both sides, unheard; whisper: the agent hears you too; "
        "barge: all three talk; take_over: you replace the agent, who goes to wrap-up")


class RecordingIn(Model):
    state: Literal["on", "paused"] = Field(
        description="on: record (starts an on-demand recording, or resumes); paused: stop "
        "keeping audio until resumed (silence in the file), e.g. while a card number is read")


class DialIn(Model):
    number: str = Field(pattern=r"^\+?[0-9]{1,32}$", description="the customer's number, "
                        "as the trunk dials it")
    queue: Code | None = Field(None, description="the queue the call is made for (wrap-up, "
                               "reports); default the agent's first")
    trunk: Code | None = Field(None, description="default: the first trunk taking calls out")


class ConsultIn(Model):
    agent: Code | None = Field(None, description="a ready colleague, whose phone is called")
    number: str | None = Field(None, pattern=r"^\+?[0-9]{1,32}$",
                               description="or an outside number, called through a trunk")
    trunk: Code | None = None


class MoveIn(Model):
    queue: Code
    priority: int | None = Field(None, ge=-100, le=100)


class NewCallIn(Model):
    queue: Code
    number: str | None = Field(None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(None, ge=-100, le=100)


def _tenant(state: ServerState, caller: Principal) -> Tenant:
    tenant = state.center.tenants.get(caller.tenant_id)
    if tenant is None:
        raise ApiError(503, "Service Unavailable", "this tenant is not running")
    return tenant


def _agent(state: ServerState, caller: Principal, code: str) -> Tenant:
    """The caller may act on this agent: itself, an agent of a team it leads, or any (admin)."""
    tenant = _tenant(state, caller)
    if not tenant.acd.has_agent(code):
        raise not_found(f"agent {code!r}")
    if caller.role == "admin" or caller.agent == code:
        return tenant
    if caller.role == "supervisor" and tenant.teams.get(code) in caller.teams:
        return tenant
    if caller.role == "agent":
        raise forbidden("agents control only themselves")
    raise forbidden(f"agent {code!r} is not in your teams")


def _known_queue(tenant: Tenant, queue: str) -> None:
    if queue not in tenant.acd.queue_ids():
        raise invalid("body.queue", f"unknown queue {queue!r}")


def _call(state: ServerState, caller: Principal, call_id: str) -> tuple[Tenant, dict[str, Any]]:
    tenant = _tenant(state, caller)
    info = tenant.acd.call_info(call_id)
    if info is None or not _sees_call(tenant, caller, info):
        raise not_found(f"call {call_id!r}")
    return tenant, info


def _sees_call(tenant: Tenant, caller: Principal, info: dict[str, Any]) -> bool:
    if caller.role in ("admin", "qa", "planner"):
        return True
    if caller.role == "agent":
        return caller.agent in info["agents"]
    return info["queue"] in caller.queues or any(
        tenant.teams.get(a) in caller.teams for a in info["agents"]
    )


async def _supervised(
    state: ServerState, caller: Principal, action: str, target: str, **detail: Any
) -> None:
    if caller.role == "agent" or caller.agent == target:
        return

    def write() -> None:
        with state.sessions() as db:
            audit(db, caller, action, target, **detail)
            db.commit()

    await run_in_threadpool(write)


async def _call_action_audit(
    state: ServerState, caller: Principal, action: str, call_id: str, **detail: Any
) -> None:
    """Agents act on their own calls; anyone else doing so is a supervisor action."""
    if caller.role != "agent":
        await _supervised(state, caller, action, call_id, **detail)


# ---------------------------------------------------------------------- agent state
@router.get("/agents/{code}/state")
async def agent_state(code: str, caller: Caller, state: State) -> dict[str, Any]:
    if caller.role in ("qa", "planner"):  # they see the whole tenant, and change nothing
        tenant = _tenant(state, caller)
        if not tenant.acd.has_agent(code):
            raise not_found(f"agent {code!r}")
    else:
        tenant = _agent(state, caller, code)
    now = state.center.clock()
    st, reason = tenant.acd.agent_state(code)
    row = tenant.realtime.snapshot_agent(code, now)
    return {
        "agent": code,
        "state": st,
        "reason": reason,
        "call": tenant.acd.agent_call(code),
        "time_in_state": row["time_in_state"] if row else None,
        "team": tenant.teams.get(code),
        "queues": tenant.acd.agent_queues(code) if st != "logged_out" else [],
    }


@router.post("/agents/{code}/login")
async def agent_login(code: str, body: LoginIn, caller: Caller, state: State) -> dict[str, Any]:
    tenant = _agent(state, caller, code)
    _check_reason(tenant, body.reason)
    await state.center.submit(
        tenant.id, lambda t, now: t.acd.login(now, code, ready=body.ready, reason=body.reason)
    )
    await _supervised(state, caller, "agent.login", code, ready=body.ready)
    return await agent_state(code, caller, state)


@router.post("/agents/{code}/logout")
async def agent_logout(code: str, body: ReasonIn, caller: Caller, state: State) -> dict[str, Any]:
    tenant = _agent(state, caller, code)
    await state.center.submit(tenant.id, lambda t, now: t.acd.logout(now, code, body.reason))
    await _supervised(state, caller, "agent.logout", code, reason=body.reason)
    return await agent_state(code, caller, state)


@router.post("/agents/{code}/ready")
async def agent_ready(code: str, caller: Caller, state: State) -> dict[str, Any]:
    tenant = _agent(state, caller, code)
    await state.center.submit(tenant.id, lambda t, now: t.acd.set_ready(now, code))
    await _supervised(state, caller, "agent.ready", code)
    return await agent_state(code, caller, state)


@router.post("/agents/{code}/not-ready")
async def agent_not_ready(
    code: str, body: NotReadyIn, caller: Caller, state: State
) -> dict[str, Any]:
    tenant = _agent(state, caller, code)
    _check_reason(tenant, body.reason)
    await state.center.submit(tenant.id, lambda t, now: t.acd.set_not_ready(now, code, body.reason))
    await _supervised(state, caller, "agent.not_ready", code, reason=body.reason)
    return await agent_state(code, caller, state)


@router.post("/agents/{code}/wrap-up")
async def agent_wrap_up(code: str, body: WrapUpIn, caller: Caller, state: State) -> dict[str, Any]:
    """Finish after-call work, recording the disposition and note (also accepted after an
    automatic wrap-up ended, for the agent's last call)."""
    tenant = _agent(state, caller, code)
    if body.disposition is not None and body.disposition not in tenant.dispositions:
        raise invalid("body.disposition", f"unknown disposition {body.disposition!r}")

    def op(t: Tenant, now: float) -> str | None:
        st, _ = t.acd.agent_state(code)
        call = t.acd.agent_call(code) if st == WRAP_UP else t.last_call.get(code)
        if call is None:
            raise ACDError(f"agent {code} has no call to wrap up")
        if body.disposition is not None or body.note:
            t.acd.events.append(CallDisposed(now, call, code, body.disposition, body.note))
        if st == WRAP_UP:
            t.acd.end_wrap_up(now, code)
        return call

    call = await state.center.submit(tenant.id, op)
    await _supervised(state, caller, "agent.wrap_up", code, call=call, disposition=body.disposition)
    result = await agent_state(code, caller, state)
    result["wrapped_call"] = call
    return result


@router.post("/agents/{code}/dial", status_code=201)
async def agent_dial(code: str, body: DialIn, caller: Caller, state: State) -> dict[str, Any]:
    """Click-to-call: Hotline calls the agent's own phone, then (once it answers) the
    customer, and bridges them. The agent, ready or not ready, is busy (reason ``outbound``)
    until the call ends and its wrap-up is done; the call has its own events and CDR
    (``direction`` outbound) and stays out of the queue's inbound figures."""
    tenant = _agent(state, caller, code)
    if caller.role in ("qa", "planner"):
        raise forbidden()
    if body.queue is not None:
        _known_queue(tenant, body.queue)
    if state.telephony is None:
        raise ApiError(409, "Conflict", "the server runs without telephony (--sip off)")
    try:
        result = await state.telephony.dial(tenant.id, code, body.number, body.queue,
                                            body.trunk)
    except TelephonyError as err:
        raise _telephony_error(err) from None
    await _supervised(state, caller, "agent.dial", code, call=result["call"],
                      number=body.number)
    return result


def _check_reason(tenant: Tenant, reason: str | None) -> None:
    if reason is not None and tenant.reasons and reason not in tenant.reasons:
        raise invalid("body.reason", f"unknown reason code {reason!r}")


# ---------------------------------------------------------------------- calls
@router.get("/calls")
async def list_calls(
    caller: Caller, state: State, queue: str | None = None
) -> list[dict[str, Any]]:
    tenant = _tenant(state, caller)
    now = state.center.clock()
    out = []
    for info in tenant.acd.calls():
        if queue is not None and info["queue"] != queue:
            continue
        if _sees_call(tenant, caller, info):
            out.append({**info, "waited": now - info["arrival"]})
    return out


@router.get("/calls/{call_id}")
async def get_call(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    _, info = _call(state, caller, call_id)
    return info


@router.get("/calls/{call_id}/history")
async def caller_history(call_id: str, caller: Caller, state: State,
                         limit: int = Query(10, ge=1, le=100)) -> list[dict[str, Any]]:
    """The screen-pop's history: this caller's earlier calls to the tenant (any agent's),
    newest first, for whoever may see the call. Anonymous callers have none."""
    _, info = _call(state, caller, call_id)
    number = info["number"]
    if not number:
        return []

    def read() -> list[dict[str, Any]]:
        with state.sessions() as db:
            rows = db.scalars(
                select(CallRecord)
                .where(CallRecord.tenant_id == caller.tenant_id, CallRecord.number == number,
                       CallRecord.call_id != call_id)
                .order_by(CallRecord.arrived_at.desc(), CallRecord.id.desc())
                .limit(limit)
            )
            return [{f: getattr(r, f) for f in HISTORY_FIELDS} for r in rows]

    return await run_in_threadpool(read)


HISTORY_FIELDS = ("call_id", "direction", "final_queue", "arrived_at", "agent", "talk",
                  "outcome", "disposition", "note")


@router.post("/calls", status_code=201)
async def new_call(body: NewCallIn, caller: Caller, state: State) -> dict[str, Any]:
    """A call arrives from a connected telephony system or integration (admins, API keys)."""
    if caller.role != "admin":
        raise forbidden("only administrators and integrations inject calls")
    tenant = _tenant(state, caller)
    _known_queue(tenant, body.queue)
    call_id = state.center.new_call_id()
    await state.center.submit(
        tenant.id,
        lambda t, now: t.acd.call_arrived(
            now,
            call_id,
            body.queue,
            priority=body.priority,
            data=body.data or None,
            number=body.number,
        ),
    )
    info = tenant.acd.call_info(call_id)
    return info or {"call": call_id, "queue": body.queue, "state": "ended"}


def _acting_agent(caller: Principal, body: ActingAgentIn | None, info: dict[str, Any]) -> str:
    if caller.role == "agent":
        if caller.agent is None:
            raise forbidden("your user is not linked to an agent")
        return caller.agent
    if body is not None and body.agent is not None:
        return body.agent
    if len(info["agents"]) == 1:
        return str(info["agents"][0])
    raise invalid("body.agent", "say which agent")


@router.post("/calls/{call_id}/answer")
async def answer(
    call_id: str, caller: Caller, state: State, body: ActingAgentIn | None = None
) -> dict[str, Any]:
    tenant, info = _call_for_action(state, caller, call_id, body)
    agent = _acting_agent(caller, body, info)
    await state.center.submit(tenant.id, lambda t, now: t.acd.answer(now, call_id, agent))
    await _call_action_audit(state, caller, "call.answer", call_id, agent=agent)
    return tenant.acd.call_info(call_id) or {"call": call_id, "state": "ended"}


def _call_for_action(
    state: ServerState, caller: Principal, call_id: str, body: ActingAgentIn | None
) -> tuple[Tenant, dict[str, Any]]:
    tenant, info = _call(state, caller, call_id)
    if caller.role in ("qa", "planner"):
        raise forbidden()
    if body is not None and body.agent is not None and caller.role == "supervisor":
        _agent(state, caller, body.agent)
    return tenant, info


@router.post("/calls/{call_id}/hangup")
async def hangup(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    tenant, _ = _call_for_action(state, caller, call_id, None)
    await state.center.submit(tenant.id, lambda t, now: t.acd.hangup(now, call_id))
    await _call_action_audit(state, caller, "call.hangup", call_id)
    return {"call": call_id, "state": "ended"}


@router.post("/calls/{call_id}/abandon")
async def abandon(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    """The caller hung up (reported by the telephony side)."""
    if caller.role != "admin":
        raise forbidden("only administrators and integrations report caller hang-ups")
    tenant, _ = _call(state, caller, call_id)
    await state.center.submit(tenant.id, lambda t, now: t.acd.abandon(now, call_id))
    return {"call": call_id, "state": "ended"}


@router.post("/calls/{call_id}/hold")
async def hold(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    tenant, _ = _call_for_action(state, caller, call_id, None)
    await state.center.submit(tenant.id, lambda t, now: t.acd.hold(now, call_id))
    await _call_action_audit(state, caller, "call.hold", call_id)
    return tenant.acd.call_info(call_id) or {"call": call_id}


@router.post("/calls/{call_id}/unhold")
async def unhold(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    tenant, _ = _call_for_action(state, caller, call_id, None)
    await state.center.submit(tenant.id, lambda t, now: t.acd.unhold(now, call_id))
    await _call_action_audit(state, caller, "call.unhold", call_id)
    return tenant.acd.call_info(call_id) or {"call": call_id}


@router.post("/calls/{call_id}/transfer")
async def transfer(call_id: str, body: TransferIn, caller: Caller, state: State) -> dict[str, Any]:
    """Blind transfer of a connected call to a queue, or to one ready agent (through the
    current queue unless one is named): the call continues as a new segment. Or to an
    outside ``number``: the agent's part ends and the caller is connected through a trunk
    (back in the queue if nobody answers)."""
    tenant, info = _call_for_action(state, caller, call_id, None)
    if body.number is not None:
        if body.queue is not None or body.agent is not None:
            raise invalid("body.number", "a number, or a queue and/or an agent: not both")
        if state.telephony is None:
            raise ApiError(409, "Conflict", "the server runs without telephony (--sip off)")
        try:
            result = await state.telephony.transfer_out(tenant.id, call_id, body.number,
                                                        body.trunk)
        except TelephonyError as err:
            raise _telephony_error(err) from None
        await _call_action_audit(state, caller, "call.transfer", call_id, number=body.number)
        return result
    if body.queue is None and body.agent is None:
        raise invalid("body", "give a queue, an agent or a number")
    new_id = state.center.new_call_id()
    queue = body.queue or info["queue"]
    _known_queue(tenant, queue)
    if caller.role == "supervisor" and body.queue is not None and queue not in caller.queues:
        raise forbidden(f"queue {queue!r} is not one of your queues")

    def op(t: Tenant, now: float) -> None:
        t.transfer(now, call_id, new_id, queue, body.agent)

    await state.center.submit(tenant.id, op)
    await _call_action_audit(
        state, caller, "call.transfer", call_id, queue=queue, agent=body.agent, to_call=new_id
    )
    return tenant.acd.call_info(new_id) or {"call": new_id, "state": "ended"}


async def _telephony_call(state: ServerState, caller: Principal, call_id: str, action: str,
                          run: Any, **detail: Any) -> dict[str, Any]:
    """Run a call action on the SIP side for whoever may act on the call; audited when it
    is not the call's own agent."""
    tenant, _ = _call_for_action(state, caller, call_id, None)
    if state.telephony is None:
        raise ApiError(409, "Conflict", "the server runs without telephony (--sip off)")
    try:
        result: dict[str, Any] = await run(state.telephony, tenant.id)
    except TelephonyError as err:
        raise _telephony_error(err) from None
    await _call_action_audit(state, caller, action, call_id, **detail)
    return result


@router.post("/calls/{call_id}/consult")
async def consult(call_id: str, body: ConsultIn, caller: Caller,
                  state: State) -> dict[str, Any]:
    """Attended transfer, step one: the caller holds (music) while the agent's phone talks
    to a ready colleague (made busy, reason ``consult``) or an outside number. Then
    ``/consult/transfer`` hands the caller over, ``/consult/conference`` joins all three,
    ``DELETE /consult`` takes the caller back. The agent hanging up after the one consulted
    answered also completes the transfer."""
    if (body.agent is None) == (body.number is None):
        raise invalid("body", "give an agent or a number")
    return await _telephony_call(
        state, caller, call_id, "call.consult",
        lambda tel, tid: tel.consult(tid, call_id, body.agent, body.number, body.trunk),
        agent=body.agent, number=body.number)


@router.delete("/calls/{call_id}/consult")
async def consult_cancel(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    return await _telephony_call(state, caller, call_id, "call.consult_cancel",
                                 lambda tel, tid: tel.consult_cancel(tid, call_id))


@router.post("/calls/{call_id}/consult/transfer")
async def consult_transfer(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    """The caller now talks to the one consulted; the agent goes to wrap-up. A colleague
    takes the caller as a new segment (``to_call``), linked in the CDRs."""
    return await _telephony_call(state, caller, call_id, "call.consult_transfer",
                                 lambda tel, tid: tel.consult_transfer(tid, call_id))


@router.post("/calls/{call_id}/consult/conference")
async def conference(call_id: str, caller: Caller, state: State) -> dict[str, Any]:
    """Caller, agent and the one consulted all talk (the recording goes on); either of the
    last two hanging up leaves the other two talking."""
    return await _telephony_call(state, caller, call_id, "call.conference",
                                 lambda tel, tid: tel.conference(tid, call_id))


def _monitoring(state: ServerState, caller: Principal, call_id: str) -> Tenant:
    if caller.role not in ("admin", "supervisor"):
        raise forbidden("only supervisors and admins monitor calls")
    if state.telephony is None:
        raise ApiError(409, "Conflict", "the server runs without telephony (--sip off)")
    tenant, _ = _call(state, caller, call_id)
    return tenant


def _telephony_error(err: TelephonyError) -> ApiError:
    status = err.status
    titles = {403: "Forbidden", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Content",
              503: "Service Unavailable"}
    return ApiError(status, titles.get(status, "Conflict"), str(err))


@router.put("/calls/{call_id}/monitor")
async def monitor(call_id: str, body: MonitorIn, caller: Caller,
                  state: State) -> dict[str, Any]:
    """A supervisor listens to, coaches, joins or takes over a call on a phone: Hotline calls
    the supervisor's own phone (``PUT /users/{username}/phone``) and, once it answers, mixes
    it into the call as ``mode`` says; the same request with another mode changes it."""
    tenant = _monitoring(state, caller, call_id)
    assert state.telephony is not None
    try:
        result = await state.telephony.monitor(tenant.id, call_id, caller.username, body.mode)
    except TelephonyError as err:
        raise _telephony_error(err) from None
    await _supervised(state, caller, "call.monitor", call_id, mode=body.mode)
    return result


@router.delete("/calls/{call_id}/monitor", status_code=204)
async def stop_monitoring(call_id: str, caller: Caller, state: State) -> None:
    tenant = _monitoring(state, caller, call_id)
    assert state.telephony is not None
    user = "" if caller.role == "admin" else caller.username
    try:
        await state.telephony.stop_monitor(tenant.id, call_id, user)
    except TelephonyError as err:
        raise _telephony_error(err) from None
    await _supervised(state, caller, "call.monitor_end", call_id)


@router.put("/calls/{call_id}/recording")
async def recording(call_id: str, body: RecordingIn, caller: Caller,
                    state: State) -> dict[str, Any]:
    """The agent on the call, or a supervisor of it, pauses, resumes or starts its recording."""
    tenant, _ = _call_for_action(state, caller, call_id, None)
    if state.telephony is None:
        raise ApiError(409, "Conflict", "the server runs without telephony (--sip off)")
    try:
        result = await state.telephony.recording_control(tenant.id, call_id, body.state)
    except TelephonyError as err:
        raise _telephony_error(err) from None
    await _call_action_audit(state, caller, "call.recording", call_id, recording=body.state)
    return result


@router.post("/calls/{call_id}/move")
async def move(call_id: str, body: MoveIn, caller: Caller, state: State) -> dict[str, Any]:
    """Supervisor: move a waiting call to another queue and/or change its priority."""
    if caller.role not in ("admin", "supervisor"):
        raise forbidden()
    tenant, info = _call(state, caller, call_id)
    _known_queue(tenant, body.queue)
    if caller.role == "supervisor" and body.queue not in caller.queues:
        raise forbidden(f"queue {body.queue!r} is not one of your queues")
    await state.center.submit(
        tenant.id, lambda t, now: t.acd.move_call(now, call_id, body.queue, body.priority)
    )
    await _supervised(
        state,
        caller,
        "call.move",
        call_id,
        queue=body.queue,
        priority=body.priority,
        from_queue=info["queue"],
    )
    return tenant.acd.call_info(call_id) or {"call": call_id}
