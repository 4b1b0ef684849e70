"""TOTP (RFC 6238): published test vectors, the drift window, replay refusal, input hygiene."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.accounts.totp import (
    DIGITS,
    PERIOD,
    SECRET_BYTES,
    _code,
    current_step,
    match,
    new_secret,
    provisioning_uri,
    qr_svg,
)

# RFC 6238 Appendix B: each algorithm has its own seed, 20, 32 and 64 bytes long.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC_6238_VECTORS = [
    (59, "94287082", "sha1"),
    (59, "46119246", "sha256"),
    (59, "90693936", "sha512"),
    (1111111109, "07081804", "sha1"),
    (1111111109, "68084774", "sha256"),
    (1111111109, "25091201", "sha512"),
    (1111111111, "14050471", "sha1"),
    (1111111111, "67062674", "sha256"),
    (1111111111, "99943326", "sha512"),
    (1234567890, "89005924", "sha1"),
    (1234567890, "91819424", "sha256"),
    (1234567890, "93441116", "sha512"),
    (2000000000, "69279037", "sha1"),
    (2000000000, "90698825", "sha256"),
    (2000000000, "38618901", "sha512"),
    (20000000000, "65353130", "sha1"),
    (20000000000, "77737706", "sha256"),
    (20000000000, "47863826", "sha512"),
]
# RFC 4226 Appendix D: HOTP values for counters 0 to 9, six digits, SHA-1.
RFC_4226_VECTORS = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]
NOW = 1_700_000_000.0


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


SECRET = b32(SEEDS["sha1"])
STEP = current_step(NOW)


@pytest.mark.parametrize(("now", "expected", "algorithm"), RFC_6238_VECTORS)
def test_rfc_6238_appendix_b(now: int, expected: str, algorithm: str) -> None:
    step = current_step(now)
    assert _code(b32(SEEDS[algorithm]), step, digits=8, algorithm=algorithm) == expected


@pytest.mark.parametrize(
    ("now", "expected"), [(t, c) for t, c, a in RFC_6238_VECTORS if a == "sha1"]
)
def test_match_accepts_the_six_digit_form_of_the_rfc_vectors(now: int, expected: str) -> None:
    # The six-digit code is the same truncated value modulo 10^6 (RFC 4226 §5.3).
    assert match(SECRET, expected[-DIGITS:], now, None) == current_step(now)


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC_4226_VECTORS)))
def test_rfc_4226_appendix_d(counter: int, expected: str) -> None:
    assert _code(SECRET, counter) == expected


def test_current_step() -> None:
    assert current_step(0) == 0
    assert current_step(29.999) == 0
    assert current_step(30) == 1
    assert current_step(59, period=60) == 0
    assert current_step(20000000000) == 666666666


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_one_step_of_drift_is_accepted(offset: int) -> None:
    assert match(SECRET, _code(SECRET, STEP + offset), NOW, None) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_two_steps_of_drift_are_refused(offset: int) -> None:
    assert match(SECRET, _code(SECRET, STEP + offset), NOW, None) is None


def test_a_wider_window_is_honoured() -> None:
    assert match(SECRET, _code(SECRET, STEP - 2), NOW, None, window=2) == STEP - 2
    assert match(SECRET, _code(SECRET, STEP + 1), NOW, None, window=0) is None


def test_negative_window_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="window"):
        match(SECRET, _code(SECRET, STEP), NOW, None, window=-1)


def test_replayed_code_is_refused() -> None:
    code = _code(SECRET, STEP)
    used = match(SECRET, code, NOW, None)
    assert used == STEP
    assert match(SECRET, code, NOW, used) is None
    # Still refused later in the window, while the code would otherwise be accepted.
    assert match(SECRET, code, NOW + PERIOD, used) is None


def test_code_from_a_step_before_the_last_used_one_is_refused() -> None:
    assert match(SECRET, _code(SECRET, STEP - 1), NOW, last_used_step=STEP) is None


def test_code_after_the_last_used_step_is_accepted() -> None:
    assert match(SECRET, _code(SECRET, STEP), NOW, last_used_step=STEP - 1) == STEP
    assert match(SECRET, _code(SECRET, STEP + 1), NOW, last_used_step=STEP) == STEP + 1


def test_spaces_inside_the_code_are_ignored() -> None:
    code = _code(SECRET, STEP)
    assert match(SECRET, f"{code[:3]} {code[3:]}", NOW, None) == STEP
    assert match(SECRET, f" {code} ", NOW, None) == STEP


def test_near_epoch_skips_negative_steps() -> None:
    assert match(SECRET, _code(SECRET, 0), 1.0, None) == 0


@pytest.mark.parametrize(
    "code",
    [
        "",
        " ",
        "12345a",
        "abcdef",
        "12345",
        "1234567",
        "١٢٣٤٥٦",  # Arabic-Indic digits: str.isdigit is true, yet no app sends them.
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # Full-width digits.
        "123\t456",
        "123-456",
        "+12345",
        "1" * 10_000,
        " " * 10_000 + "123456",
        "\x00" * 6,
    ],
)
def test_malformed_codes_are_refused_without_raising(code: str) -> None:
    assert match(SECRET, code, NOW, None) is None


def test_the_right_digits_for_the_wrong_step_are_refused() -> None:
    # A code that looks valid but belongs to no step in the window.
    wrong = f"{(int(_code(SECRET, STEP)) + 1) % 10**DIGITS:0{DIGITS}d}"
    candidates = {_code(SECRET, STEP + offset) for offset in (-1, 0, 1)}
    assert wrong not in candidates
    assert match(SECRET, wrong, NOW, None) is None


@given(
    raw=st.binary(min_size=14, max_size=64),
    now=st.floats(min_value=0, max_value=2**34, allow_nan=False, allow_infinity=False),
)
def test_current_code_matches_exactly_once(raw: bytes, now: float) -> None:
    secret = b32(raw)
    step = current_step(now)
    code = _code(secret, step)
    assert match(secret, code, now, None) == step
    assert match(secret, code, now, step) is None
    assert match(secret, code, now, step + 1) is None


def test_new_secret_is_160_bits_of_base32_without_padding() -> None:
    secret = new_secret()
    assert "=" not in secret
    assert len(base64.b32decode(secret)) == SECRET_BYTES
    assert len({new_secret() for _ in range(20)}) == 20


def test_new_secret_works_end_to_end() -> None:
    secret = new_secret()
    assert match(secret, _code(secret, STEP), NOW, None) == STEP


def test_provisioning_uri_follows_the_key_uri_format() -> None:
    secret = new_secret()
    uri = provisioning_uri(secret, "alice@example.com", "Bastion & Co")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert parts.path == "/Bastion%20%26%20Co:alice%40example.com"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Bastion & Co"]
    # SHA-1, six digits and 30 seconds are the format's defaults, so they need no parameter.
    assert "algorithm" not in query or query["algorithm"] == ["SHA1"]
    assert "digits" not in query or query["digits"] == [str(DIGITS)]
    assert "period" not in query or query["period"] == [str(PERIOD)]


@pytest.mark.parametrize(("account", "issuer"), [("a:b", "Bastion"), ("alice", "Bas:tion")])
def test_provisioning_uri_refuses_colons(account: str, issuer: str) -> None:
    with pytest.raises(ValueError, match="colon"):
        provisioning_uri(new_secret(), account, issuer)


def test_qr_svg_is_embeddable_svg() -> None:
    svg = qr_svg(provisioning_uri(new_secret(), "alice@example.com", "Bastion"))
    assert "<svg" in svg
    assert not svg.lstrip().startswith("<?xml")
    root = ET.fromstring(svg)  # noqa: S314  # Our own output, not untrusted input.
    assert root.tag == "svg"
    assert root.get("role") == "img"
    title = root.find("title")
    assert title is not None
    assert title.text


def test_qr_svg_escapes_its_title() -> None:
    svg = qr_svg("otpauth://totp/x", title="<script>&")
    assert "<script>" not in svg
    title = ET.fromstring(svg).find("title")  # noqa: S314  # Our own output.
    assert title is not None
    assert title.text == "<script>&"
