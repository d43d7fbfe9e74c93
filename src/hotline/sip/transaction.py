"""SIP transactions (RFC 3261 §17 with the RFC 6026 "Accepted" state), sans-I/O.

:class:`TransactionLayer` is fed parsed messages and the time, and keeps an outbox of
``(bytes, address, connection)`` for the transport shell to send and a deadline for its next
timer. What the transaction user (the call logic) must act on comes back as events. The layer
does the protocol's chores itself: retransmissions over UDP (timers A, E, G and the UAS's 2xx
until ACK), absorbing retransmitted requests, ACK for non-2xx finals, 200 to CANCEL, timeouts.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from hotline.sip.message import (
    Headers,
    Request,
    Response,
    SipError,
    Via,
    parse_name_addr,
    parse_via,
    response_to,
)

T1 = 0.5
T2 = 4.0
T4 = 5.0
MAGIC = "z9hG4bK"

Address = tuple[str, int]

# states
CALLING, TRYING, PROCEEDING, ACCEPTED, COMPLETED, CONFIRMED, TERMINATED = (
    "calling", "trying", "proceeding", "accepted", "completed", "confirmed", "terminated"
)


class Transaction:
    __slots__ = (
        "ack", "ack_tag", "addr", "cancel_pending", "cancelled", "conn", "deadline", "interval",
        "invite", "key", "last_response", "method", "reliable", "request", "state", "timeout_at",
        "user",
    )

    def __init__(self, key: Hashable, request: Request, addr: Address, conn: Any,
                 reliable: bool) -> None:
        self.key = key
        self.request = request
        self.method = request.method
        self.invite = request.method == "INVITE"
        self.addr = addr
        self.conn = conn
        self.reliable = reliable
        self.state = ""
        self.last_response: bytes | None = None
        self.ack: bytes | None = None
        self.ack_tag: str | None = None  # the To tag of the 2xx that ``ack`` acknowledges
        self.deadline = 0.0  # the retransmission/expiry timer (one per transaction suffices)
        self.interval = T1
        self.timeout_at = 0.0
        self.cancel_pending = False
        self.cancelled = False  # cancel() was called: one CANCEL per INVITE
        self.user: Any = None  # for the transaction user (e.g. the call leg)


class ServerTransaction(Transaction):
    __slots__ = ()


class ClientTransaction(Transaction):
    __slots__ = ()


# --------------------------------------------------------------------------- events for the TU
@dataclass(slots=True)
class RequestReceived:
    request: Request
    tx: ServerTransaction
    source: Address
    conn: Any


@dataclass(slots=True)
class AckReceived:
    """An ACK for a 2xx (end-to-end: it is not part of the INVITE transaction)."""

    request: Request
    tx: ServerTransaction | None
    source: Address


@dataclass(slots=True)
class CancelReceived:
    """The INVITE in ``tx`` was cancelled (the CANCEL itself has been answered 200)."""

    tx: ServerTransaction
    request: Request


@dataclass(slots=True)
class ResponseReceived:
    response: Response
    tx: ClientTransaction


@dataclass(slots=True)
class TransactionTimeout:
    """No final response came (timer B/F): the TU treats it as 408."""

    tx: ClientTransaction


@dataclass(slots=True)
class AckTimeout:
    """Our 2xx to an INVITE was never ACKed within 64*T1: the TU should end the dialog."""

    tx: ServerTransaction


TUEvent = (
    RequestReceived | AckReceived | CancelReceived | ResponseReceived | TransactionTimeout
    | AckTimeout
)


def _server_key(request: Request, via: Via) -> Hashable:
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(MAGIC):
        return (branch, via.host, via.port, method)
    # RFC 2543 peers: no unique branch; match on the dialog-ish fields (§17.2.3)
    cseq_num = request.cseq[0]
    from_tag = parse_name_addr(request.headers.get("From") or "").tag
    return ("2543", request.call_id, from_tag, cseq_num, via.host, via.port, method)


class TransactionLayer:
    def __init__(self, local: Address, *, rng: random.Random | None = None,
                 t1: float = T1, t2: float = T2, t4: float = T4) -> None:
        self.local = local  # sent-by for our Via headers
        self.rng = rng or random.SystemRandom()
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.server: dict[Hashable, ServerTransaction] = {}
        self.client: dict[Hashable, ClientTransaction] = {}
        # INVITEs we answered 2xx, by (Call-ID, CSeq), while the transaction lives (ACCEPTED
        # until the ACK, then CONFIRMED): the ACK for a 2xx has a branch of its own
        self.awaiting_ack: dict[tuple[str, int], ServerTransaction] = {}
        self.outbox: list[tuple[bytes, Address, Any]] = []
        self._timers: list[tuple[float, int, Transaction]] = []
        self._seq = 0

    # ------------------------------------------------------------------ helpers
    def new_branch(self) -> str:
        return f"{MAGIC}{self.rng.getrandbits(64):016x}"

    def new_tag(self) -> str:
        return f"{self.rng.getrandbits(48):012x}"

    def _arm(self, tx: Transaction, when: float) -> None:
        tx.deadline = when
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, tx))

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers and timers[0][0] != timers[0][2].deadline:
            heapq.heappop(timers)  # superseded
        return timers[0][0] if timers else None

    def _send(self, data: bytes, tx: Transaction) -> None:
        self.outbox.append((data, tx.addr, tx.conn))

    def _sent_by(self) -> str:
        host, port = self.local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _end(self, tx: Transaction) -> None:
        tx.state = TERMINATED
        tx.deadline = -1.0
        if isinstance(tx, ServerTransaction):
            if self.server.get(tx.key) is tx:
                del self.server[tx.key]
            if tx.invite:
                key = (tx.request.call_id, tx.request.cseq[0])
                if self.awaiting_ack.get(key) is tx:
                    del self.awaiting_ack[key]
        elif self.client.get(tx.key) is tx:
            del self.client[tx.key]

    # ------------------------------------------------------------------ input
    def receive(self, msg: Request | Response, source: Address, now: float,
                conn: Any = None) -> list[TUEvent]:
        """Feed one parsed message. Raises SipError for a request whose Via is unreadable."""
        if isinstance(msg, Response):
            return self._receive_response(msg, now)
        return self._receive_request(msg, source, now, conn)

    def _receive_request(self, req: Request, source: Address, now: float,
                         conn: Any) -> list[TUEvent]:
        via_value = req.headers.get("Via") or ""
        via = parse_via(via_value)
        # RFC 3581 / §18.2.1: remember where it really came from, for the responses
        if "rport" in via.params or via.host != source[0]:
            via.params["received"] = source[0]
            if "rport" in via.params:
                via.params["rport"] = str(source[1])
            req.headers._items[_first_index(req.headers, "Via")] = ("Via", str(via))
        key = _server_key(req, via)
        tx = self.server.get(key)
        if req.method == "ACK":
            if tx is not None and tx.state in (COMPLETED, CONFIRMED):
                if tx.state == COMPLETED:  # ACK for our non-2xx final
                    tx.state = CONFIRMED
                    self._arm(tx, now + (0.0 if tx.reliable else self.t4))
                return []
            waiting = self.awaiting_ack.get((req.call_id, req.cseq[0]))
            if waiting is not None and _to_tag(req) != waiting.ack_tag:
                return []  # not for our 2xx: the dialog is Call-ID and both tags (§12)
            if waiting is None:
                return [AckReceived(req, None, source)]
            if waiting.state == CONFIRMED:
                return []  # resent because our 2xx retransmission crossed it: the TU has it
            # stays (confirmed) until timer L to absorb INVITE resends (RFC 6026 §7.1)
            waiting.state = CONFIRMED
            self._arm(waiting, waiting.timeout_at)
            return [AckReceived(req, waiting, source)]
        if tx is not None:  # a retransmission: resend our last answer, never a 2xx (§13.3.1.4)
            if tx.last_response is not None and tx.state in (TRYING, PROCEEDING, COMPLETED):
                self._send(tx.last_response, tx)
            return []
        if req.method == "CANCEL":
            return self._receive_cancel(req, via, source, now, conn)
        reliable = conn is not None
        tx = ServerTransaction(key, req, source, conn, reliable)
        self.server[key] = tx
        if tx.invite:
            tx.state = PROCEEDING
            self.respond(tx, response_to(req, 100), now)  # at once: stops the UAC's timer A
        else:
            tx.state = TRYING
            # if the TU never answers, the client has given up by timer F: don't keep it forever
            self._arm(tx, now + 64 * self.t1)
        return [RequestReceived(req, tx, source, conn)]

    def _receive_cancel(self, req: Request, via: Via, source: Address, now: float,
                        conn: Any) -> list[TUEvent]:
        key = _server_key(req, via)
        tx = ServerTransaction(key, req, source, conn, conn is not None)
        tx.state = TRYING
        self.server[key] = tx
        invite_key = (*key[:-1], "INVITE") if isinstance(key, tuple) else key
        invite = self.server.get(invite_key)
        if invite is None:
            self.respond(tx, response_to(req, 481), now)
            return []
        self.respond(tx, response_to(req, 200), now)
        # a CANCEL that crossed our final response changes nothing (§9.2)
        return [CancelReceived(invite, req)] if invite.state == PROCEEDING else []

    def _receive_response(self, resp: Response, now: float) -> list[TUEvent]:
        via_value = resp.headers.get("Via")
        if not via_value:
            return []
        try:
            branch = parse_via(via_value).branch
        except SipError:
            return []
        method = resp.cseq[1]
        tx = self.client.get((branch, method))
        if tx is None:
            return []
        status = resp.status
        if tx.state == ACCEPTED:
            if 200 <= status < 300:
                # resend our ACK for a retransmission of the 2xx it acknowledged, not for a 2xx
                # from another fork (another dialog: the TU must ACK that one itself)
                if tx.ack is not None and _to_tag(resp) == tx.ack_tag:
                    self._send(tx.ack, tx)
                return [ResponseReceived(resp, tx)]
            return []
        if tx.state in (COMPLETED, TERMINATED):
            if tx.invite and tx.state == COMPLETED and status >= 300 and tx.ack is not None:
                self._send(tx.ack, tx)  # our ACK was lost
            return []
        if status < 200:
            if tx.state in (CALLING, TRYING):
                tx.state = PROCEEDING
                if tx.invite:
                    tx.deadline = -1.0  # timers A and B stop: it may ring as long as it likes
                else:
                    tx.interval = self.t2
            if tx.cancel_pending:
                tx.cancel_pending = False
                self._send_cancel(tx, now)
            return [ResponseReceived(resp, tx)]
        if tx.invite:
            if status < 300:
                tx.state = ACCEPTED
                self._arm(tx, now + 64 * self.t1)  # timer M
            else:
                tx.state = COMPLETED
                tx.ack = bytes(_ack_for_failure(tx.request, resp))
                self._send(tx.ack, tx)
                self._arm(tx, now + (0.0 if tx.reliable else 32.0))  # timer D
        else:
            tx.state = COMPLETED
            self._arm(tx, now + (0.0 if tx.reliable else self.t4))  # timer K
        return [ResponseReceived(resp, tx)]

    # ------------------------------------------------------------------ output
    def respond(self, tx: ServerTransaction, resp: Response, now: float) -> None:
        """Send a response within a server transaction and move it along (§17.2)."""
        if tx.state in (ACCEPTED, COMPLETED, CONFIRMED, TERMINATED):
            return
        data = bytes(resp)
        tx.last_response = data
        self._send(data, tx)
        status = resp.status
        if status < 200:
            if tx.state == TRYING:
                tx.state = PROCEEDING
            return
        if tx.invite:
            if status < 300:
                # RFC 6026 Accepted; the UAS core retransmits the 2xx until the ACK (§13.3.1.4)
                tx.state = ACCEPTED
                tx.interval = self.t1
                tx.timeout_at = now + 64 * self.t1
                cseq = tx.request.cseq[0]
                tx.ack_tag = _to_tag(resp)  # the ACK must name the dialog this 2xx made
                self.awaiting_ack[(tx.request.call_id, cseq)] = tx
                self._arm(tx, now + (tx.timeout_at - now if tx.reliable else self.t1))
            else:
                tx.state = COMPLETED
                tx.interval = self.t1
                tx.timeout_at = now + 64 * self.t1  # timer H
                self._arm(tx, tx.timeout_at if tx.reliable else now + self.t1)  # timer G
        else:
            tx.state = COMPLETED
            self._arm(tx, now + (0.0 if tx.reliable else 64 * self.t1))  # timer J

    def request(self, req: Request, addr: Address, now: float, *, conn: Any = None,
                transport: str = "UDP") -> ClientTransaction:
        """Start a client transaction: adds our Via (new branch) and sends the request."""
        branch = self.new_branch()
        req.headers.prepend("Via", f"SIP/2.0/{transport} {self._sent_by()};branch={branch};rport")
        if "Max-Forwards" not in req.headers:
            req.headers.add("Max-Forwards", "70")
        return self._start_client(req, branch, addr, now, conn)

    def _start_client(self, req: Request, branch: str, addr: Address, now: float,
                      conn: Any) -> ClientTransaction:
        tx = ClientTransaction((branch, req.method), req, addr, conn, conn is not None)
        self.client[tx.key] = tx
        tx.state = CALLING if tx.invite else TRYING
        tx.timeout_at = now + 64 * self.t1  # timer B / F
        tx.interval = self.t1
        self._send(bytes(req), tx)
        self._arm(tx, tx.timeout_at if tx.reliable else now + self.t1)
        return tx

    def ack_2xx(self, tx: ClientTransaction, ack: Request) -> None:
        """Send the TU's ACK for a 2xx; it is resent if the 2xx is retransmitted."""
        if "Via" not in ack.headers:  # over the INVITE's transport: it goes where the INVITE went
            transport = parse_via(tx.request.headers.get("Via") or "").transport
            ack.headers.prepend(
                "Via", f"SIP/2.0/{transport} {self._sent_by()};branch={self.new_branch()}"
            )
        tx.ack = bytes(ack)
        tx.ack_tag = _to_tag(ack)
        self._send(tx.ack, tx)

    def cancel(self, tx: ClientTransaction, now: float) -> None:
        """Cancel a pending INVITE (§9.1); deferred until a provisional response arrived."""
        if not tx.invite or tx.cancelled or tx.state not in (CALLING, PROCEEDING):
            return
        tx.cancelled = True
        if tx.state == CALLING:
            tx.cancel_pending = True
            return
        self._send_cancel(tx, now)

    def _send_cancel(self, tx: ClientTransaction, now: float) -> None:
        inv = tx.request
        h = Headers()
        for name in ("Via", "Route", "From", "To", "Call-ID", "Max-Forwards"):
            for value in inv.headers.get_all(name)[: 1 if name == "Via" else None]:
                h.add(name, value)
        h.add("CSeq", f"{inv.cseq[0]} CANCEL")
        cancel = Request("CANCEL", inv.uri, h)
        branch = parse_via(inv.headers.get("Via") or "").branch or self.new_branch()
        self._start_client(cancel, branch, tx.addr, now, tx.conn)
        # if the UAS never answers the INVITE after our CANCEL, give up after 64*T1 (§9.1)
        tx.timeout_at = now + 64 * self.t1
        self._arm(tx, tx.timeout_at)

    # ------------------------------------------------------------------ time
    def on_timer(self, now: float) -> list[TUEvent]:
        events: list[TUEvent] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, tx = heapq.heappop(timers)
            if when != tx.deadline or tx.state == TERMINATED:
                continue
            if isinstance(tx, ClientTransaction):
                self._client_timer(tx, now, events)
            elif isinstance(tx, ServerTransaction):
                self._server_timer(tx, now, events)
        return events

    def _client_timer(self, tx: ClientTransaction, now: float, events: list[TUEvent]) -> None:
        if tx.state in (COMPLETED, ACCEPTED):  # timers D, K, M
            self._end(tx)
            return
        if now >= tx.timeout_at:  # timers B, F
            self._end(tx)
            events.append(TransactionTimeout(tx))
            return
        if tx.state == CALLING or (not tx.invite and tx.state in (TRYING, PROCEEDING)):
            self._send(bytes(tx.request), tx)  # timers A, E
            tx.interval = tx.interval * 2 if tx.invite else min(tx.interval * 2, self.t2)
            self._arm(tx, min(now + tx.interval, tx.timeout_at))
        else:
            self._arm(tx, tx.timeout_at)

    def _server_timer(self, tx: ServerTransaction, now: float, events: list[TUEvent]) -> None:
        if tx.state in (CONFIRMED, TRYING, PROCEEDING) or (
            tx.state == COMPLETED and not tx.invite
        ):  # timers I, J
            self._end(tx)
            return
        if now >= tx.timeout_at:  # timer H, or no ACK for our 2xx
            accepted = tx.state == ACCEPTED
            self._end(tx)
            if accepted:
                events.append(AckTimeout(tx))
            return
        if tx.last_response is not None and not tx.reliable:  # timer G, or the 2xx resend
            self._send(tx.last_response, tx)
        tx.interval = min(tx.interval * 2, self.t2)
        self._arm(tx, min(now + tx.interval, tx.timeout_at))


def _to_tag(msg: Request | Response) -> str | None:
    try:
        return parse_name_addr(msg.headers.get("To") or "").tag
    except SipError:
        return None


def _first_index(headers: Headers, name: str) -> int:
    for i, (n, _) in enumerate(headers):
        if n == name:
            return i
    raise KeyError(name)


def _ack_for_failure(invite: Request, resp: Response) -> Request:
    """ACK for a non-2xx final (§17.1.1.3): same branch, To from the response."""
    h = Headers()
    h.add("Via", invite.headers.get("Via") or "")
    for name in ("Route",):
        for value in invite.headers.get_all(name):
            h.add(name, value)
    h.add("From", invite.headers.get("From") or "")
    h.add("To", resp.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq[0]} ACK")
    h.add("Max-Forwards", "70")
    return Request("ACK", invite.uri, h)
