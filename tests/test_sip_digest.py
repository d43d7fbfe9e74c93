"""SIP digest authentication: RFC vectors, phone↔server round trips, and hostile input."""

from __future__ import annotations

import base64
import random

import pytest

from hotline.sip.digest import (
    DigestError,
    DigestServer,
    Verdict,
    answer,
    ha1,
    parse_header,
    pick_challenge,
)

REALM = "hotline.example.org"
SECRET = b"0123456789abcdef-test-secret"
URI = "sip:hotline.example.org"
PASSWORDS = {"1001": "correct horse", 'agent "7"\\x': 'pa,ss"word'}

# RFC 7616 §3.9.1 (errata 4495: lower-case "of" in the password).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def store(username: str, algorithm: str) -> str | None:
    """The server's credential table: HA1 per algorithm, computed when the user was created."""
    password = PASSWORDS.get(username)
    return None if password is None else ha1(algorithm, username, REALM, password)


def challenge_for(server: DigestServer, algorithm: str, now: float) -> str:
    (value,) = [c for c in server.challenge(now) if f"algorithm={algorithm}" in c]
    return value


def login(
    server: DigestServer,
    algorithm: str,
    *,
    issued: float = 1000.0,
    at: float = 1001.0,
    username: str = "1001",
    password: str = "correct horse",
    method: str = "REGISTER",
    verify_method: str | None = None,
) -> Verdict:
    header = answer(
        challenge_for(server, algorithm, issued), method, URI, username, password, "c0ffee42"
    )
    return server.verify(header, verify_method or method, store, at)


@pytest.fixture
def server() -> DigestServer:
    return DigestServer(REALM, SECRET)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example_responses(algorithm: str, expected: str) -> None:
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    header = answer(challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", RFC7616_CNONCE)
    scheme, params = parse_header(header)
    assert scheme == "Digest"
    assert params["response"] == expected
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"
    assert params["opaque"] == RFC7616_OPAQUE
    assert params["algorithm"] == algorithm
    assert params["uri"] == "/dir/index.html"


def test_rfc2617_example_response() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = answer(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b")
    assert parse_header(header)[1]["response"] == "6629fae49393a05397450978507c4ef1"


def test_ha1_is_per_algorithm_and_case_insensitive_in_the_algorithm_name() -> None:
    md5 = ha1("MD5", "Mufasa", "http-auth@example.org", "Circle of Life")
    assert len(md5) == 32
    assert ha1("md5", "Mufasa", "http-auth@example.org", "Circle of Life") == md5
    assert len(ha1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life")) == 64
    with pytest.raises(ValueError):
        ha1("MD5-sess", "Mufasa", "http-auth@example.org", "Circle of Life")


def test_challenges_list_sha256_first_then_md5_in_separate_values(server: DigestServer) -> None:
    values = server.challenge(1000.0)
    assert len(values) == 2
    parsed = [parse_header(v) for v in values]
    assert [p["algorithm"] for _, p in parsed] == ["SHA-256", "MD5"]
    for scheme, params in parsed:
        assert scheme == "Digest"
        assert params["realm"] == REALM
        assert params["qop"] == "auth"
        assert "stale" not in params
    assert parsed[0][1]["nonce"] == parsed[1][1]["nonce"]
    assert server.challenge(1000.0)[0] != values[0], "nonces must not repeat"
    for value in server.challenge(1000.0, stale=True):
        assert parse_header(value)[1]["stale"] == "true"


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_accepts_the_right_password(server: DigestServer, algorithm: str) -> None:
    verdict = login(server, algorithm)
    assert verdict == Verdict("ok", "1001", URI, algorithm, "")
    assert verdict.ok


def test_username_and_password_with_quotes_backslashes_and_commas(server: DigestServer) -> None:
    name = 'agent "7"\\x'
    verdict = login(server, "SHA-256", username=name, password=PASSWORDS[name])
    assert verdict.outcome == "ok"
    assert verdict.username == name


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_wrong_password_is_bad(server: DigestServer, algorithm: str) -> None:
    verdict = login(server, algorithm, password="Correct horse")
    assert verdict.outcome == "bad"
    assert verdict.username == "1001"


def test_unknown_user(server: DigestServer) -> None:
    verdict = login(server, "MD5", username="9999")
    assert verdict.outcome == "unknown_user"
    assert verdict.username == "9999"


def test_response_for_register_does_not_authorise_invite(server: DigestServer) -> None:
    assert login(server, "SHA-256", method="REGISTER", verify_method="INVITE").outcome == "bad"


def test_uri_is_reported_for_the_caller_to_check(server: DigestServer) -> None:
    header = answer(
        challenge_for(server, "MD5", 1000.0),
        "INVITE",
        "sip:queue-sales@hotline.example.org",
        "1001",
        "correct horse",
        "abc",
    )
    verdict = server.verify(header, "INVITE", store, 1000.0)
    assert verdict.outcome == "ok"
    assert verdict.uri == "sip:queue-sales@hotline.example.org"


def test_expired_nonce_is_stale_only_when_the_password_is_right(server: DigestServer) -> None:
    assert login(server, "SHA-256", issued=1000.0, at=1300.0).outcome == "ok"
    assert login(server, "SHA-256", issued=1000.0, at=1300.5).outcome == "stale"
    assert login(server, "MD5", issued=1000.0, at=5000.0).outcome == "stale"
    wrong = login(server, "SHA-256", issued=1000.0, at=1300.5, password="guess")
    assert wrong.outcome == "bad"


def test_nonce_lifetime_is_configurable() -> None:
    server = DigestServer(REALM, SECRET, nonce_lifetime=30.0)
    assert login(server, "MD5", issued=0.0, at=29.0).outcome == "ok"
    assert login(server, "MD5", issued=0.0, at=31.0).outcome == "stale"


def test_nonce_from_the_future_is_stale_not_accepted(server: DigestServer) -> None:
    """A server clock stepped backwards must not lock phones out, nor accept the nonce."""
    assert login(server, "MD5", issued=5000.0, at=1000.0).outcome == "stale"
    assert login(server, "MD5", issued=5000.0, at=1000.0, password="guess").outcome == "bad"


def test_tampered_nonce_is_rejected(server: DigestServer) -> None:
    header = answer(
        challenge_for(server, "SHA-256", 1000.0), "REGISTER", URI, "1001", "correct horse", "x"
    )
    nonce = parse_header(header)[1]["nonce"]
    for position in (0, 7, 20, 63):
        flipped = "A" if nonce[position] != "A" else "B"
        forged = nonce[:position] + flipped + nonce[position + 1 :]
        verdict = server.verify(header.replace(nonce, forged), "REGISTER", store, 1001.0)
        assert verdict.outcome in {"bad", "malformed"}
    for forged in ("", "abc", nonce + "A", nonce[:-1]):
        verdict = server.verify(header.replace(nonce, forged), "REGISTER", store, 1001.0)
        assert verdict.outcome in {"bad", "malformed"}


def test_nonce_lifetime_cannot_be_extended_by_rewriting_its_timestamp(
    server: DigestServer,
) -> None:
    """Even a phone that knows the password cannot forge a fresh-looking nonce."""
    challenge = challenge_for(server, "SHA-256", 1000.0)
    nonce = parse_header(challenge)[1]["nonce"]
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[0:8] = (5000 * 1000).to_bytes(8, "big", signed=True)  # claims issue at t=5000 s
    forged = base64.urlsafe_b64encode(bytes(raw)).decode()
    header = answer(challenge.replace(nonce, forged), "REGISTER", URI, "1001", "correct horse", "c")
    assert server.verify(header, "REGISTER", store, 5001.0).outcome == "stale"


def test_nonce_from_another_secret_or_realm_is_never_accepted() -> None:
    """After a restart with a new secret, phones holding old nonces get a silent retry (stale)
    if their password is right, and "bad" if it is not; never "ok"."""
    ours = DigestServer(REALM, SECRET)
    before_restart = DigestServer(REALM, b"the previous secret, 16+ bytes")
    old = challenge_for(before_restart, "MD5", 1000.0)
    header = answer(old, "REGISTER", URI, "1001", "correct horse", "c")
    assert ours.verify(header, "REGISTER", store, 1001.0).outcome == "stale"
    header = answer(old, "REGISTER", URI, "1001", "wrong horse", "c")
    assert ours.verify(header, "REGISTER", store, 1001.0).outcome == "bad"
    assert login(ours, "MD5", issued=1001.0, at=1002.0).ok  # the retry after re-challenge
    # Same secret, different realm: the nonce is bound to the realm that issued it.
    elsewhere = DigestServer("other.example.org", SECRET)
    foreign = challenge_for(elsewhere, "MD5", 1000.0).replace("other.example.org", REALM)
    header = answer(foreign, "REGISTER", URI, "1001", "correct horse", "c")
    assert ours.verify(header, "REGISTER", store, 1001.0).outcome == "stale"
    assert elsewhere.verify(header, "REGISTER", store, 1001.0).outcome == "bad"


def test_realm_mismatch_is_bad(server: DigestServer) -> None:
    challenge = challenge_for(server, "SHA-256", 1000.0).replace(REALM, "evil.example.org")
    header = answer(challenge, "REGISTER", URI, "1001", "correct horse", "c")
    verdict = server.verify(header, "REGISTER", store, 1001.0)
    assert verdict.outcome == "bad"


def test_answers_without_qop_are_refused_unless_enabled_and_md5() -> None:
    strict = DigestServer(REALM, SECRET)
    legacy = DigestServer(REALM, SECRET, allow_rfc2069=True)
    for server, algorithm, expected in [
        (strict, "MD5", "malformed"),
        (legacy, "MD5", "ok"),
        (legacy, "SHA-256", "malformed"),
    ]:
        no_qop = challenge_for(server, algorithm, 1000.0).replace(', qop="auth"', "")
        header = answer(no_qop, "REGISTER", URI, "1001", "correct horse", "unused")
        assert "qop" not in parse_header(header)[1]
        assert server.verify(header, "REGISTER", store, 1001.0).outcome == expected


def test_md5_can_be_switched_off() -> None:
    server = DigestServer(REALM, SECRET, algorithms=["SHA-256"])
    (value,) = server.challenge(1000.0)
    assert "algorithm=SHA-256" in value
    md5_challenge = value.replace("SHA-256", "MD5")
    header = answer(md5_challenge, "REGISTER", URI, "1001", "correct horse", "c")
    assert server.verify(header, "REGISTER", store, 1001.0).outcome == "malformed"


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        (("algorithm=SHA-256", "algorithm=SHA-256-sess"), "malformed"),
        (("algorithm=SHA-256", "algorithm=SHA-512-256"), "malformed"),
        (("qop=auth", "qop=auth-int"), "malformed"),
        (("Digest ", "Basic "), "malformed"),
        (("nc=00000001", "nc=1"), "malformed"),
        (('response="', 'response="0'), "malformed"),
    ],
)
def test_unoffered_modes_and_bad_fields_are_malformed(
    server: DigestServer, change: tuple[str, str], outcome: str
) -> None:
    header = answer(
        challenge_for(server, "SHA-256", 1000.0), "REGISTER", URI, "1001", "correct horse", "c"
    )
    assert change[0] in header
    assert server.verify(header.replace(*change), "REGISTER", store, 1001.0).outcome == outcome


@pytest.mark.parametrize("dropped", ["username", "realm", "nonce", "uri", "response", "cnonce"])
def test_missing_parameters_are_malformed(server: DigestServer, dropped: str) -> None:
    header = answer(
        challenge_for(server, "MD5", 1000.0), "REGISTER", URI, "1001", "correct horse", "c"
    )
    scheme, params = parse_header(header)
    del params[dropped]
    rebuilt = scheme + " " + ", ".join(f'{k}="{v}"' for k, v in params.items())
    verdict = server.verify(rebuilt, "REGISTER", store, 1001.0)
    assert verdict.outcome == "malformed"


def test_header_as_phones_format_it_is_accepted(server: DigestServer) -> None:
    """Upper-case names, quoted tokens, spaces around '=' and ',', folded lines, any order."""
    header = answer(
        challenge_for(server, "MD5", 1000.0), "REGISTER", URI, "1001", "correct horse", "c,1"
    )
    params = parse_header(header)[1]
    messy = (
        f'digest  USERNAME = "1001" ,Realm="{REALM}",\r\n\tNonce="{params["nonce"]}" ,'
        f' uri="{URI}", ,Response = "{params["response"].upper()}", algorithm=md5,'
        f' cnonce="c\\,1" , qop="auth", nc=00000001  '
    )
    assert server.verify(messy, "REGISTER", store, 1001.0).outcome == "ok"


def test_parse_header_handles_escapes_and_commas_in_quotes() -> None:
    scheme, params = parse_header(
        'Digest realm="a, \\"b\\" \\\\ c", qop="auth, auth-int", algorithm=MD5, NC=00000001'
    )
    assert scheme == "Digest"
    assert params == {
        "realm": 'a, "b" \\ c',
        "qop": "auth, auth-int",
        "algorithm": "MD5",
        "nc": "00000001",
    }


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'Digest realm="unterminated',
        'Digest realm="x" nonce="y"',
        'Digest realm="x", realm="y"',
        "Digest realm=",
        "Digest =x",
        'Digest realm="x\\',
        '"Digest" realm="x"',
        'Digest realm="\ud800"',
    ],
)
def test_parse_header_rejects_broken_syntax(value: str) -> None:
    with pytest.raises(DigestError):
        parse_header(value)


def test_client_refuses_challenges_it_cannot_answer() -> None:
    base = 'Digest realm="r", nonce="n"'
    for challenge in [
        'Basic realm="r"',
        base + ", algorithm=MD5-sess",
        base + ", algorithm=SHA-512-256",
        base + ', qop="auth-int"',
        'Digest realm="r"',
    ]:
        with pytest.raises(DigestError):
            answer(challenge, "REGISTER", "sip:r", "u", "p", "c")
    with pytest.raises(ValueError):
        answer(base, "REGISTER", "sip:r", "u", "p", "c", nc=0)


def test_client_counts_requests_with_nc(server: DigestServer) -> None:
    challenge = challenge_for(server, "SHA-256", 1000.0)
    header = answer(challenge, "INVITE", URI, "1001", "correct horse", "c", nc=0x1A)
    assert parse_header(header)[1]["nc"] == "0000001a"
    assert server.verify(header, "INVITE", store, 1001.0).ok


def test_pick_challenge_prefers_sha256_then_md5() -> None:
    sha = 'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"'
    md5 = 'Digest realm="r", nonce="n", qop="auth"'
    unusable = [
        'Digest realm="r", nonce="n", algorithm=SHA-512-256',
        'Basic realm="r"',
        "garbage ===",
    ]
    assert pick_challenge([md5, sha]) == sha
    assert pick_challenge([*unusable, md5]) == md5
    assert pick_challenge(unusable) is None
    ours = DigestServer(REALM, SECRET).challenge(0.0)
    assert pick_challenge(reversed(ours)) == ours[0]


def test_random_garbage_is_malformed_and_never_raises(server: DigestServer) -> None:
    rng = random.Random(7616)
    alphabet = 'Digest=",\\ \t\r\nabcnoqpruiesm0123456789\x00\x7f\u00e9\u2028\ud800'
    for _ in range(3000):
        length = rng.randrange(0, 80)
        value = "".join(rng.choice(alphabet) for _ in range(length))
        verdict = server.verify(value, "REGISTER", store, 1000.0)
        assert verdict.outcome == "malformed"


def test_mutated_valid_headers_never_raise_or_pass(server: DigestServer) -> None:
    rng = random.Random(3261)
    header = answer(
        challenge_for(server, "SHA-256", 1000.0), "REGISTER", URI, "1001", "correct horse", "c"
    )
    assert server.verify(header, "REGISTER", store, 1001.0).ok
    noise = '",\\= \x00\ud800é'
    outcomes: set[str] = set()
    for _ in range(3000):
        chars = list(header)
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(chars))
            action = rng.randrange(3)
            if action == 0:
                del chars[position]
            elif action == 1:
                chars.insert(position, rng.choice(noise))
            else:
                chars[position] = rng.choice(noise + "0123456789abcdef")
        mutated = "".join(chars)
        verdict = server.verify(mutated, "REGISTER", store, 1001.0)
        outcomes.add(verdict.outcome)
        if verdict.ok:
            # Only edits the protocol ignores (e.g. whitespace, case of hex) may still pass.
            assert (
                parse_header(mutated)[1]["response"].lower() == parse_header(header)[1]["response"]
            )
    assert {"malformed", "bad"} <= outcomes


def test_configuration_errors() -> None:
    with pytest.raises(ValueError):
        DigestServer(REALM, b"short")
    with pytest.raises(ValueError):
        DigestServer(REALM, SECRET, algorithms=["MD5-sess"])
    with pytest.raises(ValueError):
        DigestServer(REALM, SECRET, nonce_lifetime=0)
    with pytest.raises(ValueError):
        DigestServer(REALM, SECRET).challenge(float("nan"))
