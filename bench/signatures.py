"""Signature checks per token: joserfc against ``cryptography`` called directly.

For each algorithm a gateway sees (ES256, Ed25519, RS256), one token is checked again
and again, as the gateway does on a verified-token cache miss:

- ``joserfc``: ``jwt.decode`` with the key set imported once (what the gateway did);
- ``bastion``: ``bastion.crypto.jws.parse_compact`` then ``verify`` (what it does now:
  header rules, alg allowlist, kid and key-type checks, then OpenSSL);
- ``raw``: the bare ``cryptography`` verify of the same signature, the floor;
- ``import``: parsing the one-key JWKS (what each miss paid for Bastion's own keys).

Command: ``python -m bench.signatures`` (about 10 seconds).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwk, jwt
from joserfc.jwk import KeySet

from bastion.crypto import jws
from bastion.crypto.jws import PublicKeys

CLAIMS = {"iss": "https://issuer.test", "sub": "user-1", "aud": "api", "exp": 2_000_000_000}
ROUNDS = 3_000


def per_call(call: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Microseconds per call, best of three."""
    call()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            call()
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    return best


def _key(alg: str) -> Any:
    if alg == "RS256":
        return jwk.RSAKey.generate_key(2048)
    if alg == "ES256":
        return jwk.ECKey.generate_key("P-256")
    return jwk.OKPKey.generate_key("Ed25519")


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"{'alg':8} {'joserfc':>9} {'bastion':>9} {'raw':>9} {'import':>9}   (µs per token)")
    for alg in ("ES256", "Ed25519", "RS256"):
        key = _key(alg)
        token = jwt.encode({"alg": alg, "typ": "JWT"}, CLAIMS, key, algorithms=[alg])
        document = {"keys": [key.as_dict(private=False)]}
        key_set = KeySet.import_key_set(document)  # type: ignore[arg-type]
        public = PublicKeys.from_jwks(document)
        joserfc = per_call(lambda: jwt.decode(token, key_set, algorithms=[alg]))  # noqa: B023
        ours = per_call(lambda: jws.verify(jws.parse_compact(token), public, (alg,)))  # noqa: B023
        compact = jws.parse_compact(token)
        data, signature, bare = compact.signing_input, compact.signature, public.keys[0].key
        raw: Callable[[], object]
        if alg == "ES256":
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            raw = lambda: bare.verify(der, data, ec.ECDSA(hashes.SHA256()))  # noqa: B023, E731
        elif alg == "RS256":
            raw = lambda: bare.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())  # noqa: B023, E731
        else:
            raw = lambda: bare.verify(signature, data)  # noqa: B023, E731
        floor = per_call(raw)
        imported = per_call(lambda: KeySet.import_key_set(document), 500)  # type: ignore[arg-type]  # noqa: B023
        print(f"{alg:8} {joserfc:9.1f} {ours:9.1f} {floor:9.1f} {imported:9.1f}")


if __name__ == "__main__":
    main()
