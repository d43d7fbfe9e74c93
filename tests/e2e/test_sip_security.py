"""Who may register a phone: digest passwords (MD5, and SHA-256 where it is switched on), and
what a password guesser gets — 403s, then silence — while phones elsewhere keep working."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotline.sip.guard import GuardConfig

from .peers import PhoneFactory, Sipp, assert_tone, pcmu_pcap
from .server import (
    DEMO_PASSWORD,
    CallCenter,
    HotlineServer,
    agent_phone,
    fresh_loopback,
    sip_client,
)

Tone = Callable[..., Path]
GUARD = GuardConfig()  # what `hotline serve` runs with


def test_wrong_passwords_get_403_then_the_address_is_banned_and_other_phones_still_work(
    center: CallCenter, phones: PhoneFactory, tone: Tone, sipp: Callable[..., Sipp],
    tmp_path: Path,
) -> None:
    queue = center.queue()
    agent = center.agent(queue)
    banned_before = center.server.health()["sip"]["banned_addresses"]

    with sip_client(center.server, fresh_loopback()) as guesser:
        for attempt in range(1, GUARD.max_failures + 1):
            answers = guesser.register(agent.username, f"guess-{attempt}")
            assert [a.status for a in answers] == [401, 403], (attempt, [a.start for a in answers])
            assert answers[0].all("www-authenticate")[0].startswith("Digest "), answers[0].raw
        health = center.server.health()["sip"]
        assert health["banned_addresses"] == banned_before + 1, health
        dropped = health["dropped"]

        # from now on the address gets no answer at all, whatever it sends
        assert guesser.register(agent.username, agent.password, timeout=1.5) == []
        assert guesser.options(timeout=1.0) is None
        assert center.server.health()["sip"]["dropped"] >= dropped + 2

    # a phone at another address registers, and takes calls
    with sip_client(center.server, fresh_loopback()) as elsewhere:
        answers = elsewhere.register(agent.username, agent.password)
        assert [a.status for a in answers] == [401, 200], [a.start for a in answers]
        answers = elsewhere.register(agent.username, agent.password, expires=0)
        assert answers[-1].status == 200
    phone = agent_phone(center, phones, tone(1000), agent)
    pcap = pcmu_pcap(tone(440, 3.0), tmp_path / "caller.pcap")
    caller = sipp("uac_pcmu_dtmf.xml", remote=f"127.0.0.1:{center.server.sip_port}",
                  service=queue.did, keys={"pcap": str(pcap)}, duration_ms=3000,
                  timeout_s=30).run()
    assert caller.ok, caller.summary()
    phone.wait("CALL_ESTABLISHED")
    phone.wait("CALL_CLOSED")
    (heard,) = phone.recordings("dec")
    assert_tone(heard, 440, 0.5, 2.0)
    center.wait_media_released()


@pytest.fixture(scope="module")
def sha256_hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HotlineServer]:
    """A second server that challenges with SHA-256 first, then MD5 (RFC 8760)."""
    server = HotlineServer(tmp_path_factory.mktemp("hotline-sha256"),
                           sip_digest="SHA-256,MD5", rtp_ports=10).start()
    yield server
    server.stop()


def test_phone_registers_with_a_sha256_digest_and_a_wrong_one_is_refused(
    sha256_hotline: HotlineServer,
) -> None:
    username = "7001"  # the demo's phone of agent phone-1, with the demo password
    admin = sha256_hotline.login("admin")
    with sip_client(sha256_hotline, fresh_loopback()) as phone:
        answers = phone.register(username, DEMO_PASSWORD, algorithm="SHA-256")
        assert [a.status for a in answers] == [401, 200], [a.start for a in answers]
        challenges = answers[0].all("www-authenticate")
        assert ["algorithm=SHA-256" in c for c in challenges] == [True, False], challenges
        assert "algorithm=MD5" in challenges[1], challenges
        assert answers[1].all("contact") == [
            f"<sip:{username}@{phone.host}:{phone.port}>;expires=600"], answers[1].raw
        status = admin.get("/agents/phone-1/phone")
        assert status["registered"], status
        assert status["registrations"][0]["source"].startswith(f"{phone.host}:"), status

        wrong = phone.register(username, "not-the-password", algorithm="SHA-256")
        assert [a.status for a in wrong] == [401, 403], [a.start for a in wrong]
        # MD5, the second choice, is still accepted
        md5 = phone.register(username, DEMO_PASSWORD, algorithm="MD5")
        assert [a.status for a in md5] == [401, 200], [a.start for a in md5]
        gone = phone.register(username, DEMO_PASSWORD, algorithm="SHA-256", expires=0)
        assert [a.status for a in gone] == [401, 200], [a.start for a in gone]
    assert not admin.get("/agents/phone-1/phone")["registered"]
    admin.close()


def test_md5_is_the_only_challenge_by_default(hotline: HotlineServer) -> None:
    with sip_client(hotline, fresh_loopback()) as phone:
        answers = phone.register("7002", DEMO_PASSWORD)
        assert [a.status for a in answers] == [401, 200], [a.start for a in answers]
        (challenge,) = answers[0].all("www-authenticate")
        assert "algorithm=MD5" in challenge, challenge
        phone.register("7002", DEMO_PASSWORD, expires=0)
