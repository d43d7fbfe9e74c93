"""The CTI event stream: fans stored events out to WebSocket subscribers, filtered by who
they are. An agent sees only its own events; a supervisor those of its teams' agents and its
queues; admins, QA and planners their whole tenant; nobody another tenant's.

Each event is serialised once per publish; a subscriber that cannot keep up is cut off
(it reconnects and re-reads the state over REST) rather than slowing everyone down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from hotline.events.types import Event
from hotline.server.live import Tenant
from hotline.server.security import Principal

_WHOLE_TENANT = frozenset({"admin", "qa", "planner"})


class Subscription:
    def __init__(self, principal: Principal, maxsize: int = 5000) -> None:
        self.principal = principal
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.revoked = False
        self.whole = principal.role in _WHOLE_TENANT

    def sees(self, agent: str | None, team: str | None, queue: str | None) -> bool:
        p = self.principal
        if self.whole:
            return True
        if p.role == "agent":
            return agent is not None and agent == p.agent
        if p.role == "supervisor":
            return (team is not None and team in p.teams) or (
                queue is not None and queue in p.queues
            )
        return False

    def put(self, text: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True  # the writer sees this and closes the socket


class Hub:
    def __init__(self) -> None:
        self._by_tenant: dict[int, set[Subscription]] = {}
        self._by_agent: dict[tuple[int, str], set[Subscription]] = {}
        self.delivered = 0

    def subscribe(self, principal: Principal) -> Subscription:
        sub = Subscription(principal)
        if principal.role == "agent":
            if principal.agent is not None:
                self._by_agent.setdefault((principal.tenant_id, principal.agent), set()).add(sub)
        else:
            self._by_tenant.setdefault(principal.tenant_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        p = sub.principal
        if p.role == "agent":
            self._by_agent.get((p.tenant_id, p.agent or ""), set()).discard(sub)
        else:
            self._by_tenant.get(p.tenant_id, set()).discard(sub)

    def drop_user(self, user_id: int) -> None:
        """Cut the streams of a user whose access changed (the writer closes them)."""
        for subs in (*self._by_tenant.values(), *self._by_agent.values()):
            for sub in subs:
                if sub.principal.user_id == user_id:
                    sub.revoked = True
                    with contextlib.suppress(asyncio.QueueFull):
                        sub.queue.put_nowait("")  # wake the writer

    def subscribers(self) -> int:
        return sum(len(s) for s in self._by_tenant.values()) + sum(
            len(s) for s in self._by_agent.values()
        )

    def publish(
        self, tenant: Tenant, numbered: list[tuple[int, Event, dict[str, Any] | None]]
    ) -> None:
        watchers = self._by_tenant.get(tenant.id)
        by_agent = self._by_agent
        for seq, e, extra in numbered:
            body = e.to_dict()
            body["seq"] = seq
            if extra:
                body.update(extra)
            agent = getattr(e, "agent", None)
            queue = getattr(e, "queue", None)
            text: str | None = None
            if agent is not None:
                subs = by_agent.get((tenant.id, agent))
                if subs:
                    text = json.dumps(body, ensure_ascii=False)
                    for sub in subs:
                        sub.put(text)
                        self.delivered += 1
            if watchers:
                team = tenant.teams.get(agent) if agent is not None else None
                for sub in watchers:
                    if sub.sees(agent, team, queue):
                        if text is None:
                            text = json.dumps(body, ensure_ascii=False)
                        sub.put(text)
                        self.delivered += 1

    def notice(self, tenant: Tenant, body: dict[str, Any], teams: frozenset[str]) -> None:
        """A supervisor's notice to the agents of ``teams`` (all when empty), and to whoever
        watches those teams (so the monitor shows what was sent)."""
        text = json.dumps(body, ensure_ascii=False)
        for agent, team in tenant.teams.items():
            if teams and team not in teams:
                continue
            for sub in self._by_agent.get((tenant.id, agent), ()):
                sub.put(text)
        for sub in self._by_tenant.get(tenant.id, ()):
            p = sub.principal
            if sub.whole or not teams or (p.role == "supervisor" and p.teams & teams):
                sub.put(text)

    def adherence(self, tenant: Tenant, bodies: list[dict[str, Any]]) -> None:
        """Agents' adherence changes (``type: adherence``) to whoever watches those agents:
        the whole tenant's watchers, and supervisors of the agents' teams."""
        watchers = self._by_tenant.get(tenant.id)
        if not watchers:
            return
        for body in bodies:
            agent = body["agent"]
            team = tenant.teams.get(agent)
            text = json.dumps(body, ensure_ascii=False)
            for sub in watchers:
                if sub.whole or (team is not None and sub.sees(agent, team, None)):
                    sub.put(text)

    def publish_stats(self, tenant: Tenant, now: float) -> None:
        """One ``queue_stats`` tick per second for each watcher: all the queues it sees."""
        watchers = self._by_tenant.get(tenant.id)
        if not watchers:
            return
        queues = tenant.stats(now, agents=False)["queues"]
        whole: str | None = None
        for sub in watchers:
            if sub.whole:
                if whole is None:
                    whole = json.dumps({"type": "queue_stats", "t": now, "queues": queues})
                sub.put(whole)
            else:
                mine = {q: row for q, row in queues.items() if sub.sees(None, None, q)}
                if mine:
                    sub.put(json.dumps({"type": "queue_stats", "t": now, "queues": mine}))
