"""The guard in front of the SIP port: scanners, floods and password guessers must not starve
the trunks and phones that carry real calls."""

from __future__ import annotations

from hotline.sip.guard import GuardConfig, SourceGuard

OPTIONS = (
    b"OPTIONS sip:100@192.0.2.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:probe@198.51.100.9>;tag=1\r\nTo: <sip:100@192.0.2.10>\r\n"
    b"Call-ID: 1\r\nCSeq: 1 OPTIONS\r\n%b\r\n"
)
STRANGER = "198.51.100.9"
TRUNK = "192.0.2.200"
PHONE = "203.0.113.5"


def datagram(extra: bytes = b"User-Agent: Yealink SIP-T46U\r\n") -> bytes:
    return OPTIONS % extra


def admitted(guard: SourceGuard, host: str, n: int, now: float) -> int:
    return sum(guard.admit(host, datagram(), now) for _ in range(n))


def test_unknown_address_gets_a_burst_then_the_rate() -> None:
    guard = SourceGuard(GuardConfig(unknown_rate=10.0, unknown_burst=40.0))
    assert admitted(guard, STRANGER, 100, 0.0) == 40
    assert admitted(guard, STRANGER, 100, 0.5) == 5  # 10 per second
    assert admitted(guard, STRANGER, 100, 10.0) == 40  # full again, never above the burst
    assert guard.dropped == 60 + 95 + 60
    assert admitted(guard, "198.51.100.10", 1, 10.0) == 1  # each address has its own budget


def test_trunks_and_registered_phones_are_never_throttled() -> None:
    guard = SourceGuard(GuardConfig(unknown_rate=1.0, unknown_burst=2.0))
    guard.trusted.add(TRUNK)
    guard.phone_registered(PHONE)
    assert admitted(guard, TRUNK, 10_000, 0.0) == 10_000
    assert admitted(guard, PHONE, 10_000, 0.0) == 10_000
    guard.phone_unregistered(PHONE)
    assert admitted(guard, PHONE, 10, 0.0) == 2  # a stranger again


def test_a_phone_registered_twice_from_one_address_stays_trusted_until_both_go() -> None:
    guard = SourceGuard(GuardConfig(unknown_rate=1.0, unknown_burst=1.0))
    guard.phone_registered(PHONE)
    guard.phone_registered(PHONE)
    guard.phone_unregistered(PHONE)
    assert admitted(guard, PHONE, 5, 0.0) == 5


def test_scanners_are_dropped_without_an_answer() -> None:
    guard = SourceGuard()
    for agent in (b"friendly-scanner", b"SIPVicious 0.3.4", b"sipcli/v1.8", b"VaxSIPUserAgent"):
        assert not guard.admit(STRANGER, datagram(b"User-Agent: " + agent + b"\r\n"), 0.0)
    assert guard.dropped == 4
    assert guard.admit(STRANGER, datagram(), 0.0)


def test_scanner_names_elsewhere_in_the_message_are_not_scanners() -> None:
    """A caller called Siwar ("iwar"), a domain with "smap" in it: real calls, not sipvicious."""
    guard = SourceGuard()
    call = datagram(b'Contact: "Siwar Haddad" <sip:siwar@smapper.example.com>\r\n'
                    b"User-Agent: Zoiper rv2.10\r\n")
    assert guard.admit(STRANGER, call, 0.0)
    assert guard.dropped == 0


def test_repeated_failed_logins_ban_the_address_for_a_while() -> None:
    cfg = GuardConfig(max_failures=5, failure_window=60.0, ban_seconds=600.0)
    guard = SourceGuard(cfg)
    assert guard.admit(STRANGER, datagram(), 0.0)
    assert [guard.auth_failed(STRANGER, float(t)) for t in range(5)] == [False] * 4 + [True]
    assert guard.is_banned(STRANGER, 5.0)
    assert not guard.admit(STRANGER, datagram(), 5.0)
    assert guard.retry_after(STRANGER, 5.0) == 599
    assert not guard.admit(STRANGER, datagram(), 603.9)
    assert guard.admit(STRANGER, datagram(), 604.0)  # the ban is over
    assert not guard.is_banned(STRANGER, 604.0)
    assert guard.bans == 1


def test_failures_spread_beyond_the_window_do_not_ban() -> None:
    guard = SourceGuard(GuardConfig(max_failures=3, failure_window=60.0))
    guard.admit(STRANGER, datagram(), 0.0)
    assert not any(guard.auth_failed(STRANGER, t * 31.0) for t in range(20))
    assert not guard.is_banned(STRANGER, 700.0)


def test_a_successful_login_clears_the_failures() -> None:
    guard = SourceGuard(GuardConfig(max_failures=5))
    guard.admit(PHONE, datagram(), 0.0)
    for t in range(4):
        guard.auth_failed(PHONE, float(t))
    guard.auth_succeeded(PHONE)  # the user typed the password right at last
    assert not any(guard.auth_failed(PHONE, 10.0 + t) for t in range(4))
    assert not guard.is_banned(PHONE, 20.0)


def test_trusted_addresses_are_never_banned_but_may_not_guess_passwords() -> None:
    guard = SourceGuard(GuardConfig(max_failures=2, ban_seconds=600.0))
    guard.trusted.add(TRUNK)
    assert not guard.auth_failed(TRUNK, 0.0)
    assert guard.auth_failed(TRUNK, 1.0)  # a trunk's address guessing phones' passwords...
    assert not guard.may_authenticate(TRUNK, 2.0)  # ...may not log in for a while...
    assert guard.admit(TRUNK, datagram(), 2.0)  # ...but its calls still come in
    assert not guard.is_banned(TRUNK, 2.0)
    assert guard.may_authenticate(TRUNK, 601.0)
    guard.ban(TRUNK, 0.0)
    assert not guard.is_banned(TRUNK, 1.0)
    assert guard.admit(TRUNK, datagram(), 1.0)
    # an address banned before it was configured as a trunk carries calls at once
    guard.auth_failed(STRANGER, 0.0)
    assert guard.auth_failed(STRANGER, 1.0)
    guard.trusted.add(STRANGER)
    assert guard.admit(STRANGER, datagram(), 2.0)


def _spoofed(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def test_a_spoofed_flood_keeps_memory_bounded_and_real_callers_working() -> None:
    cfg = GuardConfig()
    guard = SourceGuard(cfg)
    guard.trusted.add(TRUNK)
    data = datagram()
    largest = 0
    for i in range(200_000):
        guard.admit(_spoofed(i), data, i * 1e-5)
        if i % 1000 == 0:
            largest = max(largest, len(guard._sources))
            assert guard.admit(TRUNK, data, i * 1e-5)
    largest = max(largest, len(guard._sources))
    assert largest <= cfg.max_tracked
    later = 2.0 + cfg.unknown_total_burst / cfg.unknown_total_rate
    assert guard.admit(STRANGER, datagram(), later)  # once it stops, strangers get in again


def test_a_flood_from_many_addresses_costs_no_more_than_the_shared_budget() -> None:
    cfg = GuardConfig(unknown_total_rate=500.0, unknown_total_burst=1000.0)
    guard = SourceGuard(cfg)
    guard.trusted.add(TRUNK)
    data = datagram()
    # 10,000 datagrams/s from 5,000 addresses, each well inside its own budget, for 10 s
    admitted_unknown = 0
    for i in range(100_000):
        now = i * 1e-4
        admitted_unknown += guard.admit(f"10.{i % 5000 // 250}.{i % 250}.1", data, now)
        if i % 1000 == 0:
            assert guard.admit(TRUNK, data, now)  # the carrier is never held back
    # what got through: the burst plus the shared rate over the 10 s, and no more
    assert admitted_unknown <= cfg.unknown_total_burst + cfg.unknown_total_rate * 10 + 1
    assert admitted_unknown >= cfg.unknown_total_rate * 10


def test_a_spoofed_flood_does_not_wipe_a_password_guessers_record() -> None:
    guard = SourceGuard(GuardConfig(max_tracked=1000, max_failures=5, failure_window=600.0))
    guard.admit(STRANGER, datagram(), 0.0)
    for t in range(4):
        guard.auth_failed(STRANGER, float(t))
    for i in range(5000):  # the guesser's accomplices, or its own spoofed datagrams
        guard.admit(_spoofed(i), datagram(), 4.0 + i * 1e-4)
    assert guard.auth_failed(STRANGER, 5.0)  # the fifth failure still bans


def test_each_sweep_of_a_full_table_makes_room_for_a_quarter_of_it() -> None:
    """New addresses arriving just faster than old buckets refill leave only a few stale entries
    at each sweep: freeing those alone would sweep the whole table every few datagrams, O(n)
    each; making room for a quarter keeps a flood's cost linear."""
    cfg = GuardConfig(max_tracked=4000, unknown_rate=10.0, unknown_burst=40.0)  # refill: 4 s
    guard = SourceGuard(cfg)
    rate = cfg.max_tracked / (cfg.unknown_burst / cfg.unknown_rate) * 0.999  # addresses/s
    sweeps = 0
    size = 0
    n = 40_000
    data = datagram()
    for i in range(n):
        guard.admit(_spoofed(i), data, i / rate)
        if len(guard._sources) < size:
            sweeps += 1
        size = len(guard._sources)
        assert size <= cfg.max_tracked
    assert sweeps <= n // (cfg.max_tracked // 4) + 1
