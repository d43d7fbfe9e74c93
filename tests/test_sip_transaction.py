"""SIP transactions (RFC 3261 §17, RFC 6026) and dialogs (§12), driven the way the asyncio shell
drives them: parsed messages in, bytes out of the outbox, and a clock that only moves when we say.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from hotline.sip.dialog import Dialog, dialog_key, request_dialog_key
from hotline.sip.message import (
    Headers,
    Message,
    Request,
    Response,
    parse,
    parse_name_addr,
    parse_via,
    response_to,
)
from hotline.sip.transaction import (
    MAGIC,
    AckReceived,
    AckTimeout,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTimeout,
    TUEvent,
)

LOCAL = ("192.0.2.10", 5060)
PHONE = ("198.51.100.7", 5062)
TCP = object()  # stands for a stream connection: the layer only passes it along


def new_layer(**timers: float) -> TransactionLayer:
    return TransactionLayer(LOCAL, rng=random.Random(3261), **timers)


def incoming(method: str = "INVITE", *, branch: str | None = "z9hG4bKcaller1", cseq: int = 1,
             call_id: str = "c1@phone", to_tag: str | None = None,
             sent_by: str = "198.51.100.7:5062", via_params: str = "",
             extra: tuple[str, ...] = ()) -> Request:
    """A request as a phone sends it (parsed from the wire, as the shell hands it over)."""
    to = "<sip:100@192.0.2.10>" + (f";tag={to_tag}" if to_tag else "")
    branch_param = f";branch={branch}" if branch is not None else ""
    lines = [
        f"{method} sip:100@192.0.2.10 SIP/2.0",
        f"Via: SIP/2.0/UDP {sent_by}{branch_param}{via_params}",
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@example.com>;tag=a1',
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@198.51.100.7:5062>",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def outgoing(method: str = "INVITE", *, call_id: str = "agent-1@hotline",
             cseq: int = 1) -> Request:
    """A request as the B2BUA builds it before the layer adds its Via."""
    h = Headers()
    h.add("Route", "<sip:edge.example.net;lr>")
    h.add("From", '"Queue" <sip:queue@192.0.2.10>;tag=b2b1')
    h.add("To", "<sip:1001@192.0.2.10>")
    h.add("Call-ID", call_id)
    h.add("CSeq", f"{cseq} {method}")
    h.add("Contact", "<sip:hotline@192.0.2.10:5060>")
    return Request(method, "sip:1001@198.51.100.7:5062", h)


def reply(sent: Request, status: int, to_tag: str | None = "phone1") -> Response:
    """The phone's answer to something we sent, as it arrives off the wire."""
    msg = parse(bytes(response_to(sent, status, to_tag=to_tag)))
    assert isinstance(msg, Response)
    return msg


def drain(layer: TransactionLayer) -> list[Message]:
    out = [parse(data) for data, _, _ in layer.outbox]
    layer.outbox.clear()
    return out


def statuses(messages: list[Message]) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


def run(layer: TransactionLayer,
        until: float) -> tuple[list[tuple[float, Message]], list[tuple[float, TUEvent]]]:
    """Fire the timers up to ``until``, as the shell does: at each next deadline."""
    sent: list[tuple[float, Message]] = []
    events: list[tuple[float, TUEvent]] = []
    while (at := layer.next_deadline()) is not None and at <= until:
        events += [(at, e) for e in layer.on_timer(at)]
        sent += [(at, m) for m in drain(layer)]
    return sent, events


def server_invite(layer: TransactionLayer, now: float = 0.0, conn: Any = None,
                  **kw: Any) -> ServerTransaction:
    (event,) = layer.receive(incoming(**kw), PHONE, now, conn)
    assert isinstance(event, RequestReceived)
    assert statuses(drain(layer)) == [100]
    return event.tx


def client_invite(layer: TransactionLayer, now: float = 0.0,
                  conn: Any = None) -> tuple[ClientTransaction, Request]:
    tx = layer.request(outgoing(), PHONE, now, conn=conn,
                       transport="TCP" if conn is not None else "UDP")
    (sent,) = drain(layer)
    assert isinstance(sent, Request)
    return tx, sent


def ok(tx: ServerTransaction, tag: str = "uas1") -> Response:
    return response_to(tx.request, 200, to_tag=tag)


# ------------------------------------------------------------------ server INVITE transaction
def test_invite_is_answered_100_trying_at_once_and_delivered_once() -> None:
    layer = new_layer()
    events = layer.receive(incoming(), PHONE, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    ((data, addr, conn),) = layer.outbox
    trying = parse(data)
    assert isinstance(trying, Response) and trying.status == 100
    assert (addr, conn) == (PHONE, None)
    assert parse_via(trying.headers.get("Via") or "").branch == "z9hG4bKcaller1"
    assert trying.cseq == (1, "INVITE")
    assert parse_name_addr(trying.headers.get("To") or "").tag is None


def test_responses_carry_where_a_nated_phone_really_is() -> None:
    """RFC 3581: received and rport tell the phone (and its NAT) where the request came from."""
    layer = new_layer()
    layer.receive(incoming(sent_by="10.0.0.5:5060", via_params=";rport"), PHONE, 0.0)
    (trying,) = drain(layer)
    via = parse_via(trying.headers.get("Via") or "")
    assert via.params["received"] == PHONE[0]
    assert via.params["rport"] == str(PHONE[1])


def test_retransmitted_invite_is_absorbed_and_the_last_provisional_resent() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, response_to(tx.request, 180, to_tag="uas1"), 0.1)
    assert statuses(drain(layer)) == [180]
    assert layer.receive(incoming(), PHONE, 0.6) == []
    assert statuses(drain(layer)) == [180]


def test_2xx_is_retransmitted_doubling_up_to_t2_until_the_ack() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.0)
    assert statuses(drain(layer)) == [200]
    sent, events = run(layer, 16.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # T1, 2T1, 4T1, T2, T2...
    assert statuses([m for _, m in sent]) == [200] * 6
    assert events == []
    # the ACK for a 2xx has a branch of its own: matched by Call-ID and CSeq
    events = layer.receive(incoming("ACK", branch="z9hG4bKack1", to_tag="uas1"), PHONE, 16.0)
    assert len(events) == 1
    assert isinstance(events[0], AckReceived) and events[0].tx is tx
    sent, later = run(layer, 1000.0)
    assert sent == [] and later == []


def test_the_ack_reaches_the_tu_once_even_when_resent() -> None:
    """Our 2xx retransmission crossed the ACK: the phone ACKs again; the TU must not see it twice
    (an ACK may carry the SDP answer)."""
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.0)
    ack = incoming("ACK", branch="z9hG4bKack1", to_tag="uas1")
    assert [type(e) for e in layer.receive(ack, PHONE, 0.55)] == [AckReceived]
    assert layer.receive(incoming("ACK", branch="z9hG4bKack1", to_tag="uas1"), PHONE, 0.6) == []


def test_a_late_invite_retransmission_after_the_ack_is_not_a_new_call() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.0)
    drain(layer)
    layer.receive(incoming("ACK", branch="z9hG4bKack1", to_tag="uas1"), PHONE, 2.0)
    for at in (5.0, 20.0, 31.9):
        run(layer, at)
        assert layer.receive(incoming(), PHONE, at) == []
        assert drain(layer) == []  # absorbed: no new RequestReceived, no answer
    run(layer, 32.0)  # timer L: 64*T1 after the 2xx
    assert tx.key not in layer.server


def test_no_ack_within_64_t1_is_reported_once() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.0)
    drain(layer)
    sent, events = run(layer, 1000.0)
    assert [t for t, _ in sent][-1] == 31.5  # retransmitted until the end
    assert [(t, type(e)) for t, e in events] == [(32.0, AckTimeout)]
    assert events[0][1].tx is tx
    assert layer.server == {} and layer.next_deadline() is None


def test_over_tcp_the_2xx_is_not_retransmitted_but_times_out_alike() -> None:
    layer = new_layer()
    tx = server_invite(layer, conn=TCP)
    layer.respond(tx, ok(tx), 0.0)
    ((_, addr, conn),) = layer.outbox
    assert (addr, conn) == (PHONE, TCP)
    layer.outbox.clear()
    sent, events = run(layer, 1000.0)
    assert sent == []
    assert [(t, type(e)) for t, e in events] == [(32.0, AckTimeout)]


def test_over_tcp_an_acked_2xx_ends_quietly() -> None:
    layer = new_layer()
    tx = server_invite(layer, conn=TCP)
    layer.respond(tx, ok(tx), 0.0)
    drain(layer)
    ack = incoming("ACK", branch="z9hG4bKack1", to_tag="uas1")
    assert [type(e) for e in layer.receive(ack, PHONE, 1.0, TCP)] == [AckReceived]
    assert run(layer, 1000.0) == ([], [])
    assert layer.server == {}


def test_custom_timers_scale_the_2xx_schedule() -> None:
    layer = new_layer(t1=0.1, t2=0.4)
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.0)
    drain(layer)
    sent, events = run(layer, 100.0)
    times = [t for t, _ in sent]
    assert times[:5] == pytest.approx([0.1, 0.3, 0.7, 1.1, 1.5])
    assert times[-1] < 6.4
    assert [(t, type(e)) for t, e in events] == [(pytest.approx(6.4), AckTimeout)]


# ------------------------------------------------------------------ non-2xx final to INVITE
def test_failure_is_retransmitted_on_timer_g_until_the_ack() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, response_to(tx.request, 486, to_tag="uas1"), 0.0)
    assert statuses(drain(layer)) == [486]
    sent, _ = run(layer, 12.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert statuses([m for _, m in sent]) == [486] * 5
    # the ACK for a failure belongs to the transaction: same branch, not for the TU
    assert layer.receive(incoming("ACK", to_tag="uas1"), PHONE, 12.0) == []
    assert tx.state == "confirmed"
    assert layer.receive(incoming(), PHONE, 13.0) == []  # absorbed in Confirmed
    assert drain(layer) == []
    assert layer.next_deadline() == 17.0  # timer I: T4
    sent, events = run(layer, 1000.0)
    assert sent == [] and events == []
    assert tx.key not in layer.server


def test_failure_without_ack_ends_on_timer_h() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, response_to(tx.request, 486, to_tag="uas1"), 0.0)
    drain(layer)
    sent, events = run(layer, 1000.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == []
    assert tx.state == "terminated" and layer.server == {}


# ------------------------------------------------------------------ CANCEL (§9.2)
def test_cancel_of_a_ringing_invite() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    events = layer.receive(incoming("CANCEL"), PHONE, 1.0)
    assert len(events) == 1
    assert isinstance(events[0], CancelReceived) and events[0].tx is tx
    (answer,) = drain(layer)
    assert isinstance(answer, Response)
    assert (answer.status, answer.cseq) == (200, (1, "CANCEL"))
    # the TU ends the INVITE with 487; a resent CANCEL is answered again but not redelivered
    layer.respond(tx, response_to(tx.request, 487, to_tag="uas1"), 1.0)
    assert statuses(drain(layer)) == [487]
    assert layer.receive(incoming("CANCEL"), PHONE, 1.5) == []
    assert [m.cseq for m in drain(layer)] == [(1, "CANCEL")]


def test_cancel_without_a_matching_invite_is_481() -> None:
    layer = new_layer()
    server_invite(layer)
    assert layer.receive(incoming("CANCEL", branch="z9hG4bKother"), PHONE, 1.0) == []
    assert statuses(drain(layer)) == [481]


def test_cancel_that_crossed_our_final_response_changes_nothing() -> None:
    layer = new_layer()
    tx = server_invite(layer)
    layer.respond(tx, ok(tx), 0.5)
    drain(layer)
    assert layer.receive(incoming("CANCEL"), PHONE, 0.6) == []
    assert statuses(drain(layer)) == [200]
    assert tx.state == "accepted"


# ------------------------------------------------------------------ non-INVITE server
def test_non_invite_retransmission_gets_the_last_response_until_timer_j() -> None:
    layer = new_layer()
    (event,) = layer.receive(incoming("OPTIONS", branch="z9hG4bKopt"), PHONE, 0.0)
    assert isinstance(event, RequestReceived)
    assert drain(layer) == []  # no 100 for a non-INVITE
    assert layer.receive(incoming("OPTIONS", branch="z9hG4bKopt"), PHONE, 0.5) == []
    assert drain(layer) == []  # not answered yet: nothing to resend
    layer.respond(event.tx, response_to(event.request, 200, to_tag="x"), 1.0)
    assert statuses(drain(layer)) == [200]
    assert layer.receive(incoming("OPTIONS", branch="z9hG4bKopt"), PHONE, 2.0) == []
    assert statuses(drain(layer)) == [200]
    run(layer, 32.9)
    assert event.tx.key in layer.server
    run(layer, 33.0)  # timer J: 64*T1 after the final response
    assert layer.server == {}


def test_non_invite_over_tcp_ends_with_its_response() -> None:
    layer = new_layer()
    (event,) = layer.receive(incoming("OPTIONS", branch="z9hG4bKopt"), PHONE, 0.0, TCP)
    assert isinstance(event, RequestReceived)
    layer.respond(event.tx, response_to(event.request, 200, to_tag="x"), 1.0)
    run(layer, 1.0)
    assert layer.server == {}


def test_a_request_the_tu_never_answers_is_not_kept_forever() -> None:
    """The client gives up after 64*T1 (timer F); so does the server transaction."""
    layer = new_layer()
    (event,) = layer.receive(incoming("REGISTER", branch="z9hG4bKreg"), PHONE, 0.0)
    assert isinstance(event, RequestReceived)
    assert run(layer, 1000.0) == ([], [])
    assert layer.server == {}


# ------------------------------------------------------------------ client INVITE
def test_request_adds_our_via_with_a_new_branch_and_rport() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    via = parse_via(sent.headers.get("Via") or "")
    assert via.branch is not None and via.branch.startswith(MAGIC)
    assert "rport" in via.params
    assert (via.host, via.port, via.transport) == (*LOCAL, "UDP")
    assert len(sent.headers.get_all("Via")) == 1
    assert sent.headers.get("Max-Forwards") == "70"
    other = layer.request(outgoing(call_id="agent-2@hotline"), PHONE, 0.0)
    (sent2,) = drain(layer)
    assert parse_via(sent2.headers.get("Via") or "").branch != via.branch
    assert other is not tx


def test_invite_is_retransmitted_on_timer_a_until_timer_b() -> None:
    layer = new_layer()
    tx, _ = client_invite(layer)
    sent, events = run(layer, 1000.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # doubling, no cap
    assert all(isinstance(m, Request) and m.method == "INVITE" for _, m in sent)
    assert [(t, type(e)) for t, e in events] == [(32.0, TransactionTimeout)]
    assert events[0][1].tx is tx
    assert layer.client == {}


def test_a_ringing_phone_may_ring_as_long_as_it_likes() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    run(layer, 0.9)  # one retransmission
    events = layer.receive(reply(sent, 180), PHONE, 1.0)
    assert [type(e) for e in events] == [ResponseReceived]
    assert run(layer, 10_000.0) == ([], [])
    assert layer.next_deadline() is None
    assert tx.state == "proceeding"


def test_2xx_is_for_the_tu_which_acks_it_and_the_layer_reacks_retransmissions() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    layer.receive(reply(sent, 180), PHONE, 0.3)
    ok_ = reply(sent, 200)
    events = layer.receive(ok_, PHONE, 2.0)
    assert [type(e) for e in events] == [ResponseReceived]
    assert drain(layer) == []  # the ACK for a 2xx is the TU's (§13.2.2.4)
    dialog = Dialog.as_uac(tx.request, ok_, PHONE)
    layer.ack_2xx(tx, dialog.ack(tx.request.cseq[0]))
    (ack,) = drain(layer)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.cseq == (1, "ACK")
    assert parse_via(ack.headers.get("Via") or "").branch != parse_via(
        sent.headers.get("Via") or "").branch
    assert parse_name_addr(ack.headers.get("To") or "").tag == "phone1"
    # the phone did not get our ACK and resends its 2xx
    events = layer.receive(reply(sent, 200), PHONE, 3.0)
    assert [type(e) for e in events] == [ResponseReceived]
    (again,) = drain(layer)
    assert bytes(again) == bytes(ack)
    run(layer, 34.0)  # timer M
    assert layer.client == {}
    assert layer.receive(reply(sent, 200), PHONE, 35.0) == []


def test_a_2xx_from_another_fork_does_not_get_the_first_dialogs_ack() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    first = reply(sent, 200, to_tag="phone1")
    layer.receive(first, PHONE, 1.0)
    layer.ack_2xx(tx, Dialog.as_uac(tx.request, first, PHONE).ack(1))
    drain(layer)
    events = layer.receive(reply(sent, 200, to_tag="phone2"), PHONE, 1.2)
    assert [type(e) for e in events] == [ResponseReceived]  # for the TU to ACK (and BYE)
    assert drain(layer) == []


def test_ack_for_a_tcp_invite_says_tcp() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer, conn=TCP)
    ok_ = reply(sent, 200)
    layer.receive(ok_, PHONE, 1.0, TCP)
    layer.ack_2xx(tx, Dialog.as_uac(tx.request, ok_, PHONE, TCP).ack(1))
    ((data, _, conn),) = layer.outbox
    assert conn is TCP
    assert parse_via(parse(data).headers.get("Via") or "").transport == "TCP"


def test_failure_is_acked_by_the_layer_in_the_same_transaction() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    busy = reply(sent, 486, to_tag="phone9")
    events = layer.receive(busy, PHONE, 1.0)
    assert [type(e) for e in events] == [ResponseReceived]
    (ack,) = drain(layer)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.uri == sent.uri
    assert ack.headers.get_all("Via") == sent.headers.get_all("Via")  # same branch (§17.1.1.3)
    assert ack.headers.get("From") == sent.headers.get("From")
    assert ack.headers.get("To") == busy.headers.get("To")  # the response's To tag
    assert parse_name_addr(ack.headers.get("To") or "").tag == "phone9"
    assert ack.call_id == sent.call_id and ack.cseq == (1, "ACK")
    assert ack.headers.get_all("Route") == sent.headers.get_all("Route")
    # our ACK was lost: the retransmitted 486 is ACKed again, not redelivered
    assert layer.receive(reply(sent, 486, to_tag="phone9"), PHONE, 1.5) == []
    (again,) = drain(layer)
    assert bytes(again) == bytes(ack)
    run(layer, 32.9)
    assert tx.key in layer.client  # timer D: 32 s over UDP
    run(layer, 33.0)
    assert layer.client == {}


def test_invite_over_tcp_is_not_retransmitted_but_times_out() -> None:
    layer = new_layer()
    client_invite(layer, conn=TCP)
    sent, events = run(layer, 1000.0)
    assert sent == []
    assert [(t, type(e)) for t, e in events] == [(32.0, TransactionTimeout)]


# ------------------------------------------------------------------ CANCEL (§9.1)
def test_cancel_waits_for_a_provisional_and_matches_the_invite() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    layer.cancel(tx, 0.2)
    assert drain(layer) == []  # the phone may not know the INVITE yet
    run(layer, 0.6)
    assert layer.receive(reply(sent, 180), PHONE, 0.7) != []
    (cancel,) = drain(layer)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.uri == sent.uri
    assert cancel.headers.get_all("Via") == sent.headers.get_all("Via")[:1]  # same branch
    for name in ("Call-ID", "From", "To"):
        assert cancel.headers.get(name) == sent.headers.get(name)
    assert cancel.headers.get_all("Route") == sent.headers.get_all("Route")
    assert cancel.cseq == (1, "CANCEL")
    # the CANCEL is its own transaction
    events = layer.receive(reply(cancel, 200), PHONE, 0.8)
    assert [type(e) for e in events] == [ResponseReceived]
    assert events[0].tx is not tx
    # the phone never answers the INVITE: give up 64*T1 after the CANCEL
    _, timeouts = run(layer, 1000.0)
    assert [(t, type(e), e.tx) for t, e in timeouts] == [
        (pytest.approx(32.7), TransactionTimeout, tx)
    ]
    assert layer.client == {}


def test_cancel_sent_at_once_when_ringing_and_only_once() -> None:
    """The B2BUA cancels on CancelOffer and again when the call is released: one CANCEL."""
    layer = new_layer()
    tx, sent = client_invite(layer)
    layer.receive(reply(sent, 180), PHONE, 0.1)
    layer.cancel(tx, 1.0)
    (cancel,) = drain(layer)
    layer.cancel(tx, 1.2)
    assert drain(layer) == []
    sent_later, _ = run(layer, 1.6)
    assert [m.method for _, m in sent_later] == ["CANCEL"]  # timer E of the one CANCEL
    layer.receive(reply(cancel, 200), PHONE, 2.0)
    events = layer.receive(reply(sent, 487), PHONE, 2.1)
    assert [(type(e), e.response.status) for e in events] == [
        (ResponseReceived, 487)
    ]


def test_no_cancel_once_the_invite_is_answered() -> None:
    layer = new_layer()
    tx, sent = client_invite(layer)
    layer.cancel(tx, 0.1)  # deferred...
    layer.receive(reply(sent, 200), PHONE, 0.2)  # ...and the phone answered first
    layer.cancel(tx, 0.3)
    assert drain(layer) == []
    assert (tx.key[0], "CANCEL") not in layer.client


# ------------------------------------------------------------------ client non-INVITE
def test_non_invite_timer_e_doubles_up_to_t2() -> None:
    layer = new_layer()
    layer.request(outgoing("OPTIONS"), PHONE, 0.0)
    drain(layer)
    sent, _ = run(layer, 20.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]


def test_non_invite_continues_at_t2_after_a_provisional() -> None:
    layer = new_layer()
    tx = layer.request(outgoing("BYE"), PHONE, 0.0)
    (sent,) = drain(layer)
    assert isinstance(sent, Request)
    run(layer, 0.6)
    layer.receive(reply(sent, 100, to_tag=None), PHONE, 0.7)
    resent, _ = run(layer, 10.0)
    assert [t for t, _ in resent] == [1.5, 5.5, 9.5]
    assert tx.state == "proceeding"


def test_non_invite_timer_f() -> None:
    layer = new_layer()
    tx = layer.request(outgoing("BYE"), PHONE, 0.0)
    _, events = run(layer, 1000.0)
    assert [(t, type(e), e.tx) for t, e in events] == [
        (32.0, TransactionTimeout, tx)
    ]


def test_non_invite_timer_k_absorbs_retransmitted_finals() -> None:
    layer = new_layer()
    tx = layer.request(outgoing("BYE"), PHONE, 0.0)
    (sent,) = drain(layer)
    assert isinstance(sent, Request)
    assert [type(e) for e in layer.receive(reply(sent, 200), PHONE, 1.0)] == [ResponseReceived]
    assert layer.receive(reply(sent, 200), PHONE, 2.0) == []
    assert layer.next_deadline() == 6.0  # T4
    assert run(layer, 1000.0) == ([], [])
    assert tx.key not in layer.client


# ------------------------------------------------------------------ RFC 2543 peers
@pytest.mark.parametrize("branch", [None, "1234abcd"])
def test_rfc2543_retransmissions_still_match(branch: str | None) -> None:
    layer = new_layer()
    tx = server_invite(layer, branch=branch)
    assert layer.receive(incoming(branch=branch), PHONE, 0.5) == []
    assert statuses(drain(layer)) == [100]
    # the next CSeq is a new request
    (event,) = layer.receive(incoming(branch=branch, cseq=2), PHONE, 1.0)
    assert isinstance(event, RequestReceived) and event.tx is not tx
    drain(layer)
    # CANCEL and the ACK for a failure find the INVITE without a unique branch
    (cancelled,) = layer.receive(incoming("CANCEL", branch=branch), PHONE, 1.5)
    assert isinstance(cancelled, CancelReceived) and cancelled.tx is tx
    layer.respond(tx, response_to(tx.request, 487, to_tag="uas1"), 1.5)
    drain(layer)
    assert layer.receive(incoming("ACK", branch=branch, to_tag="uas1"), PHONE, 2.0) == []
    assert tx.state == "confirmed"


# ------------------------------------------------------------------ next_deadline, property-style
class _Model:
    """Random traffic both ways, with every request and response the layer could see."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.layer = TransactionLayer(LOCAL, rng=random.Random(seed), t1=0.5, t2=4.0, t4=5.0)
        self.now = 0.0
        self.seen: list[tuple[Request, Any]] = []  # requests received (to retransmit)
        self.sent: list[tuple[ClientTransaction, Request]] = []
        self.n = 0

    def snapshot(self) -> tuple[Any, ...]:
        layer = self.layer
        return (
            sorted((repr(k), tx.state) for k, tx in layer.server.items()),
            sorted((repr(k), tx.state) for k, tx in layer.client.items()),
            len(layer.outbox),
        )

    def step(self) -> None:
        rng, layer, now = self.rng, self.layer, self.now
        op = rng.choice(["in", "in", "again", "respond", "ack", "cancel_in", "out", "reply",
                         "cancel_out", "ack_2xx", "wait", "wait", "wait"])
        if op == "in":
            self.n += 1
            method = rng.choice(["INVITE", "INVITE", "OPTIONS", "BYE"])
            branch = rng.choice([f"z9hG4bK{self.n}", f"old{self.n}"])
            conn = rng.choice([None, None, TCP])
            req = incoming(method, branch=branch, call_id=f"c{self.n}", cseq=self.n)
            self.seen.append((req, conn))
            layer.receive(req, PHONE, now, conn)
        elif op == "again" and self.seen:
            req, conn = rng.choice(self.seen)
            layer.receive(parse(bytes(req)), PHONE, now, conn)
        elif op == "respond" and layer.server:
            tx = rng.choice(list(layer.server.values()))
            status = rng.choice([180, 200, 486] if tx.invite else [100, 200, 404])
            layer.respond(tx, response_to(tx.request, status, to_tag="uas"), now)
        elif op == "ack" and layer.server:
            tx = rng.choice(list(layer.server.values()))
            if tx.invite:
                via = parse_via(tx.request.headers.get("Via") or "")
                branch = via.branch if tx.state == "completed" else f"z9hG4bKack{self.n}"
                ack = incoming("ACK", branch=branch, call_id=tx.request.call_id,
                               cseq=tx.request.cseq[0], to_tag="uas")
                layer.receive(ack, PHONE, now, tx.conn)
        elif op == "cancel_in" and self.seen:
            req, conn = rng.choice(self.seen)
            if req.method == "INVITE":
                via = parse_via(req.headers.get("Via") or "")
                layer.receive(incoming("CANCEL", branch=via.branch, call_id=req.call_id,
                                       cseq=req.cseq[0]), PHONE, now, conn)
        elif op == "out":
            self.n += 1
            method = rng.choice(["INVITE", "INVITE", "BYE"])
            conn = rng.choice([None, None, TCP])
            tx = layer.request(outgoing(method, call_id=f"out{self.n}"), PHONE, now, conn=conn)
            self.sent.append((tx, parse(bytes(tx.request))))
        elif op == "reply" and self.sent:
            tx, req = rng.choice(self.sent)
            status = rng.choice([100, 180, 200, 200, 487, 503])
            layer.receive(reply(req, status), PHONE, now, tx.conn)
        elif op == "cancel_out" and self.sent:
            tx, _ = rng.choice(self.sent)
            layer.cancel(tx, now)
        elif op == "ack_2xx" and self.sent:
            tx, req = rng.choice(self.sent)
            if tx.state == "accepted":
                layer.ack_2xx(tx, Dialog.as_uac(tx.request, reply(req, 200), PHONE).ack(1))
        elif op == "wait":
            self.advance(now + rng.expovariate(1 / 3))
        self.layer.outbox.clear()

    def advance(self, target: float) -> None:
        """Move the clock to ``target`` through every deadline; before one, nothing is due."""
        layer = self.layer
        while True:
            due = layer.next_deadline()
            stop = target if due is None else min(due, target)
            early = self.rng.uniform(self.now, stop)
            if early < stop:
                before = self.snapshot()
                assert layer.on_timer(early) == [], "work was due before next_deadline()"
                assert self.snapshot() == before, "work was due before next_deadline()"
                self.now = early
            if due is None or due > target:
                self.now = target
                return
            layer.on_timer(due)
            layer.outbox.clear()
            self.now = due
            assert layer.next_deadline() is None or layer.next_deadline() > due


@pytest.mark.parametrize("seed", range(40))
def test_next_deadline_is_never_later_than_due_work(seed: int) -> None:
    model = _Model(seed)
    for _ in range(150):
        model.step()
    model.advance(model.now + 100_000.0)
    # with no more input, only what waits on someone else is left: an INVITE the TU has not
    # answered yet, and an INVITE of ours that rings (uncancelled)
    for tx in model.layer.server.values():
        assert tx.invite and tx.state == "proceeding"
    for ctx in model.layer.client.values():
        assert ctx.invite and ctx.state == "proceeding" and not ctx.cancelled
    assert model.layer.next_deadline() is None
    assert model.layer.awaiting_ack == {}


# ------------------------------------------------------------------ dialogs (§12)
def _invite_with_routes() -> Request:
    return incoming(extra=("Record-Route: <sip:p1.example.net;lr>",
                           "Record-Route: <sip:p2.example.net;lr>"))


def test_uas_dialog() -> None:
    invite = _invite_with_routes()
    d = Dialog.as_uas(invite, "uas1", "<sip:100@192.0.2.10:5060>", PHONE)
    assert (d.local_tag, d.remote_tag) == ("uas1", "a1")
    assert d.call_id == "c1@phone"
    assert d.remote_target == "sip:alice@198.51.100.7:5062"  # the Contact
    assert d.route_set == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    assert d.remote_cseq == 1
    assert d.peer == PHONE


def test_uas_dialog_without_contact_targets_the_caller_not_us() -> None:
    invite = incoming()
    invite.headers.remove("Contact")
    d = Dialog.as_uas(invite, "uas1", "<sip:100@192.0.2.10:5060>", PHONE)
    assert d.remote_target == "sip:alice@example.com"


def test_uac_dialog_reverses_the_route_set() -> None:
    invite = outgoing()
    invite.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx")
    resp = response_to(invite, 200, to_tag="phone1")
    resp.headers.add("Record-Route", "<sip:p1.example.net;lr>")
    resp.headers.add("Record-Route", "<sip:p2.example.net;lr>")
    resp.headers.add("Contact", "<sip:1001@198.51.100.7:5062;transport=udp>")
    d = Dialog.as_uac(invite, resp, PHONE)
    assert (d.local_tag, d.remote_tag) == ("b2b1", "phone1")
    assert d.remote_target == "sip:1001@198.51.100.7:5062;transport=udp"
    assert d.route_set == ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]
    assert d.local_cseq == 1
    assert d.local_contact == "<sip:hotline@192.0.2.10:5060>"


def test_in_dialog_requests_count_up_and_follow_the_route_set() -> None:
    d = Dialog.as_uas(_invite_with_routes(), "uas1", "<sip:100@192.0.2.10:5060>", PHONE)
    bye = d.request("BYE")
    assert bye.uri == "sip:alice@198.51.100.7:5062"
    assert bye.headers.get_all("Route") == d.route_set
    assert parse_name_addr(bye.headers.get("From") or "").tag == "uas1"
    assert parse_name_addr(bye.headers.get("To") or "").tag == "a1"
    assert bye.call_id == "c1@phone"
    first = bye.cseq[0]
    assert d.request("INFO").cseq[0] == first + 1
    reinvite = d.request("INVITE")
    assert reinvite.cseq == (first + 2, "INVITE")
    assert reinvite.headers.get("Contact") == "<sip:100@192.0.2.10:5060>"
    # the peer, receiving it, finds its dialog by the tags
    assert request_dialog_key(bye) == dialog_key("c1@phone", "a1", "uas1")


def test_ack_keeps_the_invites_cseq() -> None:
    invite = outgoing(cseq=7)
    invite.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx")
    d = Dialog.as_uac(invite, response_to(invite, 200, to_tag="phone1"), PHONE)
    ack = d.ack(7, b"v=0\r\n")
    assert ack.cseq == (7, "ACK")
    assert ack.headers.get("Content-Type") == "application/sdp"
    assert d.request("BYE").cseq == (8, "BYE")  # the ACK used no new number


def test_accepts_only_newer_requests() -> None:
    d = Dialog.as_uas(incoming(cseq=5), "uas1", "<sip:100@192.0.2.10>", PHONE)
    assert not d.accepts(incoming("INVITE", cseq=5, to_tag="uas1"))  # the same, again
    assert not d.accepts(incoming("BYE", cseq=4, to_tag="uas1"))  # older
    assert d.accepts(incoming("ACK", cseq=5, to_tag="uas1"))
    assert d.accepts(incoming("INVITE", cseq=6, to_tag="uas1"))
    assert not d.accepts(incoming("BYE", cseq=6, to_tag="uas1"))
    assert d.accepts(incoming("BYE", cseq=9, to_tag="uas1"))  # gaps are fine
