"""Registrar bindings (RFC 3261 §10.3), sans-I/O: who is reachable where, until when.

A binding also remembers the address and connection the REGISTER came from, because that —
not the Contact a phone behind NAT advertises — is where its calls must be sent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from hotline.sip.message import Request, SipError, parse_name_addr, parse_uri
from hotline.sip.transaction import Address

MIN_EXPIRES = 60
MAX_EXPIRES = 600  # bindings live in memory: after a restart phones are back within this
DEFAULT_EXPIRES = 600
MAX_BINDINGS = 5  # per address of record: desk phone, softphone, mobile... not a flood


@dataclass(slots=True)
class Binding:
    aor: str
    contact: str  # the Contact URI as sent
    expires_at: float
    call_id: str
    cseq: int
    source: Address
    conn: Any
    transport: str
    user_agent: str
    registered_at: float


@dataclass(slots=True)
class Outcome:
    status: int  # 200, or the error to answer with
    contacts: list[Binding]  # the bindings now current (for the 200's Contact headers)
    changed: bool  # reachability changed: none→some or some→none
    min_expires: int | None = None


class Registrar:
    def __init__(self, min_expires: int = MIN_EXPIRES, max_expires: int = MAX_EXPIRES,
                 default_expires: int = DEFAULT_EXPIRES) -> None:
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.bindings: dict[str, dict[str, Binding]] = {}
        self._expiry: list[tuple[float, str, str]] = []

    def register(self, aor: str, request: Request, source: Address, now: float,
                 conn: Any = None, transport: str = "UDP") -> Outcome:
        """Apply an authenticated REGISTER for ``aor`` (all of it, or none of it: §10.3)."""
        known = self.bindings.get(aor, {})
        # reachable as far as the TU knows: a lapsed binding expire() has not reported yet
        # counts; once this REGISTER is committed, the outcome reports its loss instead
        before = bool(known)
        current = {uri: b for uri, b in known.items() if b.expires_at > now}
        header_expires = request.headers.get("Expires")
        default = self.default_expires
        if header_expires is not None:
            default = _seconds(header_expires)
        contacts = request.headers.get_all("Contact")
        call_id = request.call_id
        cseq = request.cseq[0]
        if contacts == ["*"]:
            if default != 0:
                raise SipError("Contact * needs Expires: 0")
            for b in current.values():
                if b.call_id == call_id and cseq <= b.cseq:
                    return Outcome(500, [], False)  # out of order (§10.3 step 6)
            return self._commit(aor, {}, before, now)
        updates: list[tuple[str, int]] = []
        for value in contacts:
            addr = parse_name_addr(value)
            parse_uri(addr.uri)  # must be a SIP URI we could call
            expires = default
            if addr.params.get("expires") is not None:
                expires = _seconds(addr.params["expires"] or "")
            if 0 < expires < self.min_expires:
                return Outcome(423, [], False, self.min_expires)
            old = current.get(addr.uri)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                return Outcome(500, [], False)  # out of order (§10.3 step 7)
            updates.append((addr.uri, min(expires, self.max_expires)))
        # every update is valid: commit them together (§10.3 step 8)
        ua = request.headers.get("User-Agent") or ""
        for uri, expires in updates:
            if expires == 0:
                current.pop(uri, None)
                continue
            current.pop(uri, None)  # a refresh is the most recent registration
            current[uri] = Binding(
                aor, uri, now + expires, call_id, cseq, source, conn, transport, ua, now
            )
            heapq.heappush(self._expiry, (now + expires, aor, uri))
        if len(current) > MAX_BINDINGS:  # drop the oldest registrations
            for b in sorted(current.values(), key=lambda b: b.registered_at)[:-MAX_BINDINGS]:
                del current[b.contact]
        return self._commit(aor, current, before, now)

    def _commit(self, aor: str, current: dict[str, Binding], before: bool,
                now: float) -> Outcome:
        if current:
            self.bindings[aor] = current
        else:
            self.bindings.pop(aor, None)  # no empty entries: ``bindings`` lists who is bound
        bound = self.lookup(aor, now)
        return Outcome(200, bound, before != bool(bound))

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Current bindings, the most recently registered first."""
        found = [b for b in self.bindings.get(aor, {}).values() if b.expires_at > now]
        found.sort(key=lambda b: b.registered_at, reverse=True)
        return found

    def unbind_connection(self, conn: Any) -> list[str]:
        """A TCP connection closed: its bindings are gone (nothing else reaches those phones).
        Returns the AORs left with no binding."""
        lost: list[str] = []
        for aor, current in list(self.bindings.items()):
            for uri in [u for u, b in current.items() if b.conn is conn]:
                del current[uri]
            if not current:
                del self.bindings[aor]
                lost.append(aor)
        return lost

    def unbind(self, aor: str) -> bool:
        return self.bindings.pop(aor, None) is not None

    def next_expiry(self) -> float | None:
        return self._expiry[0][0] if self._expiry else None

    def expire(self, now: float) -> list[str]:
        """Remove lapsed bindings; returns the AORs that became unreachable."""
        lost: list[str] = []
        while self._expiry and self._expiry[0][0] <= now:
            _, aor, uri = heapq.heappop(self._expiry)
            current = self.bindings.get(aor)
            if current is None:
                continue
            b = current.get(uri)
            if b is not None and b.expires_at <= now:
                del current[uri]
                if not current:
                    del self.bindings[aor]
                    lost.append(aor)
        return lost


def _seconds(text: str) -> int:
    text = text.strip()
    # not int() alone: it takes non-ASCII digits, and refuses over 4300 digits with ValueError
    if not (text.isdigit() and text.isascii()):
        raise SipError(f"malformed expires value {text[:20]!r}")
    digits = text.lstrip("0")
    return 2**31 - 1 if len(digits) > 10 else min(int(digits or "0"), 2**31 - 1)
