"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

The server keeps no passwords, only HA1 = H(username:realm:password) per algorithm: a leaked
user table reveals no passwords (though HA1 still logs in to this realm, so guard it). Nonces
carry their issue time and an HMAC over it, so any process holding the secret can check them
without shared state. A correct response with an expired or unrecognised nonce yields
``stale`` (the phone retries silently instead of prompting for a password); a wrong response
is always ``bad``. Stateless nonces cannot stop a replay within their lifetime: keep the
lifetime short, or track nonce counts above this layer if that matters.

Supported: MD5 and SHA-256 with qop=auth. ``-sess`` algorithms and qop=auth-int are never
offered and answers using them are ``malformed``. Answers without qop (RFC 2069 style) are
refused unless the server is built with ``allow_rfc2069=True``, and then only for MD5.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALGORITHMS",
    "DigestError",
    "DigestServer",
    "Outcome",
    "Verdict",
    "answer",
    "ha1",
    "parse_header",
    "pick_challenge",
]

ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")
"""Supported algorithms, strongest first: the order challenges are sent in (RFC 8760 §2.4)."""

_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256"}
_HEX_LENGTHS = {"MD5": 32, "SHA-256": 64}
_TOKEN_EXTRA = frozenset("!#$%&'*+-.^_`|~")
_WHITESPACE = frozenset(" \t\r\n")  # \r\n: a folded header line that reached us unfolded
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{64}")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")
_STAMP_BYTES = 8
_SALT_BYTES = 8
_MAC_BYTES = 32

Outcome = Literal["ok", "stale", "bad", "malformed", "unknown_user"]


class DigestError(ValueError):
    """A header that cannot be used as a Digest challenge or credential."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :meth:`DigestServer.verify` concluded.

    ``ok``: accept the request, after checking ``uri`` against the Request-URI.
    ``stale``: re-challenge with ``stale=True``. ``bad`` / ``unknown_user``: re-challenge (or
    refuse after too many attempts). ``malformed``: the header is unusable (400).
    ``reason`` is for logs, never for the peer.
    """

    outcome: Outcome
    username: str | None = None
    uri: str | None = None
    algorithm: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _canonical_algorithm(name: str) -> str | None:
    upper = name.upper()
    return upper if upper in _HASHLIB_NAMES else None


def _hash(algorithm: str, text: str) -> str:
    return hashlib.new(_HASHLIB_NAMES[algorithm], text.encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """HA1 (hex) to store instead of the password; one per algorithm the server offers."""
    canonical = _canonical_algorithm(algorithm)
    if canonical is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return _hash(canonical, f"{username}:{realm}:{password}")


def _response(
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    nc: str | None,
    cnonce: str | None,
) -> str:
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if nc is None or cnonce is None:
        return _hash(algorithm, f"{ha1_hex}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def _is_tchar(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in _TOKEN_EXTRA)


def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Scheme name=token, name="quoted"`` into the scheme and its parameters.

    Parameter names are lower-cased (they are case-insensitive); values are unquoted and
    unescaped but otherwise verbatim. Raises :class:`DigestError` on anything else, including
    a repeated parameter (RFC 7235 §2.1) and text that is not encodable as UTF-8.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DigestError("header is not valid text") from None
    n = len(value)
    i = 0
    while i < n and value[i] in _WHITESPACE:
        i += 1
    start = i
    while i < n and _is_tchar(value[i]):
        i += 1
    scheme = value[start:i]
    if not scheme:
        raise DigestError("missing authentication scheme")
    if i < n and value[i] not in _WHITESPACE:
        raise DigestError(f"unexpected {value[i]!r} after the scheme")
    params: dict[str, str] = {}
    while True:
        while i < n and (value[i] in _WHITESPACE or value[i] == ","):
            i += 1
        if i >= n:
            return scheme, params
        start = i
        while i < n and _is_tchar(value[i]):
            i += 1
        name = value[start:i].lower()
        if not name:
            raise DigestError(f"expected a parameter name at offset {i}")
        while i < n and value[i] in _WHITESPACE:
            i += 1
        if i >= n or value[i] != "=":
            raise DigestError(f"parameter {name!r} has no value")
        i += 1
        while i < n and value[i] in _WHITESPACE:
            i += 1
        if i < n and value[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise DigestError(f"unterminated quoted value for {name!r}")
                char = value[i]
                if char == "\\":
                    if i + 1 >= n:
                        raise DigestError(f"unterminated quoted value for {name!r}")
                    chars.append(value[i + 1])
                    i += 2
                elif char == '"':
                    i += 1
                    break
                else:
                    chars.append(char)
                    i += 1
            param = "".join(chars)
        else:
            start = i
            while i < n and value[i] not in _WHITESPACE and value[i] not in ',"':
                i += 1
            param = value[start:i]
            if not param:
                raise DigestError(f"parameter {name!r} has an empty value")
        if name in params:
            raise DigestError(f"parameter {name!r} given twice")
        params[name] = param
        while i < n and value[i] in _WHITESPACE:
            i += 1
        if i < n and value[i] != ",":
            raise DigestError(f"expected ',' after parameter {name!r}")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class DigestServer:
    """Issues challenges for one realm and checks the Authorization headers that answer them.

    ``secret`` signs the nonces: every process serving the realm must share it, and changing
    it invalidates outstanding nonces (phones then get a fresh challenge, not an error).
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_lifetime: float = 300.0,
        *,
        algorithms: Sequence[str] = ALGORITHMS,
        allow_rfc2069: bool = False,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if not nonce_lifetime > 0:
            raise ValueError("nonce_lifetime must be positive")
        chosen: list[str] = []
        for name in algorithms:
            canonical = _canonical_algorithm(name)
            if canonical is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
            if canonical not in chosen:
                chosen.append(canonical)
        if not chosen:
            raise ValueError("at least one digest algorithm is needed")
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.algorithms: tuple[str, ...] = tuple(chosen)
        self.allow_rfc2069 = allow_rfc2069
        self._secret = secret
        self._realm_bytes = realm.encode("utf-8")

    def _mac(self, body: bytes) -> bytes:
        # The realm is bound in so a nonce from one realm is worthless in another.
        return hmac.new(self._secret, body + self._realm_bytes, hashlib.sha256).digest()

    def _new_nonce(self, now: float) -> str:
        stamp = math.floor(now * 1000.0).to_bytes(_STAMP_BYTES, "big", signed=True)
        body = stamp + secrets.token_bytes(_SALT_BYTES)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii")

    def _nonce_issued(self, nonce: str) -> float | None:
        """Issue time of a nonce this server (or a sibling with the same secret) made."""
        if _NONCE_RE.fullmatch(nonce) is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[: _STAMP_BYTES + _SALT_BYTES], raw[_STAMP_BYTES + _SALT_BYTES :]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            return None
        return int.from_bytes(body[:_STAMP_BYTES], "big", signed=True) / 1000.0

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, one per algorithm, strongest first.

        Each is sent as its own header: RFC 8760 clients pick the first they support, older
        clients take the MD5 one.
        """
        if not math.isfinite(now):
            raise ValueError("now must be a finite number of seconds")
        nonce = self._new_nonce(now)
        tail = ", stale=true" if stale else ""
        realm = _quote(self.realm)
        return [
            f'Digest realm={realm}, nonce="{nonce}", algorithm={algorithm}, qop="auth"{tail}'
            for algorithm in self.algorithms
        ]

    def verify(
        self,
        header_value: str,
        method: str,
        ha1_lookup: Callable[[str, str], str | None],
        now: float,
    ) -> Verdict:
        """Check an Authorization value for a request with ``method``.

        ``ha1_lookup(username, algorithm)`` returns the stored HA1 (hex) or None. Never raises
        on bad input; the caller must still compare ``Verdict.uri`` with the Request-URI.
        """
        if not math.isfinite(now):
            raise ValueError("now must be a finite number of seconds")
        try:
            scheme, params = parse_header(header_value)
        except DigestError as exc:
            return Verdict("malformed", reason=str(exc))
        username = params.get("username")
        uri = params.get("uri")

        def verdict(outcome: Outcome, reason: str, algorithm: str | None = None) -> Verdict:
            return Verdict(outcome, username, uri, algorithm, reason)

        if scheme.lower() != "digest":
            return verdict("malformed", f"scheme {scheme!r} is not Digest")
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
        if username is None or uri is None or missing:
            return verdict("malformed", f"missing {', '.join(missing)}")
        algorithm = _canonical_algorithm(params.get("algorithm", "MD5"))
        if algorithm is None or algorithm not in self.algorithms:
            return verdict("malformed", f"algorithm {params.get('algorithm')!r} was not offered")
        response = params["response"]
        if len(response) != _HEX_LENGTHS[algorithm] or _HEX_RE.fullmatch(response) is None:
            return verdict("malformed", "response is not a digest", algorithm)
        qop = params.get("qop")
        nc: str | None = None
        cnonce: str | None = None
        if qop is not None:
            if qop.lower() != "auth":
                return verdict("malformed", f"qop {qop!r} was not offered", algorithm)
            nc = params.get("nc")
            cnonce = params.get("cnonce")
            if nc is None or _NC_RE.fullmatch(nc) is None or not cnonce:
                reason = "qop=auth needs nc (8 hex digits) and cnonce"
                return verdict("malformed", reason, algorithm)
        elif not (self.allow_rfc2069 and algorithm == "MD5"):
            return verdict("malformed", "answer without qop=auth", algorithm)
        if params["realm"] != self.realm:
            return verdict("bad", f"realm {params['realm']!r} is not ours", algorithm)
        nonce = params["nonce"]
        stored = ha1_lookup(username, algorithm)
        if stored is None:
            return verdict("unknown_user", "no credentials for this user", algorithm)
        expected = _response(algorithm, stored.lower(), nonce, method, uri, nc, cnonce)
        if not hmac.compare_digest(expected, response.lower()):
            return verdict("bad", "wrong response (password, method, uri or nonce)", algorithm)
        # The response is right, so the phone knows the password: any nonce problem is
        # "stale" (RFC 7616 §3.3), so phones recover silently after a secret rotation,
        # a restart with a new secret, or a clock step, instead of being refused.
        issued = self._nonce_issued(nonce)
        if issued is None:
            return verdict("stale", "nonce was not issued here", algorithm)
        if now - issued > self.nonce_lifetime:
            return verdict("stale", "nonce expired", algorithm)
        if issued - now > self.nonce_lifetime:
            return verdict("stale", "nonce issued in the future", algorithm)
        return verdict("ok", "", algorithm)


def _challenge_algorithm(params: dict[str, str]) -> str:
    algorithm = _canonical_algorithm(params.get("algorithm", "MD5"))
    if algorithm is None:
        raise DigestError(f"unsupported algorithm {params.get('algorithm')!r}")
    return algorithm


def _challenge_uses_qop(params: dict[str, str]) -> bool:
    if "qop" not in params:
        return False
    offered = {part.strip().lower() for part in params["qop"].split(",")}
    if "auth" not in offered:
        raise DigestError(f"qop {params['qop']!r} does not include auth")
    return True


def answer(
    challenge: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """Authorization (or Proxy-Authorization) value answering one challenge.

    Uses qop=auth when the challenge offers it and the RFC 2069 form when it offers no qop
    (older carriers). ``cnonce`` must be fresh random text per nonce; ``nc`` counts the
    requests sent with the same nonce. Raises :class:`DigestError` for a challenge it cannot
    answer (other scheme, ``-sess`` or unknown algorithm, auth-int only).
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError("nc must fit in 8 hex digits and start at 1")
    scheme, params = parse_header(challenge)
    if scheme.lower() != "digest":
        raise DigestError(f"scheme {scheme!r} is not Digest")
    if "realm" not in params or "nonce" not in params:
        raise DigestError("challenge lacks realm or nonce")
    algorithm = _challenge_algorithm(params)
    realm, nonce = params["realm"], params["nonce"]
    key = ha1(algorithm, username, realm, password)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
    ]
    if _challenge_uses_qop(params):
        count = f"{nc:08x}"
        response = _response(algorithm, key, nonce, method, uri, count, cnonce)
        parts += [f'response="{response}"', f"algorithm={algorithm}"]
        parts += [f"cnonce={_quote(cnonce)}", "qop=auth", f"nc={count}"]
    else:
        response = _response(algorithm, key, nonce, method, uri, None, None)
        parts += [f'response="{response}"', f"algorithm={algorithm}"]
    if "opaque" in params:
        parts.append(f"opaque={_quote(params['opaque'])}")
    return "Digest " + ", ".join(parts)


def pick_challenge(values: Iterable[str]) -> str | None:
    """The challenge to answer among several (one per header): the strongest algorithm we
    can use, first listed on a tie; None when none can be answered."""
    best: str | None = None
    best_rank = len(ALGORITHMS)
    for value in values:
        try:
            scheme, params = parse_header(value)
            if scheme.lower() != "digest" or "realm" not in params or "nonce" not in params:
                continue
            algorithm = _challenge_algorithm(params)
            _challenge_uses_qop(params)
        except DigestError:
            continue
        rank = ALGORITHMS.index(algorithm)
        if rank < best_rank:
            best, best_rank = value, rank
    return best
