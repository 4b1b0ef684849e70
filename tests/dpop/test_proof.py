"""The proof checks of RFC 9449 §4.3, each refusal tried by the attack it stops."""

from __future__ import annotations

import time

import pytest

from bastion.errors import DpopError
from bastion.oauth.dpop import (
    SUPPORTED_ALGORITHMS,
    ProofRules,
    access_token_hash,
    check_proof,
    normalize_uri,
    thumbprint,
)
from bastion.oauth.dpop_nonce import DpopNonces
from tests.support.dpop import DeviceKey

RULES = ProofRules(frozenset(SUPPORTED_ALGORITHMS), max_age=60.0, leeway=5.0)
TOKEN_URI = "https://as.example.com/token"

# RFC 9449 §4.1 (Figure 3 and the proof beside it) and §6.1: the published example key,
# its thumbprint and the proof it signed for a token request.
RFC_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgt"
    "MzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VO"
    "SmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRj"
    "IiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0Ijox"
    "NTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK"
    "70nfbV37xRZT3Lg"
)
RFC_IAT = 1562262616


def check(proof: str, **kwargs: object) -> object:
    options: dict[str, object] = {"method": "POST", "uri": TOKEN_URI, "now": time.time()}
    options.update(kwargs)
    return check_proof([proof], rules=RULES, **options)  # type: ignore[arg-type]


def refused(proof: str, reason: str, **kwargs: object) -> DpopError:
    with pytest.raises(DpopError) as caught:
        check(proof, **kwargs)
    assert caught.value.reason == reason, caught.value
    return caught.value


def test_rfc_example_proof_verifies_and_names_its_key() -> None:
    # RFC 9449 §4.1 and §6.1: the published proof, at the time it was made.
    proof = check_proof(
        [RFC_PROOF],
        method="POST",
        uri="https://server.example.com/token",
        now=RFC_IAT + 1,
        rules=RULES,
    )
    assert thumbprint(RFC_JWK) == RFC_JKT
    assert proof.jkt == RFC_JKT
    assert proof.jti == "-BwC3ESc6acc2lTc"


def test_rfc_example_proof_is_refused_elsewhere_and_later() -> None:
    # The same proof replayed at another server (§4.3 point 9) or hours later (point 11).
    with pytest.raises(DpopError, match="htu"):
        check_proof([RFC_PROOF], method="POST", uri=TOKEN_URI, now=RFC_IAT, rules=RULES)
    with pytest.raises(DpopError, match="stale"):
        check_proof(
            [RFC_PROOF],
            method="POST",
            uri="https://server.example.com/token",
            now=RFC_IAT + 3600,
            rules=RULES,
        )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
def test_each_asymmetric_algorithm_is_accepted(alg: str) -> None:
    key = DeviceKey(alg)
    proof = check(key.proof("POST", TOKEN_URI))
    assert proof.jkt == key.jkt  # type: ignore[attr-defined]


def test_alg_none_is_refused() -> None:
    # §4.3 point 5: "none" is never a proof.
    key = DeviceKey()
    signed = key.proof("POST", TOKEN_URI, header={"alg": "none"})
    head, body, _ = signed.split(".")
    refused(f"{head}.{body}.", "malformed")
    refused(signed, "alg")


def test_symmetric_algorithm_is_refused() -> None:
    # §4.3 point 5: an HMAC "key" is a shared secret, it cannot stay on the device.
    key = DeviceKey()
    refused(key.proof("POST", TOKEN_URI, header={"alg": "HS256"}), "alg")
    refused(
        key.proof(
            "POST", TOKEN_URI, header={"alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
        ),
        "alg",
    )


def test_private_key_in_the_header_is_refused() -> None:
    # §4.3 point 7: a jwk with private members means the key has left the device.
    key = DeviceKey()
    numbers = key.private.private_numbers()
    from bastion.crypto.jws import b64url

    leaked = dict(key.jwk(), d=b64url(numbers.private_value.to_bytes(32, "big")))
    refused(key.proof("POST", TOKEN_URI, header={"jwk": leaked}), "jwk")


def test_wrong_typ_missing_jwk_and_another_keys_signature_are_refused() -> None:
    # §4.3 points 4 and 6.
    key, other = DeviceKey(), DeviceKey()
    refused(key.proof("POST", TOKEN_URI, header={"typ": "JWT"}), "typ")
    refused(key.proof("POST", TOKEN_URI, header={"typ": None}), "typ")
    refused(key.proof("POST", TOKEN_URI, header={"jwk": None}), "jwk")
    refused(key.proof("POST", TOKEN_URI, header={"jwk": other.jwk()}), "signature")
    refused(key.proof("POST", TOKEN_URI, header={"jwk": "not an object"}), "jwk")


def test_unencoded_payload_option_is_refused() -> None:
    # RFC 7797 §7: b64 is not for JWTs; a proof is one.
    key = DeviceKey()
    refused(key.proof("POST", TOKEN_URI, header={"b64": False, "crit": ["b64"]}), "malformed")


def test_short_rsa_key_is_refused() -> None:
    key = DeviceKey("RS256", rsa_bits=1024)
    refused(key.proof("POST", TOKEN_URI), "jwk")


def test_zero_padded_rsa_modulus_is_refused() -> None:
    # RFC 7518 §2: Base64urlUInt in its shortest form; padding must not pass a 1024-bit
    # key off as a long one (nor give one key two thumbprints, RFC 7638).
    key = DeviceKey("RS256", rsa_bits=1024)
    jwk = key.jwk()
    from bastion.crypto.jws import b64decode, b64url

    padded = dict(jwk, n=b64url(b"\x00" * 130 + b64decode(jwk["n"])))
    refused(key.proof("POST", TOKEN_URI, header={"jwk": padded}), "jwk")


def test_a_4096_bit_rsa_key_fits_in_a_proof() -> None:
    key = DeviceKey("PS256", rsa_bits=4096)
    assert check(key.proof("POST", TOKEN_URI))


def test_jwk_whose_curve_does_not_fit_the_algorithm_is_refused() -> None:
    # An EC P-256 key claiming an Edwards or RSA algorithm (algorithm confusion).
    key = DeviceKey()
    refused(key.proof("POST", TOKEN_URI, header={"alg": "EdDSA"}), "alg")
    refused(key.proof("POST", TOKEN_URI, header={"alg": "RS256"}), "alg")


def test_critical_and_unregistered_header_members_are_refused() -> None:
    # RFC 7515 §4.1.11: an extension marked critical that the server does not implement
    # makes the JWS invalid; a proof needs none, and names only registered members.
    key = DeviceKey()
    refused(key.proof("POST", TOKEN_URI, header={"crit": ["unknown"], "unknown": 1}), "malformed")
    refused(key.proof("POST", TOKEN_URI, header={"crit": ["kid"], "kid": "k"}), "malformed")
    refused(key.proof("POST", TOKEN_URI, header={"x-custom": 1}), "malformed")
    assert check(key.proof("POST", TOKEN_URI, header={"kid": "device-key-1"}))


def test_more_than_one_dpop_header_is_refused() -> None:
    # §4.3 point 1.
    key = DeviceKey()
    proof = key.proof("POST", TOKEN_URI)
    with pytest.raises(DpopError, match="exactly one"):
        check_proof([proof, proof], method="POST", uri=TOKEN_URI, now=time.time(), rules=RULES)
    with pytest.raises(DpopError, match="required"):
        check_proof([], method="POST", uri=TOKEN_URI, now=time.time(), rules=RULES)


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_each_required_claim_is_required(claim: str) -> None:
    # §4.2 and §4.3 point 3.
    refused(DeviceKey().proof("POST", TOKEN_URI, claims={claim: None}), "malformed")


def test_wrong_types_are_refused() -> None:
    key = DeviceKey()
    refused(key.proof("POST", TOKEN_URI, claims={"iat": "1700000000"}), "malformed")
    refused(key.proof("POST", TOKEN_URI, claims={"iat": True}), "malformed")
    refused(key.proof("POST", TOKEN_URI, claims={"jti": 5}), "malformed")
    refused(key.proof("POST", TOKEN_URI, claims={"jti": "x" * 257}), "malformed")
    refused(key.proof("POST", TOKEN_URI, claims={"nonce": 7}), "malformed")


def test_wrong_method_is_refused() -> None:
    # §4.3 point 8: a proof made for GET does not serve a POST; methods are case-sensitive.
    key = DeviceKey()
    refused(key.proof("GET", TOKEN_URI), "htm")
    refused(key.proof("post", TOKEN_URI), "htm")


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/token2",
        "https://as.example.com/other/token",
        "http://as.example.com/token",  # another scheme
        "https://as.example.com:8443/token",  # another port
        "https://evil.example/token",
        "https://as.example.com.evil.example/token",
        "https://user@as.example.com/token",  # userinfo hides the host from a reader
        "/token",  # not absolute
        "https://as.example.com/TOKEN",  # paths are case-sensitive
        "https://as.example.com/%74oken%2F",  # an encoded slash is not a slash
        "https://as.example.com/token/..%2Fx",
    ],
)
def test_wrong_uri_is_refused(htu: str) -> None:
    # §4.3 point 9.
    refused(DeviceKey().proof("POST", htu), "htu")


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/token?x=1",  # query ignored (§4.3 point 9)
        "https://as.example.com/token#frag",  # fragment ignored
        "HTTPS://AS.EXAMPLE.COM/token",  # scheme and host case-insensitive (RFC 3986 §6.2.2.1)
        "https://as.example.com:443/token",  # default port (§6.2.3)
        "https://as.example.com/%74oken",  # unreserved decoded (§6.2.2.2)
        "https://as.example.com/a/../token",  # dot segments (§6.2.2.3)
    ],
)
def test_equivalent_uri_is_accepted(htu: str) -> None:
    check(DeviceKey().proof("POST", htu))


def test_request_uri_query_does_not_matter() -> None:
    check(DeviceKey().proof("POST", TOKEN_URI), uri=TOKEN_URI + "?a=b")


def test_normalize_uri() -> None:
    assert normalize_uri("https://EX.com") == "https://ex.com/"
    assert normalize_uri("http://ex.com:80/a/./b/../c") == "http://ex.com/a/c"
    assert normalize_uri("https://[::1]:8443/x%2f") == "https://[::1]:8443/x%2F"
    for bad in ("ftp://ex.com/", "https:///x", "https://ex.com:99999/", "https://ex .com/"):
        with pytest.raises(ValueError, match=r"URI|host|port|Port"):
            normalize_uri(bad)


def test_stale_and_future_iat_are_refused() -> None:
    # §4.3 point 11 and §11.1: a proof made long ago, or dated ahead of the clock.
    key = DeviceKey()
    now = time.time()
    refused(key.proof("POST", TOKEN_URI, iat=now - 61), "stale", now=now)
    refused(key.proof("POST", TOKEN_URI, iat=now + 6), "stale", now=now)
    check(key.proof("POST", TOKEN_URI, iat=now - 59), now=now)
    check(key.proof("POST", TOKEN_URI, iat=now + 4), now=now)


def test_ath_must_name_the_access_token() -> None:
    # §4.3 point 12 / §7.1: a proof travels with one access token only.
    key = DeviceKey()
    check(key.proof("GET", TOKEN_URI, access_token="tok-1"), method="GET", access_token="tok-1")
    refused(key.proof("GET", TOKEN_URI), "ath", method="GET", access_token="tok-1")
    refused(
        key.proof("GET", TOKEN_URI, access_token="tok-2"), "ath", method="GET", access_token="tok-1"
    )


def test_access_token_hash_matches_rfc_example() -> None:
    # RFC 9449 §7.1: the example access token and the ath of its proof.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_nonce_required_missing_stale_and_fresh() -> None:
    # §8: without the server's nonce, or with an old one, the answer is use_dpop_nonce.
    nonces = DpopNonces(b"k" * 32, lifetime=60)
    now = time.time()
    key = DeviceKey()
    error = refused(key.proof("POST", TOKEN_URI), "nonce", nonce=nonces.accepts, now=now)
    assert error.error == "use_dpop_nonce"
    old = nonces.current(now - 200)
    refused(key.proof("POST", TOKEN_URI, nonce=old), "nonce", nonce=nonces.accepts, now=now)
    other_server = DpopNonces(b"x" * 32, lifetime=60).current(now)
    refused(
        key.proof("POST", TOKEN_URI, nonce=other_server), "nonce", nonce=nonces.accepts, now=now
    )
    fresh = nonces.current(now)
    assert check(key.proof("POST", TOKEN_URI, nonce=fresh), nonce=nonces.accepts, now=now)


def test_nonce_rotates_and_the_previous_one_still_works() -> None:
    nonces = DpopNonces(b"k" * 32, lifetime=60)
    assert nonces.current(1000.0) == nonces.current(1019.0)
    assert nonces.current(1000.0) != nonces.current(1021.0)
    assert nonces.accepts(nonces.current(1000.0), 1050.0)  # previous slot
    assert nonces.accepts(nonces.current(1050.0), 1000.0)  # next slot (a clock ahead)
    assert not nonces.accepts(nonces.current(1000.0), 1090.0)  # two slots on
    assert not nonces.accepts(None, 1000.0)
    assert not nonces.accepts("x" * 65, 1000.0)


def test_garbage_is_refused_without_exception_leaks() -> None:
    for value in ("", "a.b", "a.b.c", "é.é.é", "x" * 5000, ".".join(["eyJ9"] * 3)):
        refused(value, "malformed")


def test_a_cached_key_is_only_used_for_the_same_members() -> None:
    # Keys are parsed once per JWK: the same key with another `alg` member must still be
    # judged on its own (RFC 7517 §4.4), not served from the cache.
    key = DeviceKey()
    check(key.proof("POST", TOKEN_URI))
    refused(key.proof("POST", TOKEN_URI, header={"jwk": dict(key.jwk(), alg="ES384")}), "alg")
    leaked = dict(key.jwk(), d="AAAA")
    refused(key.proof("POST", TOKEN_URI, header={"jwk": leaked}), "jwk")
