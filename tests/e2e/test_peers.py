"""The e2e harness proven without Hotline: baresip phones call each other directly and SIPp
calls a phone; the tone one side plays is what the other side's recording holds, at its level,
and DTMF and digest registration work as the Hotline tests will use them."""

from __future__ import annotations

import math
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .peers import (
    PhoneFactory,
    Registration,
    Sipp,
    band_energy_fraction,
    dominant_frequency,
    duration_s,
    pcmu_pcap,
    read_wav,
    rms,
    tone_wav,
)

# Each recording is analysed over WINDOW: after call set-up, before the hang-up.
WINDOW = (0.5, 2.5)
BIN_HZ = 1.0 / (WINDOW[1] - WINDOW[0])  # FFT resolution of a 2 s window: 0.5 Hz
# G.711 quantizes each sample but keeps the 8 kHz clock, so a tone comes back at its own
# frequency (on the bin for 440 and 1000 Hz); its quantization noise (~38 dB below the tone)
# cannot outgrow the peak. ±2 bins covers the Hann main lobe if a peak falls between bins.
FREQ_TOL_HZ = 2 * BIN_HZ
TONE_RMS = 0.3 / math.sqrt(2)  # the tones are 0.3 of full scale


def assert_hears(recording: Path, freq_hz: float) -> None:
    """The recording holds the tone: long enough, at its frequency, nothing else of note, and
    at its level (G.711 keeps it within a fraction of a dB; gaps would lower it)."""
    assert duration_s(recording) >= WINDOW[1], f"{recording.name}: {duration_s(recording)} s"
    peak = dominant_frequency(recording, *WINDOW)
    assert abs(peak - freq_hz) <= FREQ_TOL_HZ, f"{recording.name}: peak at {peak} Hz"
    purity = band_energy_fraction(recording, freq_hz, 10 * BIN_HZ, *WINDOW)
    assert purity >= 0.95, f"{recording.name}: {purity:.3f} of the energy at {freq_hz} Hz"
    level = rms(recording, start_s=WINDOW[0], end_s=WINDOW[1])
    assert 0.8 * TONE_RMS <= level <= 1.05 * TONE_RMS, f"{recording.name}: RMS {level:.4f}"


def test_audio_analysis_reads_each_channel_of_a_stereo_file(tmp_path: Path) -> None:
    rate = 8000
    t = np.arange(2 * rate) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1000 * t)
    frames = np.round(np.column_stack([left, right]) * 32767).astype("<i2")
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())

    assert read_wav(path)[0].shape == (2 * rate, 2)
    assert dominant_frequency(path, channel=0) == 440.0
    assert dominant_frequency(path, channel=1) == 1000.0
    assert math.isclose(rms(path, channel=0), 0.5 / math.sqrt(2), rel_tol=1e-3)
    assert math.isclose(rms(path, channel=1), 0.1 / math.sqrt(2), rel_tol=1e-3)
    assert band_energy_fraction(path, 1000, 5, channel=1) > 0.999
    assert band_energy_fraction(path, 1000, 5, channel=0) < 1e-6

    mono = tone_wav(tmp_path / "mono.wav", 1000, 1.0)
    assert (duration_s(mono), dominant_frequency(mono)) == (1.0, 1000.0)


def test_phone_calls_phone_and_each_hears_the_other(
    phones: PhoneFactory, tone: Callable[..., Path]
) -> None:
    a = phones("a", tone(440))
    b = phones("b", tone(1000))  # answers by itself

    a.dial(b.uri)
    a.wait("CALL_ESTABLISHED")
    b.wait("CALL_ESTABLISHED")
    time.sleep(3)
    a.hangup()
    b.wait("CALL_CLOSED")

    (a_heard,) = a.recordings("dec")
    (b_heard,) = b.recordings("dec")
    assert_hears(a_heard, 1000)
    assert_hears(b_heard, 440)


def test_callee_answers_by_hand_and_hears_the_callers_digits(
    phones: PhoneFactory, tone: Callable[..., Path]
) -> None:
    a = phones("a", tone(440))
    b = phones("b", tone(1000), answermode="manual")

    a.dial(b.uri)
    b.wait("CALL_INCOMING")
    a.wait("CALL_RINGING")
    time.sleep(0.5)
    assert "CALL_ESTABLISHED" not in {e["type"] for e in a.events + b.events}
    b.answer()
    a.wait("CALL_ESTABLISHED")
    b.wait("CALL_ESTABLISHED")
    a.send_dtmf("42#")
    time.sleep(1)
    assert b.dtmf_received() == "42#"
    b.hangup()
    a.wait("CALL_CLOSED")


def test_sipp_call_plays_a_tone_and_dtmf_into_a_phone(
    phones: PhoneFactory, tone: Callable[..., Path], sipp: Callable[..., Sipp], tmp_path: Path
) -> None:
    b = phones("b", tone(1000))
    pcap = pcmu_pcap(tone(440, seconds=3), tmp_path / "tone-440.pcap")

    result = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{b.sip_port}", service="b",
                  keys={"pcap": str(pcap)}, duration_ms=3000, calls=1, timeout_s=30).run()

    assert result.ok, result.summary()
    assert (result.successful_calls, result.failed_calls) == (1, 0), result.summary()
    b.wait("CALL_CLOSED")  # SIPp's BYE
    (heard,) = b.recordings("dec")
    assert_hears(heard, 440)
    assert b.dtmf_received() == "1#"  # the scenario's RFC 4733 digits


def test_agent_phone_registers_with_digest_auth(
    phones: PhoneFactory, tone: Callable[..., Path], sipp: Callable[..., Sipp]
) -> None:
    registrar = sipp("uas_registrar_digest.xml", keys={"user": "agent1", "password": "S3cret"},
                     calls=1, timeout_s=15).start()
    registrar.wait_listening()

    agent = phones("agent1", tone(1000),
                   registration=Registration(registrar.port, "S3cret"))
    agent.wait_registered()
    result = registrar.wait()

    assert result.ok, result.summary()
    assert "Authorization: Digest username=\"agent1\"" in result.messages
    # the binding the registrar gets points at the phone's own SIP port
    assert f"@127.0.0.1:{agent.sip_port}>" in result.messages
    agent.stop(timeout=0.2)  # its un-REGISTER would wait for the registrar, which is gone


def test_agent_phone_with_a_wrong_password_is_refused(
    phones: PhoneFactory, tone: Callable[..., Path], sipp: Callable[..., Sipp]
) -> None:
    registrar = sipp("uas_registrar_digest.xml", keys={"user": "agent1", "password": "S3cret"},
                     calls=1, timeout_s=15).start()
    registrar.wait_listening()

    agent = phones("agent1", tone(1000),
                   registration=Registration(registrar.port, "wrong"))
    result = registrar.wait()

    assert (result.returncode, result.failed_calls) == (1, 1), result.summary()
    assert "SIP/2.0 403 Forbidden" in result.messages
    assert not agent.registered()
