"""DPoP proofs (RFC 9449): the checks of §4.3, as pure functions.

A DPoP proof is a JWT the app signs with a key that never leaves the device; the
server checks it on every request that presents a sender-constrained token, so a token
copied off the phone is useless without that key. What is checked here needs no
store: the proof's form, its signature by the key it carries, that it was made for this
request (``htm``/``htu``) and recently (``iat``), that it names the access token it
travels with (``ath``) and the server's nonce when one is asked for. That a ``jti`` is
used once is the caller's job (``dpop_replay``), since it needs a store shared by every
process.

Every refusal is a ``DpopError`` whose ``reason`` is a short fixed word for the audit
trail and whose ``error`` is the RFC 9449 code the client sees: ``invalid_dpop_proof``,
or ``use_dpop_nonce`` when only the nonce is missing or stale (§8, §9).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from bastion.crypto import jws
from bastion.errors import DpopError

# RFC 9449 §4.2: a proof's media type. Media types compare case-insensitively.
PROOF_TYPE = "dpop+jwt"
# Asymmetric algorithms only (§4.3 point 5): never "none", never an HMAC, whose "key"
# would have to be shared with the server and so could not stay on the device.
SUPPORTED_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "PS256",
    "PS384",
    "PS512",
    "RS256",
    "RS384",
    "RS512",
)
# RSA keys below 2048 bits are refused (RFC 7518 §3.3 requires at least that).
MIN_RSA_BITS = 2048
# jti is meant to be random (§4.2: 96 bits or more); a bound keeps the replay keys
# small and a hostile proof cheap to refuse.
MAX_JTI_LENGTH = 256
MAX_URI_LENGTH = 2048
MAX_PROOF_HEADER_BYTES = 2048
# Members that only a private JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# The members a thumbprint is computed over, per key type (RFC 7638 §3.2).
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 §2.3: unreserved characters, which percent-encoding normalisation decodes.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# A URI is printable ASCII: spaces, controls and anything beyond ASCII are refused.
_NOT_URI = re.compile(r"[^\x21-\x7e]")
# Judged proof headers by their encoded form: an app signs every proof with the same key,
# so decoding the header and importing its key (most of a proof's cost beside the
# signature) is done once per key.
HEADER_CACHE_SIZE = 4_096
# Normalised URIs: the same few endpoints on every request (bounded; errors never kept).
URI_CACHE_SIZE = 1_024
# §4.1: the DPoP header field is one JWT, so one token68-shaped value.
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Whether a proof's ``nonce`` (None when it has none) is one the server accepts at ``now``.
NonceCheck = Callable[[str | None, float], bool]


@dataclass(frozen=True)
class ProofRules:
    """What a proof must satisfy besides its form and signature."""

    algorithms: frozenset[str]
    # How old (``max_age``) and how far in the future (``leeway``, for clock skew) a
    # proof's ``iat`` may be, in seconds (§11.1).
    max_age: float
    leeway: float

    @property
    def window(self) -> float:
        """How long a ``jti`` must be remembered: any proof older is refused anyway."""
        return self.max_age + self.leeway


class DpopProof(NamedTuple):
    """A proof that passed every check of §4.3 but replay, which the caller does.
    (A named tuple: made on every sender-constrained request, and a frozen dataclass
    costs several times more to build.)"""

    jkt: str  # RFC 7638 thumbprint of the proof's key: what tokens are bound to (§6)
    jti: str
    iat: float
    htm: str
    htu: str  # normalised
    nonce: str | None


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url: the ``jkt`` of §6.1."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError("unsupported key type")
    required = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"the key has no {name}")
        required[name] = value
    # §3.3: the required members only, in lexicographic order, no whitespace.
    canonical = orjson.dumps(required, option=orjson.OPT_SORT_KEYS)
    return jws.b64url(hashlib.sha256(canonical).digest())


def bound_key(claims: Mapping[str, Any]) -> str | None:
    """The RFC 7638 thumbprint a token is bound to (``cnf.jkt``, RFC 9449 §6.1), or None."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


def access_token_hash(token: str) -> str:
    """``ath`` (§4.2): base64url of the SHA-256 of the access token's ASCII bytes."""
    return jws.b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


@functools.lru_cache(maxsize=URI_CACHE_SIZE)
def normalize_uri(uri: str) -> str:
    """A URI as §4.3 point 9 compares ``htu``: query and fragment dropped, then the
    syntax-based and scheme-based normalisations of RFC 3986 §6.2.2 and §6.2.3 (scheme
    and host in lower case, the default port and dot segments removed, percent-encoding
    in upper case with unreserved characters decoded, an empty path made "/").
    ``ValueError`` for anything that is not an absolute http(s) URI."""
    if len(uri) > MAX_URI_LENGTH or _NOT_URI.search(uri):
        raise ValueError("not a URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
        raise ValueError("not an absolute http(s) URI without user information")
    host = parts.hostname
    port = parts.port  # ValueError for a port that is not a number in range
    if not host:
        raise ValueError("no host")
    if ":" in host:
        host = f"[{host}]"
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_PERCENT.sub(_percent, parts.path)) or "/"
    return f"{scheme}://{authority}{path}"


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4, on a path that always starts with "/" or is empty.
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        if segment == "..":
            if len(output) > 0:
                output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "".join(f"/{segment}" for segment in output)


def check_proof(
    values: Collection[str],
    *,
    method: str,
    uri: str,
    now: float,
    rules: ProofRules,
    access_token: str | None = None,
    token_hash: str | None = None,
    nonce: NonceCheck | None = None,
) -> DpopProof:
    """Check the ``DpopProof`` in the request's ``DPoP`` header field values (§4.3).

    ``uri`` is the request's target as the server is reached from outside (its public
    origin and path); ``access_token``, when the request carries one (§7.1), must be the
    one the proof names in ``ath`` (``token_hash``: its ``access_token_hash`` when the
    caller has it already); ``nonce``, when the server asks for nonces, tells a fresh one
    from a stale one (§8, §9)."""
    if not values:
        raise DpopError("missing", "a DPoP proof is required")
    if len(values) != 1:
        raise DpopError("malformed", "exactly one DPoP header field is required")
    (value,) = values
    value = value.strip(" \t")
    try:
        # A proof's header holds the whole public key: room for RSA up to 4096 bits.
        head, body, tail = jws.split_compact(value, max_header=MAX_PROOF_HEADER_BYTES)
        alg, key, jkt = _proof_header(head, rules.algorithms)
        claims = jws.json_segment(body, "payload")
        signature = jws.signature_bytes(tail)
    except ValueError as exc:
        raise DpopError("malformed", "the DPoP proof is not a well-formed JWT") from exc
    if not jws.signed_by(key, alg, value[: len(head) + 1 + len(body)].encode(), signature):
        raise DpopError("signature", "the DPoP proof's signature does not verify")
    jti = _string_claim(claims, "jti", MAX_JTI_LENGTH)
    htm = _string_claim(claims, "htm", 32)
    htu = _string_claim(claims, "htu", MAX_URI_LENGTH)
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise DpopError("malformed", "the DPoP proof has no numeric iat")
    if not _METHOD.fullmatch(htm) or htm != method:
        raise DpopError("htm", "the DPoP proof was made for another HTTP method")
    try:
        normalized = normalize_uri(htu)
        matches = normalized == normalize_uri(uri)
    except ValueError:
        matches = False
    if not matches:
        raise DpopError("htu", "the DPoP proof was made for another URI")
    if iat < now - rules.max_age:
        raise DpopError("stale", "the DPoP proof is too old")
    if iat > now + rules.leeway:
        raise DpopError("stale", "the DPoP proof is dated in the future")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise DpopError("ath", "the DPoP proof does not name the access token (ath)")
        expected = token_hash or access_token_hash(access_token)
        if not hmac.compare_digest(ath.encode(), expected.encode()):
            raise DpopError("ath", "the DPoP proof was made for another access token")
    proof_nonce = claims.get("nonce")
    if proof_nonce is not None and not isinstance(proof_nonce, str):
        raise DpopError("malformed", "the DPoP proof's nonce is not a string")
    if nonce is not None and not nonce(proof_nonce, now):
        raise DpopError("nonce", "a fresh DPoP nonce is required", "use_dpop_nonce")
    return DpopProof(jkt, jti, float(iat), htm, normalized, proof_nonce)


@functools.lru_cache(maxsize=HEADER_CACHE_SIZE)
def _proof_header(segment: str, algorithms: frozenset[str]) -> tuple[str, jws.PublicKey, str]:
    """The algorithm, parsed key and thumbprint of a proof's encoded header, once every
    rule on the header has passed. An app signs every proof with the same key and so
    sends the same header each time: it is decoded and judged once (keyed by its exact
    bytes and the allowed algorithms; a header that fails is never kept)."""
    header = jws.json_segment(segment, "header")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != PROOF_TYPE:
        raise DpopError("typ", "the DPoP proof's typ is not dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise DpopError("alg", "the DPoP proof's algorithm is not supported")
    if "b64" in header:
        # RFC 7797's unencoded payload has no place in a JWT (RFC 7797 §7).
        raise DpopError("malformed", "the DPoP proof's payload must be base64url-encoded")
    if not jws.header_members_allowed(header):
        # Only JOSE's registered members, and no crit: a proof needs no extension.
        raise DpopError("malformed", "the DPoP proof's header has unknown or critical members")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DpopError("jwk", "the DPoP proof carries no public key (jwk)")
    if _PRIVATE_MEMBERS & jwk.keys():
        # §4.3 point 7: a private key in the header means it has left the device.
        raise DpopError("jwk", "the DPoP proof's jwk holds private key material")
    try:
        jkt = thumbprint(jwk)
        if jwk["kty"] == "RSA":
            _check_rsa(jwk)
        key = jws.public_key(jwk)
    except ValueError as exc:
        raise DpopError("jwk", "the DPoP proof's jwk is not a usable public key") from exc
    if key.kind == "RSA" and key.key.key_size < MIN_RSA_BITS:
        raise DpopError("jwk", "the DPoP proof's jwk is not a usable public key")
    if not jws.key_fits(key, alg):
        # An EC key claiming RS256, say: algorithm confusion.
        raise DpopError("alg", "the DPoP proof's algorithm does not fit its key")
    return alg, key, jkt


def _check_rsa(jwk: Mapping[str, Any]) -> None:
    # Judged before parsing, so a short modulus costs nothing to refuse; and in canonical
    # form only (RFC 7518 §2: Base64urlUInt has no leading zero octet), so padding cannot
    # make a short key look long, nor one key have two thumbprints (RFC 7638).
    if len(jwk["n"]) * 6 < MIN_RSA_BITS - 7:
        raise ValueError("RSA key too short")
    for name in ("n", "e"):
        head = jws.b64decode(jwk[name][:4])
        if not head or head[0] == 0:
            raise ValueError(f"RSA {name} is not in its shortest form")


def _string_claim(claims: Mapping[str, Any], name: str, limit: int) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise DpopError("malformed", f"the DPoP proof has no valid {name}")
    return value
