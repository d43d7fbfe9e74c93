"""Prompts and music on hold: any common WAV file in, 8 kHz mono int16 out.

Administrators upload whatever their audio tool exported — 44.1 kHz stereo, 24-bit, float,
WAVE_FORMAT_EXTENSIBLE or already G.711 — and the stdlib ``wave`` reader refuses most of
those, so the RIFF chunks are parsed here. Every problem becomes a ``PromptError`` that says
what is wrong, so an upload form can show it as it is.
"""

from __future__ import annotations

import io
import math
import os
import struct
import wave
from fractions import Fraction
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from hotline.media.g711 import ALAW_TO_LINEAR, ULAW_TO_LINEAR

RATE = 8000
_MAX_RATIO_TERM = 1000  # 44.1 kHz needs 80/441

_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_ULAW = 0x0007
_EXTENSIBLE = 0xFFFE
# Every KSDATAFORMAT_SUBTYPE_* GUID for a WAVE format tag is the tag followed by this.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

_FORMAT_NAMES = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG",
    0x0055: "MPEG Layer 3",
    0x0064: "G.726 ADPCM",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
    0x1610: "HE-AAC",
    0xF1AC: "FLAC",
}


class PromptError(ValueError):
    """The audio cannot be used as a prompt; the message says why."""


def _format_name(tag: int) -> str:
    return f"unsupported format 0x{tag:X} ({_FORMAT_NAMES.get(tag, 'unknown')})"


class _Format:
    __slots__ = ("bits", "block_align", "channels", "rate", "tag")

    def __init__(self, body: bytes) -> None:
        if len(body) < 16:
            raise PromptError("truncated fmt chunk")
        tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
        if tag == _EXTENSIBLE:
            if len(body) < 40:
                raise PromptError("truncated WAVE_FORMAT_EXTENSIBLE fmt chunk")
            guid = body[24:40]
            if guid[2:] != _GUID_TAIL:
                raise PromptError("unsupported WAVE_FORMAT_EXTENSIBLE subformat")
            tag = struct.unpack_from("<H", guid)[0]
        if tag not in (_PCM, _FLOAT, _ALAW, _ULAW):
            raise PromptError(_format_name(tag))
        if channels == 0:
            raise PromptError("fmt chunk says 0 channels")
        if not 1000 <= rate <= 768000:
            raise PromptError(f"unsupported sample rate {rate} Hz")
        width = bits // 8
        valid = {_PCM: (1, 2, 3, 4), _FLOAT: (4, 8), _ALAW: (1,), _ULAW: (1,)}[tag]
        if width not in valid or bits % 8:
            raise PromptError(f"unsupported sample size: {bits} bits for format 0x{tag:X}")
        if block_align != channels * width:
            raise PromptError(
                f"inconsistent fmt chunk: block align {block_align} for {channels} channels "
                f"of {bits} bits"
            )
        self.tag = tag
        self.channels = channels
        self.rate = rate
        self.block_align = block_align
        self.bits = bits


def _read_exact(f: BinaryIO, size: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) < size:
        raise PromptError(f"truncated {what}")
    return data


def _find_chunks(f: BinaryIO, file_size: int) -> tuple[_Format, int]:
    """The format and the size of the data chunk, with ``f`` left at its first byte."""
    header = f.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        if header[:4] == b"RF64":
            raise PromptError("not a RIFF/WAVE file (RF64 is not supported)")
        raise PromptError("not a RIFF/WAVE file")
    fmt: _Format | None = None
    position = 12
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            if fmt is None:
                raise PromptError("fmt chunk missing")
            raise PromptError("data chunk missing")
        chunk_id, size = struct.unpack("<4sI", chunk)
        position += 8
        available = file_size - position
        if chunk_id == b"fmt ":
            if fmt is not None:
                raise PromptError("more than one fmt chunk")
            if size > available:
                raise PromptError("truncated fmt chunk")
            fmt = _Format(_read_exact(f, size, "fmt chunk"))
        elif chunk_id == b"data":
            if fmt is None:
                raise PromptError("data chunk before fmt chunk")
            if size == 0xFFFFFFFF:  # written by a streaming encoder that could not seek back
                size = available
            elif size > available:
                raise PromptError(
                    f"truncated: data chunk declares {size} bytes, {available} present"
                )
            return fmt, size
        else:
            if size > available:
                raise PromptError(f"truncated {chunk_id!r} chunk")
            f.seek(size, io.SEEK_CUR)
        # Chunks are word aligned: an odd size is followed by a pad byte.
        skip = size + (size & 1)
        if size & 1:
            f.seek(1, io.SEEK_CUR)
        position += skip


def _samples(fmt: _Format, raw: bytes) -> npt.NDArray[np.float64]:
    """Interleaved samples on the int16 scale (full scale ±32768)."""
    width = fmt.bits // 8
    if fmt.tag == _ULAW:
        return ULAW_TO_LINEAR[np.frombuffer(raw, dtype=np.uint8)].astype(np.float64)
    if fmt.tag == _ALAW:
        return ALAW_TO_LINEAR[np.frombuffer(raw, dtype=np.uint8)].astype(np.float64)
    if fmt.tag == _FLOAT:
        dtype = "<f4" if width == 4 else "<f8"
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
        # NaN or infinity would poison the resampler's every output sample.
        return np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0) * 32768.0
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) * 256.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value.astype(np.float64) / 256.0
    return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536.0


def load_prompt(
    source: str | os.PathLike[str] | bytes, max_minutes: float = 30.0
) -> npt.NDArray[np.int16]:
    """The audio of a WAV file (path or contents) as 8 kHz mono int16.

    Channels are averaged; other rates are resampled by the polyphase method with the exact
    rational ratio (reduced by the gcd). ``max_minutes`` is checked from the header, before
    the audio is read.
    """
    try:
        if isinstance(source, bytes | bytearray | memoryview):
            data = bytes(source)
            return _load(io.BytesIO(data), len(data), max_minutes)
        with open(source, "rb") as f:
            return _load(f, os.fstat(f.fileno()).st_size, max_minutes)
    except PromptError:
        raise
    except OSError as exc:
        raise PromptError(f"cannot read prompt: {exc}") from exc
    except (ValueError, struct.error, MemoryError) as exc:  # defensive: report, never crash
        raise PromptError(f"unreadable audio: {exc}") from exc


def _load(f: BinaryIO, file_size: int, max_minutes: float) -> npt.NDArray[np.int16]:
    fmt, size = _find_chunks(f, file_size)
    frames = size // fmt.block_align
    if frames == 0:
        raise PromptError("empty audio")
    if frames > max_minutes * 60.0 * fmt.rate:
        raise PromptError(f"longer than {max_minutes:g} minutes")
    raw = _read_exact(f, frames * fmt.block_align, "data chunk")
    mono = _samples(fmt, raw).reshape(frames, fmt.channels).mean(axis=1)
    if fmt.rate != RATE:
        ratio = Fraction(RATE, fmt.rate)
        if max(ratio.numerator, ratio.denominator) > _MAX_RATIO_TERM:
            # An irregular rate (8001 Hz: 8000/8001) would need a filter of 20 taps per unit
            # of the larger term; the nearest simpler ratio changes the pitch by far less
            # than anyone can hear.
            ratio = ratio.limit_denominator(max(1, _MAX_RATIO_TERM // math.ceil(ratio)))
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return np.clip(np.rint(mono), -32768, 32767).astype(np.int16)


def write_wav(
    path: str | os.PathLike[str], pcm: npt.NDArray[np.int16], rate: int = RATE, channels: int = 1
) -> None:
    """Write 16-bit PCM; ``pcm`` is interleaved, or shaped (frames, channels)."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        samples = np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
    if samples.size % channels:
        raise ValueError(f"{samples.size} samples do not divide into {channels} channels")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
