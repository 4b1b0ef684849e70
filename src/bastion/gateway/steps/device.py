"""Device risk on a gateway route with a ``device`` table (``bastion.device.policies``).

The caller's device is the one the assertion step verified (routes with
``require_assertion``), else the one its token's DPoP key (``cnf.jkt``, proved by the
DPoP step before this one) is bound to; a bearer token alone has none. When the
assertion step could not verify the device (the trust data is unavailable), the request
is judged as an outage with the device's last known record. What each answer does here:

- ``allow``: the request goes on;
- ``limit``: the request goes on only if the token holds no scope beyond the policy's
  ``limit_scopes`` (a token narrowed at issuance); otherwise 403 with an RFC 6750
  ``insufficient_scope`` challenge naming ``limit_scopes``;
- ``step_up``: 401 with the RFC 9470 challenge (``WWW-Authenticate: Bearer
  error="insufficient_user_authentication"``, ``acr_values`` = the policy's
  ``step_up_acr``, by default ``urn:bastion:acr:mfa``). A token whose sign-in already
  reached that level has stepped up: it passes, or the app would be asked forever;
- ``deny``: 403 problem.

In audit mode the decision is recorded and nothing is enforced. An outage of the device
store or hot state never answers 500: the policy's ``outage`` fallback decides.
"""

from __future__ import annotations

from bastion.accounts.levels import satisfies
from bastion.accounts.stepup import Requirement, challenge_header
from bastion.device.risk import Action
from bastion.device.signals import RiskRequest
from bastion.errors import Forbidden, StepUpRequired
from bastion.gateway.caller import REALM, bound_key, principal
from bastion.gateway.exchange import Exchange
from bastion.gateway.routes import Route
from bastion.gateway.steps.base import Step
from bastion.web.context import correlation_id


class DeviceRisk(Step):
    name = "device risk"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        return route.settings.device is not None

    async def request(self, ex: Exchange) -> None:
        caller, policy, risk = ex.caller, ex.route.settings.device, self.services.risk
        # Authentication and the DPoP step ran first; routes with a device table are
        # never public (RouteSettings refuses it), and wiring always builds the judge.
        assert caller is not None
        assert policy is not None
        assert risk is not None
        jkt = bound_key(caller)
        address = ex.scope.get("client")
        # A client's own token (client credentials) names the client as its subject
        # (RFC 9068 §2.2): there is no user to be new on the device or to have failed.
        user = None if caller.subject == caller.client_id else principal(caller, caller.subject)
        judgement = await risk.judge(
            f"route:{ex.route.label}",
            policy,
            RiskRequest(
                user_id=user,
                client_id=caller.client_id,
                jkt=jkt,
                bound=jkt is not None,
                ip=address[0] if address else None,
                # Set by the assertion step on routes that require assertions.
                known=ex.device,
                outage=ex.device_outage,
            ),
            correlation_id=correlation_id(ex.scope),
        )
        if judgement is None:
            return
        enforced = judgement.enforced
        if enforced is Action.STEP_UP and satisfies(caller.claims.get("acr"), policy.step_up_acr):
            return
        if enforced is Action.LIMIT and caller.scopes <= set(policy.limit_scopes):
            return
        if enforced is Action.LIMIT:
            scope = " ".join(policy.limit_scopes)
            raise Forbidden(
                "This device may only make requests with a narrower access token.",
                "device_limited",
                headers={
                    "www-authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'
                },
            )
        if enforced is Action.STEP_UP:
            raise StepUpRequired(
                "A stronger sign-in is required on this device.",
                "device_step_up",
                headers={
                    "www-authenticate": challenge_header(
                        Requirement(acr=policy.step_up_acr),
                        "this device needs a stronger authentication",
                    )
                },
            )
        if enforced is Action.DENY:
            raise Forbidden("This device cannot make this request.", "device_denied")
