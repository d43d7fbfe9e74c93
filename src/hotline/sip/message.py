"""SIP messages (RFC 3261 §7, §20, §25): parse bytes into requests and responses and back.

Liberal in what it reads (RFC 4475: folded lines, odd spacing, compact header names, comma-joined
values, bare LF line ends, leading keep-alive CRLFs, trailing octets after the body), strict where
a wrong guess would misroute a call: a message without the headers every SIP message carries,
with one of them twice, with an unreadable CSeq or a body shorter than its Content-Length is a
:class:`SipError`. Header values stay text until asked for; the typed readers
(:func:`parse_uri`, :func:`parse_via`, :func:`parse_name_addr`) parse on demand and raise
:class:`SipError` too. The contract for a receiver: :func:`parse`, then :func:`parse_uri` on a
request's URI, :func:`parse_via` on the top Via, :func:`parse_name_addr` on From/To/Contact when
needed; any :class:`SipError` is answered with its ``status`` (when a response can be built) or the
message is dropped. No input makes them raise anything else.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_SIZE = 65535  # one UDP datagram; over a stream, the transport enforces the same cap

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline",
}

# Compact forms (RFC 3261 §7.3.3 and later extensions) and the canonical spelling we write.
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
    "o": "Event", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires",
    "u": "Allow-Events", "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route",
        "Record-Route", "Content-Length", "Content-Type", "Content-Encoding", "Expires",
        "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Proxy-Authorization",
        "User-Agent", "Server", "Allow", "Supported", "Require", "Proxy-Require",
        "Unsupported", "Retry-After", "Accept", "Event", "Subject", "Min-Expires", "Reason",
        "Date", "Timestamp", "Session-Expires", "Min-SE", "Refer-To", "Referred-By",
        "Allow-Events", "Warning", "Organization", "Priority", "Call-Info", "Alert-Info",
        "Error-Info", "In-Reply-To", "Reply-To", "MIME-Version", "P-Asserted-Identity",
        "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity",
    )
}
# Headers whose values may be joined by commas on one line (RFC 3261 §7.3.1); others
# (From, To, Call-ID, CSeq, WWW-Authenticate...) keep commas inside one value.
_MULTI = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require",
     "proxy-require", "unsupported", "accept", "allow-events"}
)
_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = re.compile(f"[{_TOKEN_CHARS}]+")
_STATUS = re.compile(r"SIP/(\d+\.\d+) ([1-6]\d\d)(?: (.*))?", re.IGNORECASE | re.ASCII)
_VERSION = re.compile(r"SIP/\d+\.\d+", re.IGNORECASE | re.ASCII)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Raw control characters are never legal in a head; only a quoted-pair (RFC 3261 §25.1) may carry
# one, so the scan below pairs each backslash with the character it escapes.
_CTL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CTL_OR_PAIR = re.compile(r"\\[\x00-\x09\x0b\x0c\x0e-\x7f]|[\x00-\x08\x0b-\x1f\x7f]")

_LIST, _SINGLE = 1, 2
# Headers a message must carry once at most: a second From or CSeq leaves no safe guess
# (RFC 4475 §3.3.8, §3.3.9).
_SINGLES = ("From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards")
# lower-cased known name (full or compact) -> (canonical name, kind): spares the hot loop
# a regex and a canonicalisation per header.
_KNOWN: dict[str, tuple[str, int]] = {
    low: (name, _LIST if low in _MULTI else _SINGLE if name in _SINGLES else 0)
    for low, name in _CANONICAL.items()
}
_KNOWN.update({c: _KNOWN[name.lower()] for c, name in _COMPACT.items()})


class SipError(ValueError):
    """A message that cannot be processed; ``status`` is what a UAS should answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def canonical(name: str) -> str:
    low = name.lower()
    if len(low) == 1 and low in _COMPACT:
        return _COMPACT[low]
    return _CANONICAL.get(low) or "-".join(p[:1].upper() + p[1:] for p in low.split("-"))


class Headers:
    """Ordered, case-insensitive headers; one entry per value (comma lists are split)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical(n), v) for n, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical(name)
        for n, v in self._items:
            if n == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical(name)
        return [v for n, v in self._items if n == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, (canonical(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by one (kept where the first one was)."""
        key = canonical(name)
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n == key:
                if not placed:
                    out.append((key, value))
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.append((key, value))
        self._items = out

    def remove(self, name: str) -> None:
        key = canonical(name)
        self._items = [(n, v) for n, v in self._items if n != key]

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h


class _Identified:
    """What requests and responses are matched by (transactions, dialogs)."""

    __slots__ = ()
    headers: Headers

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq") or "")


@dataclass(slots=True)
class Request(_Identified):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def __bytes__(self) -> bytes:
        return _serialise(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass(slots=True)
class Response(_Identified):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def __bytes__(self) -> bytes:
        reason = self.reason or REASONS.get(self.status, "")
        return _serialise(f"{self.version} {self.status} {reason}", self.headers, self.body)


Message = Request | Response


def _serialise(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    for name, value in headers:
        if name != "Content-Length":
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and angle brackets."""
    return [v for v in _split_list(value) if v]


def _split_list(value: str) -> list[str]:
    # keeps empty elements: the parser rejects them (RFC 4475 §3.1.2.1)
    if "," not in value:
        return [value.strip(" \t")]
    return [part.strip(" \t") for part in _split_outside(value, ",", brackets=True)[0]]


def _split_outside(text: str, sep: str, *, brackets: bool) -> tuple[list[str], bool]:
    """``text`` split on ``sep`` where it stands outside quoted strings (and, with
    ``brackets``, outside <...>); also whether a quoted string was left open."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif brackets and ch == "<":
            depth += 1
        elif brackets and ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out, quoted


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _check_controls(text: str) -> None:
    for m in _CTL_OR_PAIR.finditer(text):
        if len(m.group()) == 1:
            raise SipError(f"control character {m.group()!r} in the message head")


def parse(data: bytes, *, stream: bool = False) -> Message:
    """Parse one message. Over UDP the body is the rest of the datagram, cut to Content-Length;
    over a stream (``stream=True``) Content-Length is mandatory (the framer relies on it)."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipError("message too large", 513)
    data = data.lstrip(b"\r\n")
    blank = _BLANK_LINE.search(data)
    if blank is None:
        # without the empty line we cannot tell a complete head from a truncated one
        raise SipError("no empty line after the headers" if data else "empty message")
    try:
        text = data[: blank.start()].decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("headers are not UTF-8") from None
    body = data[blank.end() :]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if _CTL.search(text) is not None:
        _check_controls(text)
    lines = text.split("\n")
    start = lines[0]  # not stripped: stray spaces make a Request-Line malformed (§3.1.2.10)
    # unfold continuation lines (RFC 3261 §7.3.1)
    raw: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not raw:
                raise SipError("continuation line before any header")
            raw[-1] += " " + line.strip(" \t")
        else:
            raw.append(line)
    items: list[tuple[str, str]] = []
    singles: dict[str, str] = {}
    has_via = False
    for line in raw:
        name, sep, value = line.partition(":")
        name = name.rstrip(" \t")
        known = _KNOWN.get(name.lower())
        if known is None:
            if not sep or _TOKEN.fullmatch(name) is None:
                raise SipError(f"malformed header line: {line[:60]!r}")
            key, kind = canonical(name), 0
        elif not sep:
            raise SipError(f"malformed header line: {line[:60]!r}")
        else:
            key, kind = known
        value = value.strip(" \t")
        if kind == _LIST:
            if "," in value:
                parts = _split_list(value)
                if "" in parts:
                    raise SipError(f"empty element in {key}: {value[:60]!r}")
                for part in parts:
                    items.append((key, part))
            else:
                items.append((key, value))
            if key == "Via":
                has_via = True
        else:
            if kind == _SINGLE:
                if key in singles:
                    raise SipError(f"more than one {key} header")
                singles[key] = value
            items.append((key, value))
    headers = Headers()
    headers._items = items
    msg: Message
    if start[:4].upper() == "SIP/":
        m = _STATUS.fullmatch(start)
        if m is None:
            raise SipError(f"malformed status line: {start[:60]!r}")
        if m.group(1) != "2.0":
            raise SipError(f"unsupported version SIP/{m.group(1)}", 505)
        msg = Response(int(m.group(2)), (m.group(3) or "").strip(" \t"), headers)
    else:
        parts = start.split(" ")
        if len(parts) != 3:
            raise SipError(f"malformed request line: {start[:60]!r}")
        method, uri, version = parts
        if _TOKEN.fullmatch(method) is None:
            raise SipError(f"malformed method: {method[:30]!r}")
        if version.upper() != SIP_VERSION:
            if _VERSION.fullmatch(version):
                raise SipError(f"unsupported version {version[:20]}", 505)
            raise SipError(f"malformed request line: {start[:60]!r}")
        if _SCHEME.match(uri) is None or uri.endswith(":"):
            raise SipError(f"malformed Request-URI: {uri[:60]!r}")
        msg = Request(method, uri, headers)
    if not has_via:
        raise SipError("missing Via header")
    for name in ("From", "To", "Call-ID", "CSeq"):
        if name not in singles:
            raise SipError(f"missing {name} header")
    if not singles["Call-ID"]:
        raise SipError("empty Call-ID")
    _, cseq_method = parse_cseq(singles["CSeq"])
    if isinstance(msg, Request) and cseq_method != msg.method:
        raise SipError("CSeq method does not match the request method")
    length_text = singles.get("Content-Length")
    if length_text is None:
        if stream:
            raise SipError("missing Content-Length on a stream transport")
        msg.body = body
    else:
        # not int() alone: it would take "+5", "1_0" and non-ASCII digits
        if not (length_text.isdigit() and length_text.isascii()):
            raise SipError(f"malformed Content-Length: {length_text[:20]!r}")
        digits = length_text.lstrip("0")
        if len(digits) > 9 or int(digits or "0") > len(body):
            raise SipError("body shorter than Content-Length")
        msg.body = body[: int(digits or "0")]
    return msg


_CSEQ = re.compile(f"(\\d+)[ \\t]+([{_TOKEN_CHARS}]+)", re.ASCII)


def parse_cseq(value: str) -> tuple[int, str]:
    m = _CSEQ.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipError(f"malformed CSeq: {value[:40]!r}")
    digits = m.group(1).lstrip("0")
    if len(digits) > 10 or int(digits or "0") >= 2**31:
        raise SipError("CSeq number out of range")
    return int(digits or "0"), m.group(2)


# ---------------------------------------------------------------------------- typed readers
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
# An unquoted value is a token or a host by the grammar; we also take other characters
# (``<urn:...>`` from sloppy phones) but not those that would need escaping once quoted.
_UNQUOTABLE = re.compile(r'[ \t"\\]')


def parse_params(text: str) -> dict[str, str | None]:
    """``;a=1;b;c="x;y"`` → {"a": "1", "b": None, "c": "x;y"}; names lower-cased.

    Quoted values lose their quotes but keep their escapes. An empty parameter (``a;;b``), a
    name that is not a token, or an unquoted value with spaces, quotes or backslashes is a
    :class:`SipError`."""
    text = text.strip(" \t")
    if text.startswith(";"):
        text = text[1:]
    return _params(text) if text else {}


def _params(text: str) -> dict[str, str | None]:
    # ``text`` follows a ";" separator, so an empty part is an extraneous separator
    params: dict[str, str | None] = {}
    for part in _split_outside_quotes(text, ";"):
        name, sep, value = part.partition("=")
        name = name.strip(" \t")
        if _TOKEN.fullmatch(name) is None:
            raise SipError(f"malformed parameter: {part[:40]!r}")
        if not sep:
            params[name.lower()] = None
            continue
        v = value.strip(" \t")
        if v[:1] == '"':
            if _QUOTED.fullmatch(v) is None:
                raise SipError(f"malformed parameter value: {v[:40]!r}")
            v = v[1:-1]
        elif not v or _UNQUOTABLE.search(v) is not None:
            raise SipError(f"malformed parameter value: {v[:40]!r}")
        params[name.lower()] = v
    return params


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    parts, still_quoted = _split_outside(text, sep, brackets=False)
    if still_quoted:
        raise SipError(f"unterminated quoted string: {text[:60]!r}")
    return parts


# A value written back unquoted: a token, or an address (IPv6 has colons, maddr brackets).
_PLAIN_VALUE = re.compile(f"[{_TOKEN_CHARS}\\[\\]:]+")


def _format_params(params: dict[str, str | None]) -> str:
    out = []
    for k, v in params.items():
        if v is None:
            out.append(f";{k}")
        elif _PLAIN_VALUE.fullmatch(v):
            out.append(f";{k}={v}")
        else:  # parsed from a quoted string (kept with its escapes), so quote it again
            out.append(f';{k}="{v}"')
    return "".join(out)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        sent_by = host if self.port is None else f"{host}:{self.port}"
        return f"SIP/2.0/{self.transport} {sent_by}" + _format_params(self.params)


_HOSTNAME = re.compile(r"[A-Za-z0-9_.\-]+")


def parse_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip(" \t")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipError(f"malformed host: {text[:60]!r}")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipError(f"malformed IPv6 reference: {text[:60]!r}") from None
        if rest and not rest.startswith(":"):
            raise SipError(f"malformed host: {text[:60]!r}")
        has_port, port_text = bool(rest), rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        if _HOSTNAME.fullmatch(host) is None:
            raise SipError(f"malformed host: {text[:60]!r}")
        has_port = bool(colon)
    port: int | None = None
    if has_port:
        if not (port_text.isdigit() and port_text.isascii() and len(port_text) <= 5):
            raise SipError(f"malformed port: {port_text[:10]!r}")
        port = int(port_text)
        if not 0 < port < 65536:
            raise SipError(f"port out of range: {port}")
    return host.lower(), port


# "SIP / 2.0 / UDP host : 5060 ;branch=..." -- SLASH and COLON allow whitespace (§3.1.1.1)
_VIA = re.compile(
    f"SIP[ \\t]*/[ \\t]*2\\.0[ \\t]*/[ \\t]*([{_TOKEN_CHARS}]+)[ \\t]+([^;]*)(?:;(.*))?",
    re.IGNORECASE | re.DOTALL,
)
_COLON_SPACES = re.compile(r"[ \t]*:[ \t]*")


def parse_via(value: str) -> Via:
    m = _VIA.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipError(f"malformed Via: {value[:60]!r}")
    sent_by = m.group(2).strip(" \t")
    if " " in sent_by or "\t" in sent_by:
        sent_by = _COLON_SPACES.sub(":", sent_by)
    host, port = parse_host_port(sent_by)
    params = _params(m.group(3)) if m.group(3) is not None else {}
    return Via(m.group(1).upper(), host, port, params)


# What RFC 3261 §25.1 lets stand unescaped in each part of a SIP URI (besides alphanumerics).
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"


@dataclass(slots=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""
    password: str | None = None

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = quote(self.user, safe=_USER_SAFE)
            if self.password is not None:
                userinfo += ":" + quote(self.password, safe=_PASSWORD_SAFE)
            userinfo += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        hostport = host if self.port is None else f"{host}:{self.port}"
        params = "".join(
            f";{quote(k, safe=_PARAM_SAFE)}"
            + ("" if v is None else "=" + quote(v, safe=_PARAM_SAFE))
            for k, v in self.params.items()
        )
        tail = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{hostport}{params}{tail}"


def unescape(text: str) -> str:
    """Decode %XX escapes as UTF-8; octets that are not UTF-8 become U+FFFD."""
    if "%" not in text:
        return text
    return unquote(text, errors="replace")


_URI_BAD = re.compile(r'[\x00-\x20\x7f<>"]')


def parse_uri(text: str) -> SipUri:
    """sip:/sips: URIs (RFC 3261 §19.1); other schemes raise 416.

    User, password and parameters come unescaped (``%6C%72`` is the ``lr`` parameter); ``str()``
    escapes them again. ``headers`` (after ``?``) stays as written."""
    text = text.strip(" \t")
    m = _SCHEME.match(text)
    if m is None:
        raise SipError(f"malformed URI: {text[:60]!r}")
    scheme = text[: m.end() - 1].lower()
    if scheme not in ("sip", "sips"):
        raise SipError(f"unsupported URI scheme {scheme[:10]!r}", 416)
    rest = text[m.end() :]
    if _URI_BAD.search(rest) is not None:
        raise SipError(f"malformed URI: {text[:60]!r}")
    user: str | None = None
    password: str | None = None
    # "@" cannot stand unescaped in a user, password, parameter or header, so the first one
    # ends the userinfo, which may itself hold "?" and ";" (RFC 4475 §3.1.1.2)
    at = rest.find("@")
    if at >= 0:
        name, psep, pw = rest[:at].partition(":")
        if not name:
            raise SipError(f"empty user in URI: {text[:60]!r}")
        user = unescape(name)
        password = unescape(pw) if psep else None
        rest = rest[at + 1 :]
    rest, _, headers = rest.partition("?")
    hostport, psep, param_text = rest.partition(";")
    host, port = parse_host_port(hostport)
    params: dict[str, str | None] = {}
    if psep:
        for part in param_text.split(";"):
            name, sep, value = part.partition("=")
            if not name or (sep and not value):
                raise SipError(f"malformed URI parameter: {part[:40]!r}")
            params[unescape(name).lower()] = unescape(value) if sep else None
    return SipUri(scheme, user, host, port, params, headers, password)


@dataclass(slots=True)
class NameAddr:
    display: str | None
    uri: str
    params: dict[str, str | None]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        name = ""
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{_format_params(self.params)}"


# An unquoted display name is tokens separated by LWS (§25.1); non-ASCII is let through
# because phones send it, but separators such as "," or ";" are not (RFC 4475 §3.1.2.15).
_DISPLAY_WORD = f"[{_TOKEN_CHARS}\\u0080-\\U0010ffff]+"
_DISPLAY_TOKENS = re.compile(f"{_DISPLAY_WORD}(?:[ \\t]+{_DISPLAY_WORD})*")
_ADDR_URI = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:[^\x00-\x20\x7f<>"]+')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def parse_name_addr(value: str) -> NameAddr:
    """From/To/Contact/Route: ``"Name" <uri>;params``, ``Name <uri>`` or a bare ``uri;params``."""
    text = value.strip(" \t")
    display: str | None = None
    enclosed: str | None = None  # from "<" on, when the URI is in angle brackets
    if text.startswith('"'):
        q = _QUOTED.match(text)
        if q is None:
            raise SipError(f"unterminated display name: {text[:60]!r}")
        display = _QUOTED_PAIR.sub(r"\1", text[1 : q.end() - 1]) or None  # "" is no name
        enclosed = text[q.end() :].lstrip(" \t")
        if not enclosed.startswith("<"):
            raise SipError(f"display name without <uri>: {text[:60]!r}")
    else:
        lt = text.find("<")
        if lt >= 0:
            name = text[:lt].rstrip(" \t")
            if name:
                if _DISPLAY_TOKENS.fullmatch(name) is None:
                    raise SipError(f"malformed display name: {name[:60]!r}")
                display = name
            enclosed = text[lt:]
    if enclosed is not None:
        gt = enclosed.find(">")
        if gt < 0:
            raise SipError(f"unterminated <uri>: {text[:60]!r}")
        uri = enclosed[1:gt]
        rest = enclosed[gt + 1 :].lstrip(" \t")
        if rest and not rest.startswith(";"):
            raise SipError(f"unexpected text after <uri>: {rest[:60]!r}")
        params = _params(rest[1:]) if rest else {}
    else:
        uri, sep, param_text = text.partition(";")
        uri = uri.rstrip(" \t")
        # an addr-spec with "?" or "," must be in <> (§20; RFC 4475 §3.1.2.13)
        if "?" in uri or "," in uri:
            raise SipError(f"URI with headers or commas outside <>: {uri[:60]!r}")
        params = _params(param_text) if sep else {}
    if _ADDR_URI.fullmatch(uri) is None:
        raise SipError(f"malformed address: {text[:60]!r}")
    return NameAddr(display, uri, params)


_TAG_PARAM = re.compile(r";[ \t]*tag[ \t]*=", re.IGNORECASE)


def response_to(request: Request, status: int, reason: str = "", *, to_tag: str | None = None,
                body: bytes = b"", content_type: str | None = None) -> Response:
    """A response carrying the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
    h = Headers()
    items = h._items
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            items.append((name, value))
        elif name == "To":
            # header parameters follow the ">" (or the whole addr-spec when there is none)
            if to_tag and _TAG_PARAM.search(value[value.rfind(">") + 1 :]) is None:
                value = f"{value};tag={to_tag}"
            items.append((name, value))
    if status == 100 and "Timestamp" in request.headers:
        items.append(("Timestamp", request.headers.get("Timestamp") or ""))
    if content_type:
        items.append(("Content-Type", content_type))
    return Response(status, reason or REASONS.get(status, ""), h, body)


_FRAME_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:((?:[^\r\n]|\r?\n[ \t])*)", re.IGNORECASE | re.MULTILINE
)


def stream_frames(buffer: bytearray) -> Iterator[bytes]:
    """Pull complete messages off a TCP byte stream (framed by Content-Length, §18.3).

    Keep-alive CRLFs between messages are skipped. A head over the size cap or without a
    readable Content-Length raises SipError: the connection must then be closed."""
    while True:
        skip = 0
        n = len(buffer)
        while skip < n and buffer[skip] in (13, 10):
            skip += 1
        if skip:
            del buffer[:skip]
        blank = _BLANK_LINE.search(buffer)  # the first one, whatever the line ends
        if blank is None:
            if len(buffer) > MAX_MESSAGE_SIZE:
                raise SipError("message too large", 513)
            return
        if blank.start() > MAX_MESSAGE_SIZE:
            raise SipError("message too large", 513)
        values = {v.strip() for v in _FRAME_LENGTH.findall(bytes(buffer[: blank.start()]))}
        if not values:
            raise SipError("missing Content-Length on a stream transport")
        if len(values) > 1:
            raise SipError("conflicting Content-Length headers")
        value = values.pop()
        if not value.isdigit():
            raise SipError(f"malformed Content-Length: {value[:20]!r}")
        digits = value.lstrip(b"0") or b"0"
        total = blank.end() + (int(digits) if len(digits) <= 9 else MAX_MESSAGE_SIZE + 1)
        if total > MAX_MESSAGE_SIZE:
            raise SipError("message too large", 513)
        if len(buffer) < total:
            return
        frame = bytes(buffer[:total])
        del buffer[:total]
        yield frame
