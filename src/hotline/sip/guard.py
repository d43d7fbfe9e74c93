"""Protection of the SIP port, sans-I/O: who may cost us work, and how much.

Scanners (sipvicious "friendly-scanner" and friends) sweep the internet with OPTIONS, REGISTER
and INVITE floods and guess passwords. The rules, cheapest first:
- a banned address is dropped before parsing (one dict lookup per datagram);
- known scanner User-Agents are dropped without an answer (an answer tells them we exist);
- an address we don't know (not a trunk, not a registered phone) gets a small request budget
  (token bucket); beyond it, its datagrams are dropped unparsed; all unknown addresses
  together share one more budget, so a flood from many addresses costs no more than that;
- repeated failed authentications ban the address for a while.
Trusted addresses (trunks, phones with a current registration) skip the budget, so a flood
from elsewhere never starves real calls.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SCANNER_AGENTS = (
    b"friendly-scanner", b"sipvicious", b"sipcli", b"vaxsipuseragent", b"sip-scan",
    b"sipsak", b"iwar", b"sundayddr", b"pplsip", b"smap", b"voipbuster", b"cirpack",
)


@dataclass
class GuardConfig:
    unknown_rate: float = 10.0  # requests per second per unknown address
    unknown_burst: float = 40.0
    max_failures: int = 5  # failed authentications within the window...
    failure_window: float = 60.0
    ban_seconds: float = 600.0  # ...ban the address this long
    max_tracked: int = 100_000  # addresses tracked at once (memory bound under a spoofed flood)
    unknown_total_rate: float = 500.0  # requests per second from all unknown addresses
    unknown_total_burst: float = 1000.0


@dataclass(slots=True)
class _Source:
    tokens: float
    updated: float
    failures: deque[float] = field(default_factory=deque)


class SourceGuard:
    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self.banned: dict[str, float] = {}  # address -> until
        self.trusted: set[str] = set()  # trunk addresses (exact)
        self.registered: dict[str, int] = {}  # address -> registrations from it
        self._sources: dict[str, _Source] = {}
        self.dropped = 0
        self.bans = 0
        self._trusted_failures: dict[str, deque[float]] = {}
        self.auth_blocked_until: dict[str, float] = {}
        self._total_tokens = self.config.unknown_total_burst
        self._total_updated = 0.0

    def admit(self, host: str, data: bytes, now: float) -> bool:
        """Whether to parse and process this datagram at all."""
        if host in self.trusted:  # even if banned before it became a trunk
            return True
        until = self.banned.get(host)
        if until is not None:
            if until > now:
                self.dropped += 1
                return False
            del self.banned[host]
        if host in self.registered:
            return True
        if _scanner(data[:2048].lower()):
            self.dropped += 1
            return False
        src = self._sources.get(host)
        cfg = self.config
        if src is None:
            src = self._track(host, now)
        else:
            src.tokens = min(cfg.unknown_burst, src.tokens + (now - src.updated) * cfg.unknown_rate)
            src.updated = now
        if src.tokens < 1.0:
            self.dropped += 1
            return False
        total = min(cfg.unknown_total_burst,
                    self._total_tokens + (now - self._total_updated) * cfg.unknown_total_rate)
        self._total_updated = now
        if total < 1.0:
            self._total_tokens = total
            self.dropped += 1
            return False
        self._total_tokens = total - 1.0
        src.tokens -= 1.0
        return True

    def auth_failed(self, host: str, now: float) -> bool:
        """Count a failed authentication; True when the address is now banned. A trunk's
        address is never banned (its calls must go on) but may not log in for as long."""
        cfg = self.config
        if host in self.trusted:
            failures = self._trusted_failures.setdefault(host, deque())
            failures.append(now)
            while failures and failures[0] <= now - cfg.failure_window:
                failures.popleft()
            if len(failures) >= cfg.max_failures:
                self.auth_blocked_until[host] = now + cfg.ban_seconds
                failures.clear()
                return True
            return False
        src = self._sources.get(host)
        if src is None:
            src = self._track(host, now)
        failures = src.failures
        failures.append(now)
        while failures and failures[0] <= now - cfg.failure_window:
            failures.popleft()
        if len(failures) >= cfg.max_failures:
            self.ban(host, now)
            return True
        return False

    def may_authenticate(self, host: str, now: float) -> bool:
        """False while an address (a trunk's) is barred from logging in after failures."""
        until = self.auth_blocked_until.get(host)
        if until is None:
            return True
        if until <= now:
            del self.auth_blocked_until[host]
            return True
        return False

    def auth_succeeded(self, host: str) -> None:
        src = self._sources.get(host)
        if src is not None:
            src.failures.clear()

    def ban(self, host: str, now: float) -> None:
        if host in self.trusted:
            return  # a misconfigured trunk must not cut off a carrier; it shows in the log
        self.banned[host] = now + self.config.ban_seconds
        self.bans += 1
        self._sources.pop(host, None)

    def is_banned(self, host: str, now: float) -> bool:
        until = self.banned.get(host)
        return until is not None and until > now

    def retry_after(self, host: str, now: float) -> int:
        until = self.banned.get(host, now)
        return max(0, int(until - now + 0.999))

    def phone_registered(self, host: str) -> None:
        self.registered[host] = self.registered.get(host, 0) + 1

    def phone_unregistered(self, host: str) -> None:
        n = self.registered.get(host, 0) - 1
        if n > 0:
            self.registered[host] = n
        else:
            self.registered.pop(host, None)

    def _track(self, host: str, now: float) -> _Source:
        if len(self._sources) >= self.config.max_tracked:
            self._prune(now)
        src = self._sources[host] = _Source(self.config.unknown_burst, now)
        return src

    def _prune(self, now: float) -> None:
        """Make room for a quarter of ``max_tracked`` at least, so that a flood costs O(1) per
        address; the addresses with recent failed logins are the last forgotten (a spoofed
        flood must not wipe the count of a password guesser)."""
        cfg = self.config
        sources = self._sources
        full = cfg.unknown_burst / cfg.unknown_rate
        window_start = now - cfg.failure_window
        stale = [
            h for h, s in sources.items()
            if now - s.updated >= full and (not s.failures or s.failures[-1] <= window_start)
        ]
        for h in stale:  # forgetting them changes nothing: their bucket is full again
            del sources[h]
        room = cfg.max_tracked * 3 // 4
        if len(sources) <= room:
            return
        # a flood of new addresses: forget the longest-known ones (they start afresh if back)
        excess = len(sources) - room
        drop = [h for h, s in sources.items() if not s.failures][:excess]
        if len(drop) < excess:
            drop += [h for h, s in sources.items() if s.failures][: excess - len(drop)]
        for h in drop:
            del sources[h]


def _scanner(head: bytes) -> bool:
    """Whether a lower-cased message head names a scanner in its User-Agent (only there: a
    caller called "Siwar" or a domain with "smap" in it is not a scanner)."""
    start = 0
    while True:
        i = head.find(b"\nuser-agent", start)
        if i < 0:
            return False
        end = head.find(b"\n", i + 1)
        value = head[i + 11 : end if end >= 0 else len(head)]
        if any(s in value for s in SCANNER_AGENTS):
            return True
        start = i + 1
