"""The registrar (RFC 3261 §10.3): what a phone's REGISTER does to where its calls go."""

from __future__ import annotations

import pytest

from hotline.sip.message import Headers, Request, SipError, parse
from hotline.sip.registrar import MAX_BINDINGS, MAX_EXPIRES, Registrar

AOR = "1001"
PHONE = ("203.0.113.5", 40123)  # the NAT's address: where calls must go
DESK = "<sip:1001@10.0.0.5:5060>"
SOFT = "<sip:1001@10.0.0.6:5070;transport=udp>"


def register(*contacts: str, expires: str | None = None, call_id: str = "reg-1@10.0.0.5",
             cseq: int = 1, ua: str = "Yealink SIP-T46U") -> Request:
    lines = [
        "REGISTER sip:192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKreg;rport",
        "From: <sip:1001@192.0.2.10>;tag=r1",
        "To: <sip:1001@192.0.2.10>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *(f"Contact: {c}" for c in contacts),
        *([f"Expires: {expires}"] if expires is not None else []),
        f"User-Agent: {ua}",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def test_register_with_an_expires_header() -> None:
    reg = Registrar()
    out = reg.register(AOR, register(DESK, expires="120"), PHONE, 1000.0, transport="UDP")
    assert (out.status, out.changed) == (200, True)
    (b,) = out.contacts
    assert b.contact == "sip:1001@10.0.0.5:5060"
    assert b.expires_at == 1120.0
    assert b.source == PHONE and b.transport == "UDP"
    assert b.user_agent == "Yealink SIP-T46U"
    assert reg.lookup(AOR, 1119.9) == [b]
    assert reg.lookup(AOR, 1120.0) == []


def test_contact_expires_parameter_wins_over_the_header() -> None:
    reg = Registrar()
    out = reg.register(AOR, register(DESK + ";expires=300", SOFT, expires="120"), PHONE, 0.0)
    assert {b.contact: b.expires_at for b in out.contacts} == {
        "sip:1001@10.0.0.5:5060": 300.0,
        "sip:1001@10.0.0.6:5070;transport=udp": 120.0,
    }


def test_without_any_expires_the_default_applies() -> None:
    reg = Registrar(default_expires=1800, max_expires=3600)
    (b,) = reg.register(AOR, register(DESK), PHONE, 0.0).contacts
    assert b.expires_at == 1800.0


def test_too_brief_is_423_with_min_expires() -> None:
    reg = Registrar(min_expires=60)
    out = reg.register(AOR, register(DESK, expires="30"), PHONE, 0.0)
    assert (out.status, out.min_expires, out.contacts, out.changed) == (423, 60, [], False)
    assert reg.lookup(AOR, 0.0) == []
    assert AOR not in reg.bindings


def test_too_long_is_clamped_to_the_maximum() -> None:
    reg = Registrar(max_expires=3600)
    (b,) = reg.register(AOR, register(DESK, expires="86400"), PHONE, 10.0).contacts
    assert b.expires_at == 3610.0


def test_contact_star_with_expires_0_removes_every_binding() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK, SOFT, expires="600"), PHONE, 0.0)
    out = reg.register(AOR, register("*", expires="0", cseq=2), PHONE, 10.0)
    assert (out.status, out.contacts, out.changed) == (200, [], True)
    assert reg.lookup(AOR, 10.0) == []
    assert AOR not in reg.bindings


@pytest.mark.parametrize("expires", ["60", None])
def test_contact_star_needs_expires_0(expires: str | None) -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK), PHONE, 0.0)
    with pytest.raises(SipError) as err:
        reg.register(AOR, register("*", expires=expires, cseq=2), PHONE, 1.0)
    assert err.value.status == 400
    assert len(reg.lookup(AOR, 1.0)) == 1


def test_out_of_order_register_from_the_same_call_id_is_500() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK, expires="600", cseq=5), PHONE, 0.0)
    late = reg.register(AOR, register(DESK, expires="0", cseq=4), PHONE, 1.0)  # delayed
    assert (late.status, late.changed) == (500, False)
    assert late.contacts == []
    again = reg.register(AOR, register(DESK, expires="0", cseq=5), PHONE, 1.0)
    assert again.status == 500
    assert len(reg.lookup(AOR, 1.0)) == 1
    # a phone that rebooted starts a new Call-ID, and a low CSeq with it
    rebooted = reg.register(AOR, register(DESK, call_id="new@10.0.0.5", cseq=1), PHONE, 2.0)
    assert rebooted.status == 200
    star = reg.register(AOR, register("*", expires="0", call_id="new@10.0.0.5"), PHONE, 3.0)
    assert star.status == 500


def test_a_register_is_applied_whole_or_not_at_all() -> None:
    """§10.3 step 8: the updates are committed only if every one of them succeeds."""
    reg = Registrar()
    reg.register(AOR, register(DESK, expires="600", cseq=5), PHONE, 0.0)
    # the soft phone's binding is fine, the desk phone's is out of order
    out = reg.register(AOR, register(SOFT, DESK, expires="600", cseq=3), PHONE, 1.0)
    assert out.status == 500
    assert [b.contact for b in reg.lookup(AOR, 1.0)] == ["sip:1001@10.0.0.5:5060"]
    # the first is fine, the second too brief
    out = reg.register(AOR, register(SOFT, DESK + ";expires=5", cseq=6), PHONE, 2.0)
    assert out.status == 423
    assert [b.contact for b in reg.lookup(AOR, 2.0)] == ["sip:1001@10.0.0.5:5060"]


def test_several_contacts_and_the_oldest_evicted_beyond_the_limit() -> None:
    reg = Registrar()
    uris = [f"<sip:1001@10.0.0.{i}:5060>" for i in range(1, MAX_BINDINGS + 2)]
    for t, uri in enumerate(uris):
        out = reg.register(AOR, register(uri, call_id=f"c{t}"), PHONE, float(t))
        assert out.status == 200
    found = [b.contact for b in reg.lookup(AOR, 10.0)]
    assert len(found) == MAX_BINDINGS
    # most recent first; the first phone's binding went
    assert found == [u.strip("<>") for u in reversed(uris[1:])]


def test_lookup_puts_the_most_recent_registration_first() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK, call_id="desk"), PHONE, 0.0)
    reg.register(AOR, register(SOFT, call_id="soft"), ("203.0.113.6", 5070), 5.0)
    assert [b.source for b in reg.lookup(AOR, 6.0)] == [("203.0.113.6", 5070), PHONE]
    reg.register(AOR, register(DESK, call_id="desk", cseq=2), PHONE, 7.0)  # a refresh
    assert [b.source for b in reg.lookup(AOR, 8.0)] == [PHONE, ("203.0.113.6", 5070)]


def test_a_register_without_contact_fetches_the_bindings() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK), PHONE, 0.0)
    out = reg.register(AOR, register(cseq=2), PHONE, 1.0)
    assert (out.status, out.changed, [b.contact for b in out.contacts]) == (
        200, False, ["sip:1001@10.0.0.5:5060"])


def test_expire_reports_an_aor_when_its_last_binding_lapses() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK, expires="100", call_id="desk"), PHONE, 0.0)
    reg.register(AOR, register(SOFT, expires="200", call_id="soft"), PHONE, 0.0)
    reg.register("1002", register(DESK, expires="150", call_id="other"), PHONE, 0.0)
    assert reg.next_expiry() == 100.0
    assert reg.expire(99.0) == []
    assert reg.expire(120.0) == []  # the soft phone is still there
    assert [b.contact for b in reg.lookup(AOR, 120.0)] == ["sip:1001@10.0.0.6:5070;transport=udp"]
    assert reg.expire(160.0) == ["1002"]
    assert reg.expire(250.0) == [AOR]
    assert reg.bindings == {}
    assert reg.expire(10_000.0) == []  # once


def test_a_refreshed_binding_does_not_lapse_at_its_old_time() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK, expires="100"), PHONE, 0.0)
    reg.register(AOR, register(DESK, expires="100", cseq=2), PHONE, 90.0)
    assert reg.expire(150.0) == []
    assert len(reg.lookup(AOR, 150.0)) == 1
    assert reg.expire(190.0) == [AOR]


def test_changed_says_when_reachability_changes() -> None:
    reg = Registrar()
    assert reg.register(AOR, register(DESK, call_id="d"), PHONE, 0.0).changed  # first
    assert not reg.register(AOR, register(DESK, call_id="d", cseq=2), PHONE, 1.0).changed
    assert not reg.register(AOR, register(SOFT, call_id="s"), PHONE, 2.0).changed  # a second
    out = reg.register(AOR, register(DESK, expires="0", call_id="d", cseq=3), PHONE, 3.0)
    assert not out.changed and len(out.contacts) == 1  # one is left
    out = reg.register(AOR, register(SOFT, expires="0", call_id="s", cseq=2), PHONE, 4.0)
    assert out.changed and out.contacts == []  # the last one went
    assert AOR not in reg.bindings
    # removing what is not there changes nothing
    assert not reg.register(AOR, register("*", expires="0", cseq=9), PHONE, 5.0).changed


def test_a_lapse_is_reported_once_when_a_register_comes_before_expire() -> None:
    """The expiry timer runs a little after the lapse; a REGISTER in between must not make the
    call center miss (or double) the phone going away."""
    reg = Registrar()
    reg.register(AOR, register(DESK, expires="100"), PHONE, 0.0)
    out = reg.register(AOR, register("*", expires="0", cseq=2), PHONE, 100.005)
    assert out.changed and out.contacts == []
    assert reg.expire(100.01) == []  # already reported
    # the same with a refresh that came just too late: still registered, nothing lost
    reg.register(AOR, register(DESK, expires="100", call_id="b"), PHONE, 200.0)
    out = reg.register(AOR, register(DESK, expires="100", call_id="b", cseq=2), PHONE, 300.005)
    assert not out.changed and len(out.contacts) == 1
    assert reg.expire(300.01) == []


@pytest.mark.parametrize("value", ["²", "٣٠", "1" * 5000, "-5", "12a", ""])
def test_unreadable_expires_is_a_sip_error(value: str) -> None:
    h = Headers()
    for name, v in (("From", "<sip:1001@192.0.2.10>;tag=r1"), ("To", "<sip:1001@192.0.2.10>"),
                    ("Call-ID", "x"), ("CSeq", "1 REGISTER"), ("Contact", DESK)):
        h.add(name, v)
    h.add("Expires", value)
    reg = Registrar()
    if value == "1" * 5000:  # absurd but well-formed: as long as we allow
        (b,) = reg.register(AOR, Request("REGISTER", "sip:192.0.2.10", h), PHONE, 0.0).contacts
        assert b.expires_at == float(MAX_EXPIRES)
        return
    with pytest.raises(SipError):
        reg.register(AOR, Request("REGISTER", "sip:192.0.2.10", h), PHONE, 0.0)
    assert reg.bindings == {}


def test_unbind() -> None:
    reg = Registrar()
    reg.register(AOR, register(DESK), PHONE, 0.0)
    assert reg.unbind(AOR)
    assert reg.lookup(AOR, 1.0) == []
    assert not reg.unbind(AOR)
