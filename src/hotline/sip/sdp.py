"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for Hotline's G.711 audio calls.

Parsing is liberal because phones are: LF or CRLF, trailing blanks, unknown lines and
attributes, lines slightly out of order. Everything not modelled is kept, so an SDP that is
parsed and serialised again loses nothing. Output is strict: CRLF and RFC 4566 line order.

Negotiation only ever agrees on one G.711 codec (plus telephone-event for DTMF) over plain
RTP; anything else is an :class:`SdpError`, which the caller turns into 488.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "SUPPORTED_CODECS",
    "MediaDescription",
    "Negotiated",
    "SdpError",
    "SessionDescription",
    "answer",
    "negotiated_from_answer",
    "offer",
    "parse",
    "serialise",
]

SUPPORTED_CODECS: tuple[str, ...] = ("PCMU", "PCMA")
_STATIC_PAYLOADS = {"PCMU": 0, "PCMA": 8}
_RTP_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §8.4: 0.0.0.0 means "send nothing to me"; some stacks use :: the same way.
_NULL_ADDRESSES = frozenset({"0.0.0.0", "::"})
_DEFAULT_PTIME = 20
_DTMF_EVENTS = "0-15"  # digits 0-9, *, #, A-D: all an IVR or queue menu listens for

# RFC 3551 table 4: audio payload types usable without an a=rtpmap line.
_STATIC_AUDIO: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

# RFC 4566 §5 order. Equal ranks keep their received order (t= with its r= lines); unknown
# line types go just before the attributes.
_SESSION_RANK = {"i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8, "t": 9, "r": 9, "z": 10, "k": 11}
_SESSION_UNKNOWN_RANK = 12
_MEDIA_RANK = {"i": 1, "c": 2, "b": 3, "k": 4}
_MEDIA_UNKNOWN_RANK = 5

_FIELD_SPLIT = re.compile(r"[ \t]+")
_PT_RE = re.compile(r"[0-9]{1,3}")
_PTIME_RE = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_CLOCK_RE = re.compile(r"[0-9]{1,9}")
_CHANNELS_RE = re.compile(r"[0-9]{1,3}")

Attribute = tuple[str, str | None]


class SdpError(ValueError):
    """SDP that cannot be parsed, or an offer/answer that cannot be agreed (→ 488)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _directions(direction: str) -> tuple[bool, bool]:
    """(sends, receives) for a direction attribute, from the point of view of its author."""
    return direction in ("sendrecv", "sendonly"), direction in ("sendrecv", "recvonly")


def _direction(sends: bool, receives: bool) -> str:
    if sends:
        return "sendrecv" if receives else "sendonly"
    return "recvonly" if receives else "inactive"


def _payload_type(text: str) -> int | None:
    if _PT_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= 127 else None


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section. ``connection`` is the address of its ``c=`` line, if it has one."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    port_count: int | None = None
    connection_type: str | None = None
    """Address type as received (``IP4``/``IP6``); None: inferred from the address."""
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    """Lines not modelled above (``i=``, ``b=``, ``k=``, unknown types), as (type, value)."""

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name:value`` (case-insensitive name); None if absent or a flag."""
        wanted = name.lower()
        for key, value in self.attributes:
            if key.lower() == wanted:
                return value
        return None

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """Payload type → (encoding, clock rate, channels) for the listed formats, in the
        offerer's preference order; static audio types count even without ``a=rtpmap``.
        Unparseable rtpmap lines are ignored rather than failing the call."""
        explicit: dict[int, tuple[str, int, int]] = {}
        for key, value in self.attributes:
            if key.lower() != "rtpmap" or value is None:
                continue
            pt_text, _, spec = value.strip(" \t").partition(" ")
            pt = _payload_type(pt_text)
            parts = spec.strip(" \t").split("/")
            if pt is None or len(parts) not in (2, 3) or not parts[0]:
                continue
            if _CLOCK_RE.fullmatch(parts[1]) is None:
                continue
            channels = 1
            if len(parts) == 3:
                if _CHANNELS_RE.fullmatch(parts[2]) is None:
                    continue
                channels = int(parts[2])
            explicit.setdefault(pt, (parts[0], int(parts[1]), channels))
        result: dict[int, tuple[str, int, int]] = {}
        for fmt in self.formats:
            pt = _payload_type(fmt)
            if pt is None or pt in result:
                continue
            if pt in explicit:
                result[pt] = explicit[pt]
            elif self.media.lower() == "audio" and pt in _STATIC_AUDIO:
                result[pt] = _STATIC_AUDIO[pt]
        return result

    def fmtp(self) -> dict[int, str]:
        """Payload type → format parameters (the text after the payload type)."""
        result: dict[int, str] = {}
        for key, value in self.attributes:
            if key.lower() != "fmtp" or value is None:
                continue
            pt_text, _, params = value.strip(" \t").partition(" ")
            pt = _payload_type(pt_text)
            if pt is not None and pt not in result:
                result[pt] = params.strip(" \t")
        return result

    def direction(self, session: SessionDescription | None = None) -> str:
        """sendrecv/sendonly/recvonly/inactive: this section's own attribute, else the
        session-level one, else sendrecv (RFC 3264 §5.1)."""
        for key, _ in self.attributes:
            if key in _DIRECTIONS:
                return key
        if session is not None:
            for key, _ in session.attributes:
                if key in _DIRECTIONS:
                    return key
        return "sendrecv"

    @property
    def ptime(self) -> int | None:
        """Packetisation interval in ms from ``a=ptime`` (decimals rounded), if usable."""
        value = self.attribute("ptime")
        if value is None or _PTIME_RE.fullmatch(value.strip(" \t")) is None:
            return None
        milliseconds = round(float(value))
        return milliseconds if milliseconds > 0 else None


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. ``connection`` is the session-level ``c=`` address, if any."""

    origin_user: str
    session_id: int
    session_version: int
    origin_address: str
    session_name: str = "-"
    connection: str | None = None
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    origin_address_type: str | None = None
    """Address type of ``o=`` as received; None: inferred from the address."""
    connection_type: str | None = None
    """Address type of the session ``c=`` as received; None: inferred from the address."""
    other_lines: list[tuple[str, str]] = field(default_factory=lambda: [("t", "0 0")])
    """Session lines not modelled above (``t=``, ``b=``, ``i=``, unknown types...)."""


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the media layer needs once offer and answer agree.

    ``direction`` is Hotline's own: ``recvonly`` or ``inactive`` mean the peer has put the
    call on hold (or gave 0.0.0.0), so no RTP may be sent to it.
    """

    codec: str
    payload_type: int
    dtmf_payload_type: int | None
    remote_address: str
    remote_port: int
    direction: str
    ptime: int

    @property
    def sends(self) -> bool:
        return _directions(self.direction)[0]

    @property
    def receives(self) -> bool:
        return _directions(self.direction)[1]


def _error(number: int, line: str, problem: str) -> SdpError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return SdpError(f"SDP line {number} ({shown!r}): {problem}", number)


def _fields(value: str) -> list[str]:
    stripped = value.strip(" \t")
    return _FIELD_SPLIT.split(stripped) if stripped else []


def _number(text: str, number: int, line: str, what: str, digits: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > digits:
        raise _error(number, line, f"{what} {text!r} is not a number")
    return int(text)


def _parse_connection(value: str, number: int, line: str) -> tuple[str, str]:
    parts = _fields(value)
    if len(parts) != 3:
        raise _error(number, line, "c= needs <nettype> <addrtype> <address>")
    if parts[0].upper() != "IN":
        raise _error(number, line, f"network type {parts[0]!r} is not IN")
    return parts[2], parts[1]


def _parse_media(value: str, number: int, line: str) -> MediaDescription:
    parts = _fields(value)
    if len(parts) < 3:
        raise _error(number, line, "m= needs <media> <port> <proto> <formats>")
    port_text, slash, count_text = parts[1].partition("/")
    port = _number(port_text, number, line, "port", 5)
    if port > 65535:
        raise _error(number, line, f"port {port} is out of range")
    count: int | None = None
    if slash:
        count = _number(count_text, number, line, "port count", 5)
        if count < 1:
            raise _error(number, line, "port count must be at least 1")
    return MediaDescription(parts[0], port, parts[2], parts[3:], port_count=count)


def _attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    return (name, rest) if colon else (name, None)


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        # surrogateescape: a Latin-1 session name survives a round trip byte for byte.
        return text.decode("utf-8", "surrogateescape")
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SdpError("SDP is not valid text") from None
    return text


def parse(text: str | bytes) -> SessionDescription:
    """Parse an SDP body. Raises :class:`SdpError` naming the offending line."""
    lines: list[tuple[int, str, str, str]] = []
    for number, raw in enumerate(_decode(text).split("\n"), start=1):
        line = raw.rstrip(" \t\r")
        if not line:
            continue
        kind = line[0]
        if len(line) < 2 or line[1] != "=" or not (kind.isascii() and kind.isalpha()):
            raise _error(number, line, "expected <type>=<value>")
        if "\r" in line or "\x00" in line:
            raise _error(number, line, "control character inside the line")
        lines.append((number, line, kind, line[2:]))
    if not lines or lines[0][2] != "v":
        number = lines[0][0] if lines else 1
        raise SdpError(f"SDP line {number}: missing v= line (it must come first)", number)
    number, line, _, value = lines[0]
    if value.strip(" \t") != "0":
        raise _error(number, line, "only SDP version 0 is known")

    origin: tuple[str, int, int, str, str] | None = None
    session_name: str | None = None
    connection: tuple[str, str] | None = None
    attributes: list[Attribute] = []
    other: list[tuple[str, str]] = []
    media: list[MediaDescription] = []
    current: MediaDescription | None = None
    for number, line, kind, value in lines[1:]:
        if kind == "m":
            current = _parse_media(value, number, line)
            media.append(current)
        elif kind == "v":
            raise _error(number, line, "a second v= line")
        elif current is not None:
            if kind == "a":
                current.attributes.append(_attribute(value))
            elif kind == "c" and current.connection is None:
                current.connection, current.connection_type = _parse_connection(value, number, line)
            else:
                current.other_lines.append((kind, value))
        elif kind == "o":
            if origin is not None:
                raise _error(number, line, "a second o= line")
            parts = _fields(value)
            if len(parts) < 6:
                raise _error(
                    number,
                    line,
                    "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>",
                )
            if parts[-3].upper() != "IN":
                raise _error(number, line, f"network type {parts[-3]!r} is not IN")
            origin = (
                " ".join(parts[:-5]),
                _number(parts[-5], number, line, "session id", 64),
                _number(parts[-4], number, line, "session version", 64),
                parts[-1],
                parts[-2],
            )
        elif kind == "s":
            if session_name is not None:
                raise _error(number, line, "a second s= line")
            session_name = value.strip(" \t")
        elif kind == "a":
            attributes.append(_attribute(value))
        elif kind == "c" and connection is None:
            connection = _parse_connection(value, number, line)
        else:
            other.append((kind, value))
    if origin is None:
        raise SdpError("SDP has no o= line")
    if not any(kind == "t" for kind, _ in other):
        other.append(("t", "0 0"))
    other.sort(key=lambda item: _SESSION_RANK.get(item[0], _SESSION_UNKNOWN_RANK))
    for section in media:
        section.other_lines.sort(key=lambda item: _MEDIA_RANK.get(item[0], _MEDIA_UNKNOWN_RANK))
    return SessionDescription(
        origin_user=origin[0],
        session_id=origin[1],
        session_version=origin[2],
        origin_address=origin[3],
        session_name="-" if session_name is None else session_name,
        connection=None if connection is None else connection[0],
        media=media,
        attributes=attributes,
        origin_address_type=origin[4],
        connection_type=None if connection is None else connection[1],
        other_lines=other,
    )


def _checked(kind: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise SdpError(f"{kind}= value {value!r} contains a line break or NUL")
    return f"{kind}={value}"


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return _checked("a", name if value is None else f"{name}:{value}")


def _connection_line(address: str, address_type: str | None) -> str:
    return _checked("c", f"IN {address_type or _address_type(address)} {address}")


def serialise(sdp: SessionDescription) -> bytes:
    """The SDP body: CRLF line ends, RFC 4566 line order (``t=0 0`` if no time is given)."""
    origin_type = sdp.origin_address_type or _address_type(sdp.origin_address)
    head = [
        "v=0",
        _checked(
            "o",
            f"{sdp.origin_user or '-'} {sdp.session_id} {sdp.session_version} IN "
            f"{origin_type} {sdp.origin_address}",
        ),
        # RFC 4566 §5.3: "s= " when there is no meaningful name; never an empty s=.
        _checked("s", sdp.session_name or " "),
    ]
    ranked: list[tuple[int, str]] = []
    if sdp.connection is not None:
        ranked.append((_SESSION_RANK["c"], _connection_line(sdp.connection, sdp.connection_type)))
    ranked += [
        (_SESSION_RANK.get(kind, _SESSION_UNKNOWN_RANK), _checked(kind, value))
        for kind, value in sdp.other_lines
    ]
    if not any(kind == "t" for kind, _ in sdp.other_lines):
        ranked.append((_SESSION_RANK["t"], "t=0 0"))
    ranked.sort(key=lambda item: item[0])  # stable: the modelled c= stays first of its rank
    out = head + [text for _, text in ranked]
    out += [_attribute_line(attribute) for attribute in sdp.attributes]
    for section in sdp.media:
        port = f"{section.port}" + (f"/{section.port_count}" if section.port_count else "")
        out.append(_checked("m", " ".join([section.media, port, section.proto, *section.formats])))
        lines: list[tuple[int, str]] = [
            (_MEDIA_RANK.get(kind, _MEDIA_UNKNOWN_RANK), _checked(kind, value))
            for kind, value in section.other_lines
        ]
        if section.connection is not None:
            connection = _connection_line(section.connection, section.connection_type)
            lines.insert(0, (_MEDIA_RANK["c"], connection))
        lines.sort(key=lambda item: item[0])
        out += [text for _, text in lines]
        out += [_attribute_line(attribute) for attribute in section.attributes]
    return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")


def _codec_names(codecs: Sequence[str]) -> tuple[str, ...]:
    names: list[str] = []
    for codec in codecs:
        name = codec.upper()
        if name not in SUPPORTED_CODECS:
            raise ValueError(f"unsupported codec {codec!r} (Hotline speaks PCMU and PCMA)")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("at least one codec is needed")
    return tuple(names)


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"RTP port {port} is out of range")


def _g711_formats(section: MediaDescription) -> list[tuple[int, str]]:
    """(payload type, codec) of every G.711 format in a section, in its author's order."""
    result: list[tuple[int, str]] = []
    for pt, (encoding, clock, channels) in section.rtpmap().items():
        name = encoding.upper()
        if name in SUPPORTED_CODECS and clock == 8000 and channels == 1:
            result.append((pt, name))
    return result


def _pick_codec(section: MediaDescription, codecs: Sequence[str]) -> tuple[int, str] | None:
    """First format of ``section`` (its author's preference) that is one of ``codecs``."""
    return next((item for item in _g711_formats(section) if item[1] in codecs), None)


def _telephone_event(section: MediaDescription) -> int | None:
    for pt, (encoding, clock, _) in section.rtpmap().items():
        if encoding.lower() == "telephone-event" and clock == 8000:
            return pt
    return None


def _is_rtp_audio(section: MediaDescription) -> bool:
    return (
        section.media.lower() == "audio"
        and section.port != 0
        and section.proto.upper() in _RTP_PROTOS
    )


def _audio_section(
    port: int,
    proto: str,
    codecs: Sequence[tuple[int, str]],
    dtmf_payload_type: int | None,
    direction: str,
    ptime: int | None,
) -> MediaDescription:
    formats = [str(pt) for pt, _ in codecs]
    attributes: list[Attribute] = [("rtpmap", f"{pt} {name}/8000") for pt, name in codecs]
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
        attributes.append(("rtpmap", f"{dtmf_payload_type} telephone-event/8000"))
        attributes.append(("fmtp", f"{dtmf_payload_type} {_DTMF_EVENTS}"))
    if ptime is not None:
        attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    return MediaDescription("audio", port, proto, formats, attributes=attributes)


def _connection_of(section: MediaDescription, sdp: SessionDescription, role: str) -> str:
    address = section.connection or sdp.connection
    if address is None:
        raise SdpError(f"the {role} has no c= line for its audio stream")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # RFC 4566 allows a host name; resolving it would block the media loop on DNS for
        # every packet, and no phone or carrier we serve needs it: refuse (488).
        raise SdpError(
            f"the {role}'s media address {address[:60]!r} is not an IP address"
        ) from None
    if ip.is_multicast:
        raise SdpError(f"the {role}'s media address {address} is multicast")
    return address


def answer(
    offer: SessionDescription,
    address: str,
    port: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    session_id: int | None = None,
    session_version: int = 1,
) -> tuple[SessionDescription, Negotiated]:
    """Answer a phone's offer (RFC 3264 §6): one audio stream with one G.711 codec.

    The codec is the offerer's most preferred one among ``codecs``; every other m= line is
    rejected with port 0. ``session_id`` defaults to a random one; a re-INVITE answer must
    reuse the dialog's id with ``session_version`` incremented. Raises :class:`SdpError` when
    nothing is acceptable (answer 488).
    """
    wanted = _codec_names(codecs)
    _check_port(port)
    chosen: tuple[int, int, str] | None = None
    for index, section in enumerate(offer.media):
        if _is_rtp_audio(section):
            pick = _pick_codec(section, wanted)
            if pick is not None:
                chosen = (index, *pick)
                break
    if chosen is None:
        if not any(_is_rtp_audio(section) for section in offer.media):
            raise SdpError("no RTP/AVP audio stream offered")
        raise SdpError(f"none of {', '.join(wanted)} offered")
    index, payload_type, codec = chosen
    stream = offer.media[index]
    remote = _connection_of(stream, offer, "offer")
    dtmf = _telephone_event(stream)
    peer_sends, peer_receives = _directions(stream.direction(offer))
    direction = _direction(peer_receives and remote not in _NULL_ADDRESSES, peer_sends)
    ptime = stream.ptime
    media: list[MediaDescription] = []
    for position, section in enumerate(offer.media):
        if position == index:
            media.append(
                _audio_section(port, section.proto, [(payload_type, codec)], dtmf, direction, ptime)
            )
        else:
            media.append(MediaDescription(section.media, 0, section.proto, list(section.formats)))
    sdp = SessionDescription(
        origin_user="-",
        session_id=secrets.randbits(62) if session_id is None else session_id,
        session_version=session_version,
        origin_address=address,
        session_name="Hotline",
        connection=address,
        media=media,
    )
    negotiated = Negotiated(
        codec=codec,
        payload_type=payload_type,
        dtmf_payload_type=dtmf,
        remote_address=remote,
        remote_port=stream.port,
        direction=direction,
        ptime=ptime or _DEFAULT_PTIME,
    )
    return sdp, negotiated


def offer(
    address: str,
    port: int,
    codecs: Sequence[str] = SUPPORTED_CODECS,
    dtmf_payload_type: int | None = 101,
    *,
    session_id: int,
    session_version: int = 1,
    direction: str = "sendrecv",
    ptime: int = _DEFAULT_PTIME,
) -> SessionDescription:
    """The offer Hotline sends when it calls out (an agent's phone, a trunk): one audio
    stream, static payload types for G.711, telephone-event for DTMF."""
    names = _codec_names(codecs)
    _check_port(port)
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}")
    if dtmf_payload_type is not None and not 96 <= dtmf_payload_type <= 127:
        raise ValueError("the telephone-event payload type must be dynamic (96-127)")
    if ptime <= 0:
        raise ValueError("ptime must be positive")
    formats = [(_STATIC_PAYLOADS[name], name) for name in names]
    section = _audio_section(port, "RTP/AVP", formats, dtmf_payload_type, direction, ptime)
    return SessionDescription(
        origin_user="-",
        session_id=session_id,
        session_version=session_version,
        origin_address=address,
        session_name="Hotline",
        connection=address,
        media=[section],
    )


def negotiated_from_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """What was agreed when a phone answers Hotline's offer: the first codec in the answer
    that we offered. Raises :class:`SdpError` if the audio stream was refused."""
    index = next((i for i, section in enumerate(offer.media) if _is_rtp_audio(section)), None)
    if index is None:
        raise SdpError("our offer has no RTP audio stream")
    ours = offer.media[index]
    if index >= len(answer.media):
        raise SdpError("the answer has fewer m= lines than the offer")
    theirs = answer.media[index]
    if theirs.port == 0:
        raise SdpError("the answer rejected the audio stream (port 0)")
    offered = [name for _, name in _g711_formats(ours)]
    pick = _pick_codec(theirs, offered)
    if pick is None:
        raise SdpError("the answer chose no codec that was offered")
    remote = _connection_of(theirs, answer, "answer")
    we_send, we_receive = _directions(ours.direction(offer))
    they_send, they_receive = _directions(theirs.direction(answer))
    direction = _direction(
        we_send and they_receive and remote not in _NULL_ADDRESSES, we_receive and they_send
    )
    dtmf = _telephone_event(theirs) if _telephone_event(ours) is not None else None
    return Negotiated(
        codec=pick[1],
        payload_type=pick[0],
        dtmf_payload_type=dtmf,
        remote_address=remote,
        remote_port=theirs.port,
        direction=direction,
        ptime=theirs.ptime or ours.ptime or _DEFAULT_PTIME,
    )
