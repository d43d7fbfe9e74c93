"""The asyncio shell around the SIP core: UDP and TCP sockets, the guard, the timer.

It owns no protocol logic: datagrams and stream frames are screened by the guard, parsed,
fed to the transaction layer, and what comes out is sent or handed to the transaction user
(the call switch). One loop timer tracks the transaction layer's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from hotline.sip.guard import SourceGuard
from hotline.sip.message import (
    MAX_MESSAGE_SIZE,
    REASONS,
    Request,
    Response,
    SipError,
    parse,
    parse_uri,
    response_to,
    stream_frames,
)
from hotline.sip.transaction import (
    Address,
    ClientTransaction,
    RequestReceived,
    ServerTransaction,
    TransactionLayer,
    TUEvent,
)

log = logging.getLogger("hotline.sip")
_RAW_HEADER = re.compile(
    rb"(?im)^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*(.*?)[ \t]*\r?$"
)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, stack: SipStack) -> None:
        self.stack = stack

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.stack.received(data, (addr[0], addr[1]), None)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for a peer that went away: its transactions time out


class _Tcp(asyncio.Protocol):
    def __init__(self, stack: SipStack) -> None:
        self.stack = stack
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        stack = self.stack
        per_address = sum(1 for c in stack.connections if c.peer[0] == self.peer[0])
        if (len(stack.connections) >= MAX_CONNECTIONS or per_address >= MAX_PER_ADDRESS
                or not stack.guard.admit(self.peer[0], b"", stack.now())):
            transport.close()
            return
        stack.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stack.connections.discard(self)
        self.stack.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            for frame in stream_frames(self.buffer):
                # each message passes the guard, as datagrams do: a ban ends the connection
                if not self.stack.guard.admit(self.peer[0], frame, self.stack.now()):
                    if self.stack.guard.is_banned(self.peer[0], self.stack.now()):
                        self.close()
                        return
                    continue
                self.stack.received(frame, self.peer, self, stream=True)
        except SipError as err:
            log.debug("closing SIP/TCP connection from %s: %s", self.peer[0], err)
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


Handler = Callable[[TUEvent], None]
MAX_CONNECTIONS = 5000  # SIP/TCP connections at once (each costs a file descriptor)
MAX_PER_ADDRESS = 20


class SipStack:
    def __init__(self, host: str, port: int, advertised: str, guard: SourceGuard | None = None,
                 handler: Handler | None = None) -> None:
        self.host = host
        self.port = port
        self.advertised = advertised
        self.guard = guard or SourceGuard()
        self.handler: Handler = handler or (lambda event: None)
        self.layer = TransactionLayer((advertised, port))
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.AbstractServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.received_messages = 0
        self.bad_messages = 0
        self.connections: set[_Tcp] = set()
        self.on_connection_closed: Callable[[Any], None] = lambda conn: None

    def now(self) -> float:
        assert self.loop is not None
        return self.loop.time()

    async def start(self) -> None:
        """Listen on UDP and TCP, on the same port. With port 0 the kernel picks a UDP port
        that TCP may have in use (a client connection's local port): then pick again."""
        self.loop = asyncio.get_running_loop()
        wanted = self.port
        for attempt in range(20):
            self.udp, _ = await self.loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, wanted)
            )
            port = self.udp.get_extra_info("sockname")[1]
            try:
                self.tcp = await self.loop.create_server(lambda: _Tcp(self), self.host, port)
            except OSError:
                self.udp.close()
                if wanted != 0 or attempt == 19:
                    raise
                continue
            self.port = port
            self.layer.local = (self.advertised, port)
            return

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            for conn in list(self.connections):  # else wait_closed waits for them (3.12+)
                conn.close()
            await self.tcp.wait_closed()

    def connection_closed(self, conn: Any) -> None:
        try:
            self.on_connection_closed(conn)
        except Exception:
            log.exception("handling a closed SIP/TCP connection failed")

    # ------------------------------------------------------------------ input
    def received(self, data: bytes, source: Address, conn: Any, stream: bool = False) -> None:
        now = self.now()
        if conn is None and not self.guard.admit(source[0], data, now):
            return
        if len(data) > MAX_MESSAGE_SIZE:
            self.bad_messages += 1
            return
        if data.strip(b"\r\n") == b"":
            return  # keep-alive
        try:
            msg = parse(data, stream=stream)
            if isinstance(msg, Request):
                parse_uri(msg.uri)
            events = self.layer.receive(msg, source, now, conn)
        except SipError as err:
            self.bad_messages += 1
            self._reject(data, err, source, conn)
            return
        except Exception:  # a bug must cost one message, never the server
            self.bad_messages += 1
            log.exception("SIP message from %s could not be handled", source[0])
            return
        self.received_messages += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP in from %s:%d: %s", source[0], source[1], _first_line(data))
        self.flush()
        for event in events:
            self._deliver(event)
        self._rearm()

    def _deliver(self, event: TUEvent) -> None:
        try:
            self.handler(event)
        except Exception:
            log.exception("SIP event %s failed", type(event).__name__)
            # a request must still get its final answer, or its transaction would linger
            if isinstance(event, RequestReceived) and event.tx.state in ("trying", "proceeding"):
                self.reply(event.tx, 500)
        self.flush()

    def _reject(self, data: bytes, err: SipError, source: Address, conn: Any) -> None:
        """Answer a request we could not parse with the error's status, if it carries what a
        response needs; otherwise drop it (§16.3-style: no answer is possible)."""
        first = data.split(b"\n", 1)[0]
        if first.upper().startswith(b"SIP/") or first.startswith(b"ACK "):
            return
        found: dict[str, bytes] = {}
        vias: list[bytes] = []
        names = {b"v": "via", b"f": "from", b"t": "to", b"i": "call-id"}
        for m in _RAW_HEADER.finditer(data.split(b"\r\n\r\n", 1)[0]):
            name = m.group(1).lower()
            key = names.get(name, name.decode())
            if key == "via":
                vias.append(m.group(2))
            else:
                found.setdefault(key, m.group(2))
        if not vias or len(found) < 4:
            return
        try:
            lines = [f"SIP/2.0 {err.status} {_reason(err.status)}"]
            lines += [f"Via: {v.decode()}" for v in vias]
            lines += [f"{k.title()}: {found[k].decode()}" for k in ("from", "to", "call-id")]
            lines.append(f"CSeq: {found['cseq'].decode()}")
            lines.append(f"Warning: 399 hotline \"{str(err)[:80].replace(chr(34), '')}\"")
            lines.append("Content-Length: 0")
            out = ("\r\n".join(lines) + "\r\n\r\n").encode()
        except (UnicodeDecodeError, KeyError):
            return
        self.send_raw(out, source, conn)

    # ------------------------------------------------------------------ output
    def send_raw(self, data: bytes, addr: Address, conn: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("SIP out to %s:%d: %s", addr[0], addr[1], _first_line(data))
        if conn is not None:
            conn.send(data)
        elif self.udp is not None:
            self.udp.sendto(data, addr)

    def flush(self) -> None:
        outbox = self.layer.outbox
        if not outbox:
            return
        self.layer.outbox = []
        for data, addr, conn in outbox:
            self.send_raw(data, addr, conn)

    def respond(self, tx: ServerTransaction, resp: Response) -> None:
        self.layer.respond(tx, resp, self.now())
        self.flush()
        self._rearm()

    def reply(self, tx: ServerTransaction, status: int, reason: str = "", *,
              to_tag: str | None = None, headers: list[tuple[str, str]] | None = None,
              body: bytes = b"", content_type: str | None = None) -> Response:
        resp = response_to(tx.request, status, reason, to_tag=to_tag, body=body,
                           content_type=content_type)
        for name, value in headers or ():
            resp.headers.add(name, value)
        resp.headers.add("Server", "Hotline")
        self.respond(tx, resp)
        return resp

    def request(self, req: Request, addr: Address, conn: Any = None) -> ClientTransaction:
        transport = "TCP" if conn is not None else "UDP"
        tx = self.layer.request(req, addr, self.now(), conn=conn, transport=transport)
        self.flush()
        self._rearm()
        return tx

    def ack(self, tx: ClientTransaction, ack: Request) -> None:
        self.layer.ack_2xx(tx, ack)
        self.flush()

    def cancel(self, tx: ClientTransaction) -> None:
        self.layer.cancel(tx, self.now())
        self.flush()
        self._rearm()

    # ------------------------------------------------------------------ timers
    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is None or self.loop is None:
            return
        if self._timer is not None and not self._timer.cancelled():
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        events = self.layer.on_timer(self.now())
        self.flush()
        for event in events:
            self._deliver(event)
        self._rearm()


def _reason(status: int) -> str:
    return REASONS.get(status, "Error")


def _first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0][:120].decode("utf-8", "replace")
