"""Recovery codes (NIST SP 800-63B §5.1.2): format, normalization, keyed digests."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.accounts.recovery_codes import (
    ALPHABET,
    COUNT,
    LENGTH,
    digest,
    generate,
    normalize,
)
from bastion.crypto.derive import derive_key

DISPLAY = re.compile(r"^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$")
KEY = derive_key(os.urandom(32), "recovery-codes")


def test_alphabet_is_crockford_base32_in_lower_case() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("ilou") & set(ALPHABET)


def test_generate_gives_ten_distinct_codes_in_display_form() -> None:
    codes = generate()
    assert len(codes) == COUNT == 10
    assert len(set(codes)) == COUNT
    for code in codes:
        assert DISPLAY.fullmatch(code), code


def test_generate_honours_count() -> None:
    assert generate(0) == []
    assert len(set(generate(50))) == 50


def test_generated_codes_differ_between_calls() -> None:
    assert not set(generate()) & set(generate())


def test_generated_codes_normalize_to_themselves_without_the_hyphen() -> None:
    for code in generate():
        assert normalize(code) == code.replace("-", "")


@pytest.mark.parametrize(
    "spelling",
    [
        "abcde-23456",
        "ABCDE-23456",
        "abcde23456",
        "ABCDE 23456",
        " abc de-234 56 ",
        "a-b-c-d-e-2-3-4-5-6",
        "aBcDe-23456",
    ],
)
def test_equivalent_spellings_normalize_alike(spelling: str) -> None:
    assert normalize(spelling) == "abcde23456"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("0o0o0-iIlL1", "00000-11111"), ("O0000-00000", "00000-00000")],
)
def test_confusable_letters_map_to_digits(typed: str, expected: str) -> None:
    assert normalize(typed) == normalize(expected) == expected.replace("-", "")


@pytest.mark.parametrize(
    "code",
    [
        "",
        "-",
        "     ",
        "abcde-2345",  # Nine characters.
        "abcde-234567",  # Eleven characters.
        "abcde-2345u",  # "u" is outside Crockford's alphabet.
        "abcde-2345!",
        "abcde_23456",
        "abcde\t23456",
        "abcde-2345\u212a",  # Kelvin sign: lower-cases to an ASCII "k".
        "abcde-2345\u0130",  # Dotted capital I: lower-cases to two characters.
        "abcde-\uff12\uff13\uff14\uff15\uff16",  # Full-width digits.
        "abcde-23456\x00",
        "a" * 10_000,
        "-" * 10_000 + "abcde23456",
    ],
)
def test_malformed_codes_normalize_to_none(code: str) -> None:
    assert normalize(code) is None


def test_digest_is_hex_sha256() -> None:
    value = digest(KEY, "user-1", "abcde-23456")
    assert value is not None
    assert re.fullmatch(r"[0-9a-f]{64}", value)


def test_digest_is_equal_for_equivalent_spellings() -> None:
    spellings = ["abcde-01111", "ABCDE 01111", "abcdeoilL1", "abcde-O1iI1"]
    assert len({digest(KEY, "user-1", spelling) for spelling in spellings}) == 1


def test_digest_differs_per_user() -> None:
    assert digest(KEY, "user-1", "abcde-23456") != digest(KEY, "user-2", "abcde-23456")


def test_digest_differs_per_key() -> None:
    other = derive_key(os.urandom(32), "recovery-codes")
    assert digest(KEY, "user-1", "abcde-23456") != digest(other, "user-1", "abcde-23456")


def test_digest_differs_per_code() -> None:
    assert digest(KEY, "user-1", "abcde-23456") != digest(KEY, "user-1", "abcde-23457")


def test_digest_of_a_malformed_code_is_none() -> None:
    assert digest(KEY, "user-1", "not a code") is None
    assert digest(KEY, "user-1", "") is None


def test_digest_does_not_contain_the_code() -> None:
    value = digest(KEY, "user-1", "abcde-23456")
    assert value is not None
    assert "abcde23456" not in value


@given(st.text(max_size=200))
def test_normalize_returns_a_valid_code_or_none(code: str) -> None:
    result = normalize(code)
    if result is not None:
        assert len(result) == LENGTH
        assert set(result) <= set(ALPHABET)


@given(st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ -"))
def test_normalize_of_plausible_input_never_raises(code: str) -> None:
    result = normalize(code)
    assert result is None or (len(result) == LENGTH and set(result) <= set(ALPHABET))


@given(st.lists(st.sampled_from(ALPHABET), min_size=LENGTH, max_size=LENGTH))
def test_normalize_is_idempotent_on_valid_codes(symbols: list[str]) -> None:
    code = "".join(symbols)
    assert normalize(code) == code
    assert normalize(f"{code[:5]}-{code[5:]}".upper()) == code
