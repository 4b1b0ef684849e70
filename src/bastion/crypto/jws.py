"""Compact JWS signatures (RFC 7515 §5.1, §5.2) made and checked with ``cryptography``
called directly.

The gateway checks a token's signature on every cache miss, so this path is measured
(docs/performance.md, "Signature checks"): joserfc re-imports keys, re-parses the token
for each question asked of it and wraps every primitive; here a token is parsed once
(``parse_compact``), keys are parsed once when their set is loaded (``PublicKeys``), and
the signature goes straight to OpenSSL. The rules are joserfc's, kept on purpose:

- the header names only parameters JOSE registers for JWS, each of the right type,
  and ``crit`` lists only present, understood ones (joserfc's own header check runs);
- ``alg`` is in the caller's allowlist, which never holds ``none`` or an HMAC;
- the key is chosen by ``kid`` (a token without one is accepted only by a set of one
  key, as joserfc does), and must fit the algorithm: its type and curve, and its own
  ``alg`` member when it has one (RFC 7517 §4.4), so an RSA key never checks an ECDSA
  signature and an HMAC secret can never be a key at all;
- sizes are bounded before any decoding (header 512, payload 128,000, signature 1,024
  bytes, joserfc's limits).

Every failure is a ``ValueError`` naming the reason; callers turn it into their one
opaque error for the credential, with the reason kept in the chain for the log.

Signing (``sign_compact``) is on the token endpoint's path: it writes what joserfc's
``jwt.encode`` writes for Bastion's headers (``typ`` first, then ``alg`` and ``kid``, JSON
without spaces, base64url without padding), with a private key parsed once.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.registry import JWS_HEADER_REGISTRY

MAX_HEADER_BYTES = 512
MAX_PAYLOAD_BYTES = 128_000
MAX_SIGNATURE_BYTES = 1_024

# Three base64url segments without padding (RFC 7515 §2, §7.1): anything else, a
# whitespace or a "=" included, is refused before a byte is decoded.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_HEADER_CHECK = JWSRegistry(algorithms=None)

_SHA: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}
# The verification parameters of each algorithm, made once (they hold no state).
_ECDSA = {f"ES{bits}": ec.ECDSA(digest) for bits, digest in _SHA.items()}
_PKCS1 = padding.PKCS1v15()
_PSS = {
    f"PS{bits}": padding.PSS(padding.MGF1(digest), digest.digest_size)
    for bits, digest in _SHA.items()
}
# ECDSA: curve and the byte length of each of r and s (RFC 7518 §3.4).
_CURVES = {"ES256": ("P-256", 32), "ES384": ("P-384", 48), "ES512": ("P-521", 66)}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# Edwards curves: "Ed25519" and "Ed448" (RFC 9864) name one curve each; the older
# "EdDSA" (RFC 8037) takes either.
_EDWARDS = {"Ed25519": ("Ed25519",), "Ed448": ("Ed448",), "EdDSA": ("Ed25519", "Ed448")}


@dataclass(frozen=True)
class Compact:
    """A compact JWS taken apart, nothing verified yet."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class PublicKey:
    kid: str | None
    # "RSA", "EC" with its curve ("P-256"), or "OKP" with "Ed25519" / "Ed448".
    kind: str
    curve: str | None
    alg: str | None
    # "sig", or None when the JWK does not say (RFC 7517 §4.2).
    use: str | None
    key: Any


def _b64(segment: str) -> bytes:
    # Strict: the regular expression already limited the alphabet; padding is implied.
    # Translated as bytes: a table lookup per byte in C, where str.translate with a dict
    # costs several times more on a proof's 700 characters.
    try:
        return binascii.a2b_base64(
            segment.encode("ascii").translate(_URLSAFE) + b"=" * (-len(segment) % 4),
            strict_mode=True,
        )
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError("bad base64url") from exc


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64decode(segment: str) -> bytes:
    """Strict base64url without padding; ``ValueError`` for anything else."""
    if not _B64URL.fullmatch(segment):
        raise ValueError("bad base64url")
    return _b64(segment)


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise ValueError(f"the {what} is not a JSON object")
    return value


def split_compact(token: str, *, max_header: int = MAX_HEADER_BYTES) -> tuple[str, str, str]:
    """The three encoded segments of a compact JWS, their sizes bounded before anything
    is decoded; ``ValueError`` for anything else. ``max_header`` is larger only for tokens
    that carry their key (DPoP proofs)."""
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise ValueError("not a compact JWS")
    head, body, tail = match.groups()
    # Base64url grows by 4/3: bound the encoded sizes before decoding anything.
    if len(head) > max_header * 4 // 3 + 3:
        raise ValueError("header too large")
    if len(body) > MAX_PAYLOAD_BYTES * 4 // 3 + 3:
        raise ValueError("payload too large")
    if len(tail) > MAX_SIGNATURE_BYTES * 4 // 3 + 3:
        raise ValueError("signature too large")
    return head, body, tail


def json_segment(segment: str, what: str) -> dict[str, Any]:
    """A segment that ``split_compact`` returned, decoded as the JSON object it must be."""
    return _json_object(_b64(segment), what)


def signature_bytes(segment: str) -> bytes:
    """The signature segment that ``split_compact`` returned, decoded."""
    return _b64(segment)


def parse_compact(token: str) -> Compact:
    """Header, claims, signing input and signature of a compact JWS whose payload is a
    JSON object (a JWT), or ``ValueError``. Nothing is trusted until ``verify``."""
    head, body, tail = split_compact(token)
    header = json_segment(head, "header")
    claims = json_segment(body, "payload")
    signature = _b64(tail)
    signing_input = token[: len(head) + 1 + len(body)].encode("ascii")
    return Compact(header, claims, signing_input, signature)


class PublicKeys:
    """A verification key set, parsed once (joserfc reads the JWKs, so a malformed or
    private key is refused exactly as before) and kept as ``cryptography`` objects."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self.keys = tuple(keys)
        self._by_kid: dict[str | None, list[PublicKey]] = {}
        for key in self.keys:
            self._by_kid.setdefault(key.kid, []).append(key)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> PublicKeys:
        """Public keys of a JWKS document (``{"keys": [...]}``); ``ValueError`` when a key
        is malformed, private or symmetric."""
        try:
            key_set = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ValueError("malformed key in the key set") from exc
        return cls(_public_key(key) for key in key_set.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def candidates(self, kid: str | None) -> list[PublicKey]:
        if kid is None and len(self.keys) == 1:
            return list(self.keys)
        return self._by_kid.get(kid, [])


def _public_key(jwk: Any) -> PublicKey:
    kind = str(jwk.key_type)
    if kind not in ("RSA", "EC", "OKP") or jwk.is_private:
        raise ValueError("only public RSA, EC and OKP keys verify")
    key = jwk.public_key
    curve: str | None = None
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(key.curve.name)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        curve = "Ed25519"
    elif isinstance(key, ed448.Ed448PublicKey):
        curve = "Ed448"
    elif not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("unsupported key")
    alg = jwk.get("alg")
    use = jwk.get("use")
    kid = jwk.kid
    return PublicKey(
        kid if isinstance(kid, str) else None,
        kind,
        curve,
        alg if isinstance(alg, str) else None,
        use if isinstance(use, str) else None,
        key,
    )


def public_key(jwk: Mapping[str, Any]) -> PublicKey:
    """One JWK parsed as ``from_jwks`` parses a set's: ``ValueError`` when it is
    malformed, private or symmetric."""
    return PublicKeys.from_jwks({"keys": [dict(jwk)]}).keys[0]


def verify(compact: Compact, keys: PublicKeys, algorithms: Collection[str]) -> None:
    """Return if ``compact`` is signed by one of ``keys`` with an allowed algorithm;
    ``ValueError`` otherwise (module docstring: the rules)."""
    alg = _checked_alg(compact.header, algorithms)
    kid = compact.header.get("kid")
    fitting = [key for key in keys.candidates(kid) if key_fits(key, alg)]
    if not fitting:
        raise ValueError("no key for this kid and algorithm")
    for key in fitting:
        if _verified(key, alg, compact.signing_input, compact.signature):
            return
    raise ValueError("bad signature")


def signed_by(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``signing_input`` was made by ``key`` with ``alg``, an
    algorithm the caller allowed and checked with ``key_fits`` (a token that carries its
    own key, as a DPoP proof does, has its header judged by its own rules)."""
    return _verified(key, alg, signing_input, signature)


def _checked_alg(header: dict[str, Any], algorithms: Collection[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise ValueError("algorithm not allowed")
    try:
        _HEADER_CHECK.check_header(header)
    except JoseError as exc:
        raise ValueError(f"header refused: {exc.error}") from exc
    return alg


def header_members_allowed(header: Mapping[str, Any]) -> bool:
    """Whether a header names only the parameters JOSE registers for JWS (RFC 7515 §4.1),
    as joserfc's strict check requires, without ``crit``: a token that must be
    understood by extensions this server does not implement is refused (§4.1.11)."""
    return "crit" not in header and header.keys() <= _JWS_HEADER_MEMBERS


_JWS_HEADER_MEMBERS = frozenset(JWS_HEADER_REGISTRY)


def key_fits(key: PublicKey, alg: str) -> bool:
    """Whether ``key`` may check a signature made with ``alg``: its type and curve, and
    its own ``use`` and ``alg`` members when it has them."""
    if key.use not in (None, "sig") or (key.alg is not None and key.alg != alg):
        return False
    family = alg[:2]
    if family in ("RS", "PS"):
        return key.kind == "RSA" and alg[2:] in _SHA
    if family == "ES" and alg in _CURVES:
        return key.kind == "EC" and key.curve == _CURVES[alg][0]
    return key.kind == "OKP" and key.curve in _EDWARDS.get(alg, ())


def _verified(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    public = key.key
    try:
        if alg in _CURVES:
            size = _CURVES[alg][1]
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            public.verify(encode_dss_signature(r, s), data, _ECDSA[alg])
        elif alg.startswith("RS"):
            public.verify(signature, data, _PKCS1, _SHA[alg[2:]])
        elif alg.startswith("PS"):
            public.verify(signature, data, _PSS[alg], _SHA[alg[2:]])
        else:
            public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return (
        binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")
    )


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def header_segment(alg: str, kid: str, typ: str) -> str:
    """The encoded protected header, in joserfc's order: ``typ``, ``alg``, ``kid``."""
    return b64url(orjson.dumps({"typ": typ, "alg": alg, "kid": kid}))


def sign_compact(header: str, claims: Mapping[str, Any], key: Any, alg: str) -> str:
    """A compact JWS of ``claims`` under the encoded ``header`` (``header_segment``),
    signed by a ``cryptography`` private key: ES256/384/512 as the raw ``r || s`` of
    RFC 7518 §3.4, Ed25519 and EdDSA as the key signs (RFC 8037 §3.1)."""
    signing_input = f"{header}.{b64url(orjson.dumps(claims))}"
    data = signing_input.encode("ascii")
    if alg in _CURVES:
        size = _CURVES[alg][1]
        r, s = decode_dss_signature(key.sign(data, _ECDSA[alg]))
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    elif alg in _EDWARDS:
        signature = key.sign(data)
    else:
        raise ValueError(f"cannot sign with {alg}")
    return f"{signing_input}.{b64url(signature)}"
