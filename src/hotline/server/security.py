"""Passwords, bearer tokens, API keys and log-in throttling.

Passwords are hashed with Argon2id; tokens and API keys are random secrets stored only as
SHA-256 digests, so a copy of the database gives no way in. Nothing here logs a secret.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("admin", "supervisor", "qa", "planner", "agent")
PLATFORM = "platform"  # the tenant whose admins manage all tenants
TOKEN_TTL = 12 * 3600.0  # one working shift and then some

# Argon2id at OWASP's recommended cost (19 MiB, 2 passes): a shift's log-in burst must not
# take the server's memory, and at most one hash per core runs at a time.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_hashing = threading.BoundedSemaphore(os.cpu_count() or 1)
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; for an unknown user (no hash) a dummy verification keeps the timing
    of both cases alike."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password("not a password")
    with _hashing:
        try:
            return _hasher.verify(password_hash or _dummy_hash, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, their tenant and role, and what they may see."""

    user_id: int
    username: str
    tenant_id: int
    tenant_slug: str
    role: str
    agent: str | None = None  # the agent code linked to this user
    teams: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()

    @property
    def platform_admin(self) -> bool:
        return self.role == "admin" and self.tenant_slug == PLATFORM


@dataclass
class LoginThrottle:
    """Failed log-ins allowed in ``window`` seconds: ``limit`` per account, and a higher
    ``address_limit`` per source address (a whole call floor may share one NAT address)."""

    limit: int = 5
    address_limit: int = 50
    window: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, account: str, address: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key, limit in ((account, self.limit), (address, self.address_limit)):
            q = self._failures.get(key)
            if not q:
                continue
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= limit:
                wait = max(wait, q[-limit] + self.window - now)
        return wait

    def failed(self, account: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (account, address):
            self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            cutoff = now - self.window
            self._failures = {k: q for k, q in self._failures.items() if q and q[-1] > cutoff}

    def succeeded(self, account: str) -> None:
        self._failures.pop(account, None)
