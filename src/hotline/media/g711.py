"""G.711 µ-law (PCMU) and A-law (PCMA), as lookup tables built once at import.

Per packet the work is a table lookup: ``decode`` indexes a 256-entry table, ``encode`` a
65,536-entry table indexed by the int16 sample's bit pattern, and A-law ⇄ µ-law transcoding is
``payload.translate(table)``, which never leaves C.

The tables follow the segment algorithms of ITU-T G.711 on 16-bit linear samples: µ-law adds
a bias of 132 to the magnitude and codes (segment, 4-bit mantissa), decoding to the middle of
the step; A-law codes the 13 most significant bits with a linear first segment. Both invert
their code words as G.711 transmits them (µ-law: all bits; A-law: even bits, XOR 0x55).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PAYLOAD_TYPES: dict[str, int] = {"PCMU": 0, "PCMA": 8}
SILENCE: dict[str, int] = {"PCMU": 0xFF, "PCMA": 0xD5}

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635  # largest magnitude whose biased value still fits in 15 bits


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 7
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a >> 4) & 7
    mantissa = a & 0x0F
    # Segment 0 and 1 share a step of 16; each later segment doubles it.
    magnitude = np.where(
        segment == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _segment(value: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Segment of a (biased) magnitude: 0 below 256, one more per doubling, at most 7."""
    seg = np.zeros(value.shape, dtype=np.int32)
    for s in range(1, 8):
        seg += value >= (1 << (7 + s))
    return seg


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, in the order of its uint16 bit pattern (the encoder tables' index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_int16()
    sign = np.where(x < 0, 0x80, 0)
    biased = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    seg = _segment(biased)
    mantissa = (biased >> (seg + 3)) & 0x0F
    return (~(sign | (seg << 4) | mantissa) & 0xFF).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    x = _all_int16()
    sign = np.where(x >= 0, 0x80, 0)
    # One's complement for negatives: -1..-16 share the smallest negative code, and -32768
    # needs no clipping.
    magnitude = np.where(x >= 0, x, ~x)
    seg = _segment(magnitude)
    mantissa = (magnitude >> np.maximum(seg + 3, 4)) & 0x0F
    return ((sign | (seg << 4) | mantissa) ^ 0x55).astype(np.uint8)


ULAW_TO_LINEAR: npt.NDArray[np.int16] = _ulaw_decode_table()
ALAW_TO_LINEAR: npt.NDArray[np.int16] = _alaw_decode_table()
LINEAR_TO_ULAW: npt.NDArray[np.uint8] = _ulaw_encode_table()
LINEAR_TO_ALAW: npt.NDArray[np.uint8] = _alaw_encode_table()
for _table in (ULAW_TO_LINEAR, ALAW_TO_LINEAR, LINEAR_TO_ULAW, LINEAR_TO_ALAW):
    _table.flags.writeable = False

ULAW_TO_ALAW: bytes = LINEAR_TO_ALAW[ULAW_TO_LINEAR.view(np.uint16)].tobytes()
ALAW_TO_ULAW: bytes = LINEAR_TO_ULAW[ALAW_TO_LINEAR.view(np.uint16)].tobytes()

_DECODE = {"PCMU": ULAW_TO_LINEAR, "PCMA": ALAW_TO_LINEAR}
_ENCODE = {"PCMU": LINEAR_TO_ULAW, "PCMA": LINEAR_TO_ALAW}
_TRANSCODE = {("PCMU", "PCMA"): ULAW_TO_ALAW, ("PCMA", "PCMU"): ALAW_TO_ULAW}


def _unknown(codec: str) -> ValueError:
    return ValueError(f"unknown G.711 codec {codec!r} (expected 'PCMU' or 'PCMA')")


def decode(codec: str, payload: bytes) -> npt.NDArray[np.int16]:
    """Payload bytes to a new int16 array (one sample per byte)."""
    table = _DECODE.get(codec)
    if table is None:
        raise _unknown(codec)
    result: npt.NDArray[np.int16] = table[np.frombuffer(payload, dtype=np.uint8)]
    return result


def encode(codec: str, pcm: npt.ArrayLike) -> bytes:
    """int16 samples to payload bytes; other dtypes are rounded and clipped to int16 first."""
    table = _ENCODE.get(codec)
    if table is None:
        raise _unknown(codec)
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        samples = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
    return table[samples.view(np.uint16)].tobytes()


def transcode(src: str, dst: str, payload: bytes) -> bytes:
    """Re-code a payload between PCMU and PCMA (identity when they match)."""
    for codec in (src, dst):
        if codec not in _DECODE:
            raise _unknown(codec)
    return payload if src == dst else payload.translate(_TRANSCODE[src, dst])
