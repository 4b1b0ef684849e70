"""The installation's encryption key (RFC 7517 JWK for ECDH-ES+A256KW, RFC 7518 §4.6):
public P-256 only, on the curve (§6.2.1), nothing unlisted; hostile input either parses
or raises ``ValueError``, nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.device.encryption_key import encryption_key
from tests.support.dpop import DeviceKey


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = {**DeviceKey().jwk(), "use": "enc"}
    jwk.update(changes)
    return jwk


def test_a_public_p256_encryption_key_is_kept_as_sent() -> None:
    jwk = _jwk(alg="ECDH-ES+A256KW", kid="k1", key_ops=["deriveKey"])
    assert encryption_key(jwk) == jwk


@pytest.mark.parametrize(
    ("jwk", "words"),
    [
        (_jwk(d="A" * 43), "private"),
        (_jwk(crv="P-521"), "P-256"),
        (_jwk(kty="OKP"), "P-256"),
        (_jwk(use="sig"), "encryption"),
        (_jwk(alg="ECDH-ES"), "alg"),
        (_jwk(key_ops=["sign"]), "key_ops"),
        (_jwk(key_ops=[]), "key_ops"),
        (_jwk(kid=""), "kid"),
        (_jwk(x="A" * 42), "32 bytes"),
        (_jwk(y="!" * 43), "base64url"),
        (_jwk(x="A" * 43, y="A" * 43), "not on P-256"),
        (_jwk(x5u="https://evil.example/k"), "not accepted"),
        ([], "JSON object"),
    ],
)
def test_anything_else_is_refused_saying_what(jwk: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        encryption_key(jwk)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "y", "use", "alg", "kid", "key_ops", "d", "n"]),
        _json,
    )
)
def test_hostile_keys_parse_or_raise_value_error(jwk: dict[str, Any]) -> None:
    with contextlib.suppress(ValueError):
        encryption_key(jwk)
