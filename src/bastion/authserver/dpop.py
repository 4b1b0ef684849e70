"""DPoP (RFC 9449) as a service for the token endpoint, UserInfo and the gateway: the
pure proof checks of ``oauth.dpop`` plus what needs a store or the audit trail.

* One use per proof (§11.1): a proof is accepted only while its ``iat`` is inside the
  window, so its ``jti`` is remembered for that long in hot state, keyed by the proof's
  key and ``jti`` (hashed, so a hostile ``jti`` never becomes a store key as written).
  With Redis every worker and machine shares that memory; a store that cannot answer
  raises ``StoreUnavailable`` and the request is refused (fail closed), never accepted
  unchecked.
* Server nonces (§8, §9), when the settings or the client ask for them.
* Every refused proof is an ``oauth.dpop.refused`` audit event with its reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.authserver.registry import ClientRegistry
from bastion.authserver.settings import DpopSettings
from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.crypto.derive import derive_key
from bastion.crypto.jws import b64url
from bastion.errors import DpopError
from bastion.oauth.clients import Client
from bastion.oauth.dpop import DpopProof, ProofRules, bound_key, check_proof
from bastion.oauth.dpop_nonce import DpopNonces
from bastion.store.protocols import HotStore

NONCE_CLIENTS_CACHED = 10_000
NONCE_CLIENT_TTL = 30.0
# One more second than the window, so a proof dated exactly at its edge cannot outlive
# the memory of its jti through rounding of the store's TTL.
_MARGIN = 1.0


def replay_key(proof: DpopProof) -> str:
    digest = hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).digest()
    return f"dpop-jti:{b64url(digest)}"


async def first_use(hot: HotStore, proof: DpopProof, rules: ProofRules) -> bool:
    """True the first time this proof is seen; False for a replay."""
    return await hot.set_if_absent(replay_key(proof), b"1", ttl=rules.window + _MARGIN)


class Dpop:
    def __init__(
        self,
        settings: DpopSettings,
        master_key: bytes,
        hot: HotStore,
        audit: AuditPipeline,
        clock: Clock,
        clients: ClientRegistry,
    ) -> None:
        self.settings = settings
        self.clients = clients
        # Per client: whether it asked for nonces; a resource server asks on every
        # request, so the answer is kept briefly (a change reaches it within that time).
        self._nonce_clients: TTLCache[str, bool] = TTLCache(clock, NONCE_CLIENTS_CACHED)
        self.rules = ProofRules(
            frozenset(settings.algorithms),
            max_age=settings.proof_max_age,
            leeway=settings.proof_leeway,
        )
        self.nonces = DpopNonces(derive_key(master_key, "dpop-nonces"), settings.nonce_lifetime)
        self.hot = hot
        self.audit = audit
        self.clock = clock
        # For WWW-Authenticate (§7.1): the algorithms a client may sign proofs with.
        self.algs = " ".join(settings.algorithms)
        # Requests at the gateway per (client, scheme): how far DPoP has been adopted,
        # for the metrics area. Bounded by the clients and issuers that exist.
        self.traffic: Counter[tuple[str, str]] = Counter()

    def count(self, client_id: str | None, scheme: str) -> None:
        self.traffic[(client_id or "", scheme)] += 1

    def required(self, client: Client) -> bool:
        """Whether this client's token requests must carry a proof (§5.2)."""
        return client.dpop_bound_access_tokens or (
            client.is_public and self.settings.require_for_public_clients
        )

    def nonce_required(self, client: Client | None) -> bool:
        return self.settings.require_nonce or (client is not None and client.require_dpop_nonce)

    async def nonce_required_for(self, client_id: str) -> bool:
        """``nonce_required`` for a client known by id only (a token's ``client_id``)."""
        if self.settings.require_nonce:
            return True
        wanted = self._nonce_clients.get(client_id)
        if wanted is None:
            client = await self.clients.get(client_id)
            wanted = client is not None and client.require_dpop_nonce
            self._nonce_clients.set(client_id, wanted, self.clock.now() + NONCE_CLIENT_TTL)
        return wanted

    def current_nonce(self) -> str:
        return self.nonces.current(self.clock.now())

    def challenge(self, error: str) -> dict[str, str]:
        """The headers of a refusal under the DPoP scheme (§7.1): the error and the
        algorithms a proof may use, and the nonce to use when that is what is missing."""
        headers = {"www-authenticate": f'DPoP error="{error}", algs="{self.algs}"'}
        if error == "use_dpop_nonce":
            headers["dpop-nonce"] = self.current_nonce()
        return headers

    async def check(
        self,
        values: Collection[str],
        *,
        method: str,
        uri: str,
        actor: str,
        access_token: str | None = None,
        token_hash: str | None = None,
        nonce: bool = False,
    ) -> DpopProof:
        """The request's proof, checked and used up; ``DpopError`` (audited) otherwise."""
        try:
            proof = check_proof(
                values,
                method=method,
                uri=uri,
                now=self.clock.now(),
                rules=self.rules,
                access_token=access_token,
                token_hash=token_hash,
                nonce=self.nonces.accepts if nonce else None,
            )
            if not await first_use(self.hot, proof, self.rules):
                raise DpopError("replay", "the DPoP proof was used before")
        except DpopError as exc:
            self.refused(actor, exc.reason, uri)
            raise
        return proof

    async def check_presentation(
        self,
        *,
        scheme: str,
        token: str,
        claims: Mapping[str, Any],
        values: Collection[str],
        method: str,
        uri: str,
        nonce: bool,
        token_hash: str | None = None,
    ) -> None:
        """Return if an access token is presented as its binding requires (RFC 9449 §7):
        a bound token (``cnf.jkt``) only under the DPoP scheme with a proof by its key,
        naming it (``ath``); an unbound one only as a bearer token. ``DpopError``
        (audited) otherwise, whose ``error`` is the challenge's code. ``token_hash`` is
        the token's ``ath`` when the caller remembers it."""
        jkt = bound_key(claims)
        actor = f"client:{claims.get('client_id')}"
        if scheme == "bearer":
            if jkt is None:
                return
            # §7.2: a bound token sent as a bearer token (a downgrade) is refused.
            self.refused(actor, "bearer_downgrade", uri)
            raise DpopError(
                "bearer_downgrade", "this access token must be used with DPoP", "invalid_token"
            )
        if jkt is None:
            self.refused(actor, "unbound_token", uri)
            raise DpopError("unbound_token", "this access token is not DPoP-bound", "invalid_token")
        proof = await self.check(
            values,
            method=method,
            uri=uri,
            actor=actor,
            access_token=token,
            token_hash=token_hash,
            nonce=nonce,
        )
        if proof.jkt != jkt:
            # §7.1: the proof must be made with the key the token is bound to.
            self.refused(actor, "wrong_key", uri)
            raise DpopError("wrong_key", "the DPoP proof's key is not the token's")

    def refused(self, actor: str, reason: str, uri: str) -> None:
        self.audit.emit(
            AuditEvent(
                "oauth.dpop.refused",
                Outcome.DENIED,
                actor=actor,
                target=uri,
                details={"reason": reason},
            )
        )
