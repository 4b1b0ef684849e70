"""Sender-constrained tokens at the gateway (RFC 9449 §7): a token bound to a key
(``cnf.jkt``) is accepted only under the DPoP scheme with a fresh proof by that key,
made for this request and naming this token (``ath``).

The verified-token cache keeps a token's claims, never a proof: every request's proof
is checked here and used up (its ``jti`` remembered in hot state, shared by every
worker through Redis), so a cached token can be neither used without a proof nor with
a replayed one. Refusals answer 401 with a ``DPoP`` challenge (§7.1) and are audited.
"""

from __future__ import annotations

from bastion.errors import DpopRefused
from bastion.gateway.caller import bound_key
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step
from bastion.oauth.dpop import DpopError


class SenderConstraint(Step):
    name = "dpop"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        # Any token may be bound, so every route with a caller checks how it was sent.
        return not route.settings.is_public

    async def request(self, ex: Exchange) -> None:
        caller, presented = ex.caller, ex.presented
        # Authentication ran first on every route this step is on.
        assert caller is not None
        assert presented is not None
        scheme, token = presented
        dpop = self.services.dpop
        jkt = bound_key(caller)
        actor = f"client:{caller.client_id}" if caller.client_id else ex.who
        dpop.count(caller.client_id, scheme)
        # The path as sent (percent-encoding intact), which is what the app signed.
        raw = ex.scope.get("raw_path") or ex.scope["path"].encode()
        uri = self.services.public_origin + raw.decode("latin-1")
        if scheme == "bearer":
            if jkt is not None:
                # §7.2: a bound token sent as a bearer token is a downgrade.
                self._refuse(
                    actor, "bearer_downgrade", uri, "This access token must be used with DPoP."
                )
            if ex.route.settings.require_dpop:
                self._refuse(
                    actor, "bearer_token", uri, "This route needs a DPoP-bound access token."
                )
            return
        if jkt is None:
            self._refuse(actor, "unbound_token", uri, "This access token is not DPoP-bound.")
        values = [v.decode("latin-1") for k, v in ex.scope["headers"] if k == b"dpop"]
        try:
            proof = await dpop.check(
                values,
                method=ex.method,
                uri=uri,
                actor=actor,
                access_token=token,
                nonce=dpop.settings.require_nonce,
            )
        except DpopError as exc:
            nonce = dpop.current_nonce() if exc.error == "use_dpop_nonce" else None
            raise DpopRefused(_DETAILS[exc.error], exc.error, dpop.algs, nonce) from exc
        if proof.jkt != jkt:
            # §7.1: the proof must be made with the key the token is bound to.
            dpop.refused(actor, "wrong_key", uri)
            raise DpopRefused(_DETAILS["invalid_dpop_proof"], "invalid_dpop_proof", dpop.algs)

    def _refuse(self, actor: str, reason: str, uri: str, detail: str) -> None:
        self.services.dpop.refused(actor, reason, uri)
        raise DpopRefused(detail, "invalid_token", self.services.dpop.algs)


# Client-safe words: what failed, never the proof's own content.
_DETAILS = {
    "invalid_dpop_proof": "The DPoP proof is invalid.",
    "use_dpop_nonce": "A DPoP nonce from this server is required.",
}
