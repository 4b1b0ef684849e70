"""Key ring lifecycle (pure): publish before signing, keep retired keys until tokens expire."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.crypto import jws
from bastion.crypto.jws import PublicKeys
from bastion.crypto.keyring import Algorithm, KeyRing, KeyState, generate_key
from bastion.errors import KeyNotFound, KeyRingError

T0 = 1_700_000_000.0
AHEAD = 600.0
LIFETIME = 3600.0
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def first_ring() -> KeyRing:
    return KeyRing([generate_key("ES256", T0, T0)], LIFETIME)


def test_empty_ring_cannot_sign() -> None:
    with pytest.raises(KeyRingError, match="no active signing key"):
        KeyRing([], LIFETIME).signing_key(T0)


def test_rotation_of_an_empty_ring_signs_at_once() -> None:
    rotation = KeyRing([], LIFETIME).plan_rotation(T0, "ES256", AHEAD)
    assert rotation.new_key.activates_at == T0


def test_new_key_is_published_before_it_signs() -> None:
    ring = first_ring()
    old = ring.signing_key(T0)
    rotation = ring.plan_rotation(T0 + 10, "ES256", AHEAD)
    ring = ring.with_changes([rotation.new_key], rotation.retirements)
    new = rotation.new_key

    # Until activation: both published, the old key signs.
    published = {k.kid for k in ring.published(T0 + 10)}
    assert published == {old.kid, new.kid}
    assert ring.state(new, T0 + 10) is KeyState.NEXT
    assert ring.signing_key(T0 + 10 + AHEAD - 1).kid == old.kid

    # From activation: the new key signs, the old one is retired but still published.
    at = T0 + 10 + AHEAD
    assert ring.signing_key(at).kid == new.kid
    assert ring.state(ring.get(old.kid), at) is KeyState.RETIRED
    assert old.kid in {k.kid for k in ring.published(at)}

    # A token the old key signed just before retiring expires at most LIFETIME later.
    assert old.kid in {k.kid for k in ring.published(at + LIFETIME - 1)}
    assert old.kid not in {k.kid for k in ring.published(at + LIFETIME)}
    assert ring.state(ring.get(old.kid), at + LIFETIME) is KeyState.EXPIRED


def test_second_rotation_supersedes_a_waiting_key() -> None:
    ring = first_ring()
    r1 = ring.plan_rotation(T0 + 1, "ES256", AHEAD)
    ring = ring.with_changes([r1.new_key], r1.retirements)
    r2 = ring.plan_rotation(T0 + 2, "Ed25519", AHEAD)
    ring = ring.with_changes([r2.new_key], r2.retirements)
    assert ring.state(ring.get(r1.new_key.kid), T0 + 2) is KeyState.RETIRED
    assert ring.signing_key(T0 + 2 + AHEAD).kid == r2.new_key.kid


def test_immediate_rotation_signs_now() -> None:
    ring = first_ring()
    rotation = ring.plan_rotation(T0 + 5, "ES256", AHEAD, immediate=True)
    ring = ring.with_changes([rotation.new_key], rotation.retirements)
    assert ring.signing_key(T0 + 5).kid == rotation.new_key.kid


def test_retiring_the_only_signer_needs_force() -> None:
    ring = first_ring()
    kid = ring.signing_key(T0).kid
    with pytest.raises(KeyRingError, match="only active signing key"):
        ring.plan_retirement(kid, T0 + 1, unpublish=False, force=False)
    assert ring.plan_retirement(kid, T0 + 1, unpublish=False, force=True) == T0 + 1


def test_unpublish_drops_a_compromised_key_at_once() -> None:
    ring = first_ring()
    kid = ring.signing_key(T0).kid
    retired_at = ring.plan_retirement(kid, T0 + 1, unpublish=True, force=True)
    ring = ring.with_changes([], {kid: retired_at})
    assert ring.published(T0 + 1) == []


def test_unknown_kid() -> None:
    with pytest.raises(KeyNotFound):
        first_ring().plan_retirement("nope", T0, unpublish=False, force=False)


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_jwks_holds_public_members_only(alg: str) -> None:
    """RFC 7517 §4, RFC 7518 §6.2.2 / RFC 8037 §2: "d" and other private members stay home."""
    ring = KeyRing([generate_key(alg, T0, T0)], LIFETIME)  # type: ignore[arg-type]
    (jwk,) = ring.jwks(T0)["keys"]
    assert PRIVATE_MEMBERS.isdisjoint(jwk)
    assert jwk["use"] == "sig"
    assert jwk["alg"] == alg
    assert jwk["kty"] == ("EC" if alg == "ES256" else "OKP")


def test_kid_is_the_rfc7638_thumbprint() -> None:
    from joserfc.jwk import ECKey

    key = generate_key("ES256", T0, T0)
    public = ECKey.import_key(
        {k: v for k, v in key.public_jwk().items() if k in ("kty", "crv", "x", "y")}
    )
    assert key.kid == public.thumbprint()


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
@pytest.mark.parametrize("typ", ["at+jwt", "JWT"])
def test_a_key_signs_what_joserfc_would_and_both_verify_it(alg: Algorithm, typ: str) -> None:
    """RFC 7515 §5.1 / RFC 9068 §2.1: the direct signer writes joserfc's header and payload
    byte for byte (``typ``, ``alg``, ``kid``); joserfc and Bastion's own checks verify it,
    and a changed byte fails both."""
    key = generate_key(alg, T0, T0)
    claims = {"iss": "https://as.test", "sub": "ü-1", "aud": ["api"], "exp": 2_000_000_000}
    token = key.sign(claims, typ)
    header = {"alg": alg, "kid": key.kid, "typ": typ}
    reference = jwt.encode(header, dict(claims), key.jose_key(), algorithms=[alg])
    assert token.split(".")[:2] == reference.split(".")[:2]
    public = KeySet.import_key_set({"keys": [key.public_jwk()]})
    decoded = jwt.decode(token, public, algorithms=[alg])
    assert decoded.header == {"typ": typ, "alg": alg, "kid": key.kid}
    assert decoded.claims == claims
    keys = PublicKeys.from_jwks({"keys": [key.public_jwk()]})
    jws.verify(jws.parse_compact(token), keys, [alg])
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BA'}"
    with pytest.raises(ValueError, match="bad signature"):
        jws.verify(jws.parse_compact(forged), keys, [alg])
    with pytest.raises(JoseError):
        jwt.decode(forged, public, algorithms=[alg])
