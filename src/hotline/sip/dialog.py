"""SIP dialogs (RFC 3261 §12): the state two user agents share for one call.

Hotline is a B2BUA, so every call has two dialogs: one as UAS with the caller, one as UAC with
the agent's phone. In-dialog requests go back to the address the peer's traffic came from (or
was sent to), not to its Contact: phones behind NAT advertise addresses nobody can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.sip.message import Headers, NameAddr, Request, Response, parse_name_addr
from hotline.sip.transaction import Address


@dataclass(slots=True)
class Dialog:
    call_id: str
    local: NameAddr  # our From (UAC) / To (UAS), tag included
    remote: NameAddr
    remote_target: str  # the peer's Contact URI
    peer: Address  # where in-dialog requests are sent
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int = 0
    conn: object = None  # the TCP connection, when the peer uses one

    @property
    def local_tag(self) -> str | None:
        return self.local.tag

    @property
    def remote_tag(self) -> str | None:
        return self.remote.tag

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_contact: str, peer: Address,
               conn: object = None) -> Dialog:
        to = parse_name_addr(invite.headers.get("To") or "")
        to.params["tag"] = local_tag
        contact = invite.headers.get("Contact")
        remote = parse_name_addr(invite.headers.get("From") or "")
        # without a Contact the caller is best reached at its From URI; the Request-URI is us
        target = parse_name_addr(contact).uri if contact else remote.uri
        return cls(
            call_id=invite.call_id,
            local=to,
            remote=remote,
            remote_target=target,
            peer=peer,
            local_contact=local_contact,
            route_set=invite.headers.get_all("Record-Route"),
            remote_cseq=invite.cseq[0],
            conn=conn,
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, peer: Address,
               conn: object = None) -> Dialog:
        contact = response.headers.get("Contact")
        target = parse_name_addr(contact).uri if contact else invite.uri
        return cls(
            call_id=invite.call_id,
            local=parse_name_addr(invite.headers.get("From") or ""),
            remote=parse_name_addr(response.headers.get("To") or ""),
            remote_target=target,
            peer=peer,
            local_contact=invite.headers.get("Contact") or "",
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_cseq=invite.cseq[0],
            conn=conn,
        )

    def request(self, method: str, body: bytes = b"", content_type: str | None = None,
                cseq: int | None = None) -> Request:
        """A request within the dialog (Via is added by the transaction layer)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        h = Headers()
        for route in self.route_set:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", str(self.local))
        h.add("To", str(self.remote))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE"):
            h.add("Contact", self.local_contact)
        if content_type:
            h.add("Content-Type", content_type)
        return Request(method, self.remote_target, h, body)

    def ack(self, invite_cseq: int, body: bytes = b"") -> Request:
        """The ACK for a 2xx to our INVITE: same CSeq number, method ACK (§13.2.2.4)."""
        ack = self.request("ACK", body, "application/sdp" if body else None, cseq=invite_cseq)
        ack.headers.set("CSeq", f"{invite_cseq} ACK")
        return ack

    def accepts(self, request: Request) -> bool:
        """Whether an in-dialog request is new (its CSeq is above the last one; §12.2.2)."""
        number = request.cseq[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True


def dialog_key(call_id: str, local_tag: str | None, remote_tag: str | None) -> tuple[str, str, str]:
    return (call_id, local_tag or "", remote_tag or "")


def request_dialog_key(request: Request) -> tuple[str, str, str]:
    """The key of the dialog an incoming request belongs to (our tag is in To)."""
    to_tag = parse_name_addr(request.headers.get("To") or "").tag
    from_tag = parse_name_addr(request.headers.get("From") or "").tag
    return dialog_key(request.call_id, to_tag, from_tag)
