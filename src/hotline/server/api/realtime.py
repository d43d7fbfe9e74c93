"""Real-time: the wallboard snapshot and the CTI event stream (WebSocket)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hotline.server.api.control import _tenant
from hotline.server.problems import forbidden
from hotline.server.state import Caller, State, websocket_principal

router = APIRouter(tags=["realtime"])


@router.get("/stats/realtime")
async def realtime(caller: Caller, state: State) -> dict[str, Any]:
    """Per queue: waiting, longest wait, today's service level, agents by state; per agent:
    state and time in state. Supervisors see their queues and teams, agents themselves."""
    if caller.role not in ("admin", "supervisor", "planner", "qa", "agent"):
        raise forbidden()
    tenant = _tenant(state, caller)
    now = state.center.clock()
    snap = tenant.stats(now)
    if caller.role == "supervisor":
        snap["queues"] = {q: v for q, v in snap["queues"].items() if q in caller.queues}
        snap["agents"] = {a: v for a, v in snap["agents"].items() if v["team"] in caller.teams}
    elif caller.role == "agent":
        mine = set(tenant.acd.agent_queues(caller.agent)) if caller.agent else set()
        snap["queues"] = {q: v for q, v in snap["queues"].items() if q in mine}
        snap["agents"] = {a: v for a, v in snap["agents"].items() if a == caller.agent}
    by_state: dict[str, int] = {}
    for row in snap["agents"].values():
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
    snap["agents_by_state"] = by_state
    snap["t"] = now
    return snap


@router.websocket("/events")
async def events(ws: WebSocket) -> None:
    """CTI stream: one JSON object per message (events with ``seq``, and ``queue_stats``
    ticks). Authenticate with ``Authorization: Bearer``, ``X-API-Key`` or ``?token=``."""
    principal = websocket_principal(ws)
    if principal is None:
        await ws.close(code=1008, reason="authentication required")
        return
    state = ws.app.state.hotline
    await ws.accept()
    sub = state.hub.subscribe(principal)
    await ws.send_text(
        json.dumps(
            {
                "type": "hello",
                "tenant": principal.tenant_slug,
                "user": principal.username,
                "role": principal.role,
                "agent": principal.agent,
            }
        )
    )

    async def writer() -> None:
        queue = sub.queue
        while True:
            text = await queue.get()
            if sub.revoked:
                await ws.close(code=1008, reason="access revoked")
                return
            await ws.send_text(text)
            if sub.overflowed and queue.empty():
                await ws.close(code=1013, reason="too slow: reconnect and resynchronise")
                return

    write_task = asyncio.create_task(writer())
    try:
        # Reading notices the client leaving; clients may send keep-alives, nothing else.
        while not write_task.done():
            receive = asyncio.ensure_future(ws.receive_text())
            await asyncio.wait({receive, write_task}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                break
            receive.result()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.hub.unsubscribe(sub)
        write_task.cancel()
