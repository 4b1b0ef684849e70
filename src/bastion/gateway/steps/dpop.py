"""Sender-constrained tokens at the gateway (RFC 9449 §7): a token bound to a key
(``cnf.jkt``) is accepted only under the DPoP scheme with a fresh proof by that key,
made for this request and naming this token (``ath``).

The verified-token cache keeps a token's claims, never a proof: every request's proof
is checked here and used up (its ``jti`` remembered in hot state, shared by every
worker through Redis), so a cached token can be neither used without a proof nor with
a replayed one. Refusals answer 401 with a ``DPoP`` challenge (§7.1) and are audited.
"""

from __future__ import annotations

from bastion.errors import DpopError, DpopRefused
from bastion.gateway.caller import BASTION, Caller, bound_key, token_hash
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step


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
        dpop.count(caller.client_id, scheme)
        unbound_bearer = scheme == "bearer" and bound_key(caller) is None
        if unbound_bearer and not ex.route.settings.require_dpop:
            return  # the common case, decided before any other work
        # The path as sent (percent-encoding intact), which is what the app signed.
        raw = ex.scope.get("raw_path") or ex.scope["path"].encode()
        uri = self.services.public_origin + raw.decode("latin-1")
        if unbound_bearer:
            dpop.refused(f"client:{caller.client_id}", "bearer_token", uri)
            raise DpopRefused(
                "This route needs a DPoP-bound access token.",
                "invalid_token",
                dpop.challenge("invalid_token"),
            )
        try:
            await dpop.check_presentation(
                scheme=scheme,
                token=token,
                claims=caller.claims,
                values=[v.decode("latin-1") for k, v in ex.scope["headers"] if k == b"dpop"],
                method=ex.method,
                uri=uri,
                nonce=await self._nonce_required(caller),
                token_hash=token_hash(caller, token),
            )
        except DpopError as exc:
            raise DpopRefused(_DETAILS[exc.error], exc.error, dpop.challenge(exc.error)) from exc

    async def _nonce_required(self, caller: Caller) -> bool:
        dpop = self.services.dpop
        if dpop.settings.require_nonce:
            return True
        if caller.issuer != BASTION or caller.client_id is None:
            return False  # another issuer's clients are not Bastion's to configure
        return await dpop.nonce_required_for(caller.client_id)


# Client-safe words: what failed, never the proof's own content.
_DETAILS = {
    "invalid_token": "This access token cannot be used this way.",
    "invalid_dpop_proof": "The DPoP proof is invalid.",
    "use_dpop_nonce": "A DPoP nonce from this server is required.",
}
