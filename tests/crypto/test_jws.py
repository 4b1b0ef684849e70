"""Compact JWS checks with ``cryptography`` directly (``bastion.crypto.jws``): every token
joserfc refuses is refused here too, and the good ones pass (RFC 7515 §5.2)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwk
from joserfc import jws as jose_jws

from bastion.crypto import jws
from bastion.crypto.jws import PublicKeys

CLAIMS = {"iss": "https://issuer.test", "sub": "user-1", "aud": "api", "exp": 2_000_000_000}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key(alg: str) -> Any:
    if alg.startswith(("RS", "PS")):
        return jwk.RSAKey.generate_key(2048)
    if alg.startswith("ES"):
        return jwk.ECKey.generate_key({"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg])
    return jwk.OKPKey.generate_key("Ed25519")


def _sign(key: Any, alg: str, header: dict[str, Any] | None = None, claims: Any = None) -> str:
    protected = {"alg": alg, "typ": "JWT", **(header or {})}
    payload = orjson.dumps(CLAIMS if claims is None else claims)
    return jose_jws.serialize_compact(protected, payload, key, algorithms=[alg])


def _public(*keys: Any, **members: Any) -> PublicKeys:
    return PublicKeys.from_jwks({"keys": [{**k.as_dict(private=False), **members} for k in keys]})


def _check(token: str, keys: PublicKeys, algorithms: tuple[str, ...]) -> dict[str, Any]:
    compact = jws.parse_compact(token)
    jws.verify(compact, keys, algorithms)
    return compact.claims


@pytest.mark.parametrize(
    "alg", ["ES256", "ES384", "ES512", "RS256", "RS512", "PS256", "Ed25519", "EdDSA"]
)
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_a_good_signature_verifies(alg: str) -> None:
    key = _key(alg)
    assert _check(_sign(key, alg), _public(key), (alg,)) == CLAIMS


def test_an_algorithm_outside_the_allowlist_is_refused() -> None:
    key = _key("ES256")
    with pytest.raises(ValueError, match="algorithm"):
        _check(_sign(key, "ES256"), _public(key), ("RS256",))


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_none_and_hmac_never_verify(alg: str) -> None:
    key = _key("ES256")
    header = _b64(orjson.dumps({"alg": alg, "typ": "JWT"}))
    token = f"{header}.{_b64(orjson.dumps(CLAIMS))}.{_b64(b'x' * 32)}"
    with pytest.raises(ValueError, match=r"."):
        _check(token, _public(key), ("ES256", alg))


def test_a_signature_by_another_key_is_refused() -> None:
    with pytest.raises(ValueError, match="bad signature"):
        _check(_sign(_key("ES256"), "ES256"), _public(_key("ES256")), ("ES256",))


def test_a_changed_payload_is_refused() -> None:
    key = _key("Ed25519")
    head, _, tail = _sign(key, "Ed25519").split(".")
    forged = f"{head}.{_b64(orjson.dumps({**CLAIMS, 'sub': 'admin'}))}.{tail}"
    with pytest.raises(ValueError, match="bad signature"):
        _check(forged, _public(key), ("Ed25519",))


def test_a_key_of_another_type_never_checks_the_signature() -> None:
    rsa_key = _key("RS256")
    with pytest.raises(ValueError, match="no key"):
        _check(_sign(_key("ES256"), "ES256"), _public(rsa_key), ("ES256", "RS256"))


def test_a_key_declaring_another_alg_is_not_used() -> None:
    key = _key("RS256")
    with pytest.raises(ValueError, match="no key"):
        _check(_sign(key, "PS256"), _public(key, alg="RS256"), ("RS256", "PS256"))


def test_keys_are_chosen_by_kid() -> None:
    first, second = _key("ES256"), _key("ES256")
    keys = PublicKeys.from_jwks(
        {
            "keys": [
                {**first.as_dict(private=False), "kid": "a"},
                {**second.as_dict(private=False), "kid": "b"},
            ]
        }
    )
    assert _check(_sign(second, "ES256", {"kid": "b"}), keys, ("ES256",)) == CLAIMS
    with pytest.raises(ValueError, match="no key"):
        _check(_sign(second, "ES256", {"kid": "c"}), keys, ("ES256",))
    # Without a kid, a set of several keys does not guess (as joserfc).
    with pytest.raises(ValueError, match="no key"):
        _check(_sign(second, "ES256"), keys, ("ES256",))


def _sign_any_header(key: Any, header: dict[str, Any]) -> str:
    """An ES256 token with a header joserfc would refuse to write."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(CLAIMS))}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_unknown_or_unlisted_crit_headers_are_refused() -> None:
    key = _key("ES256")
    assert _check(_sign_any_header(key, {"alg": "ES256"}), _public(key), ("ES256",))
    for extra in ({"crit": ["exp"], "exp": 1}, {"crit": ["kid"]}, {"x-custom": 1}):
        token = _sign_any_header(key, {"alg": "ES256", **extra})
        with pytest.raises(ValueError, match="header"):
            _check(token, _public(key), ("ES256",))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "e30.e30.",
        "e30=.e30.AAAA",
        " e30.e30.AAAA",
        "eyJhbGciOiJFUzI1NiJ9.WzFd.AAAA",  # payload is a JSON array
        "bm90IGpzb24.e30.AAAA",  # header is not JSON
        "A.e30.AAAA",  # impossible base64 length
        "e30." + "A" * 200_000 + ".AAAA",
    ],
)
def test_malformed_tokens_are_refused_before_any_check(token: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        jws.parse_compact(token)


def test_a_truncated_ecdsa_signature_is_refused() -> None:
    key = _key("ES256")
    head, body, tail = _sign(key, "ES256").split(".")
    short = _b64(base64.urlsafe_b64decode(tail + "==")[:-1])
    with pytest.raises(ValueError, match="bad signature"):
        _check(f"{head}.{body}.{short}", _public(key), ("ES256",))


def test_private_or_symmetric_keys_are_refused_when_loading() -> None:
    with pytest.raises(ValueError, match=r"."):
        PublicKeys.from_jwks({"keys": [_key("ES256").as_dict(private=True)]})
    with pytest.raises(ValueError, match=r"."):
        PublicKeys.from_jwks({"keys": [{"kty": "oct", "k": _b64(b"secret" * 6)}]})
