"""Per-request device assertions at the gateway, on routes whose ``device`` policy has
``require_assertion``: the request carries a ``Device-Assertion`` (an App Attest
assertion or a Play Integrity token) over its method, target, body and a fresh
challenge (``bastion.device.binding``), made by the device its access token is bound
to.

The device is the one the token's ``cnf.jkt`` (RFC 9449 §6.1, proved by the DPoP step
before this one) is bound to, and the assertion must be that device's: an assertion
proves that a genuine app made this request, and without the binding a script holding
a token would send assertions borrowed from someone else's genuine device. So a bearer
token, which names no key, is refused (``not_dpop_bound``), and so is a DPoP key bound
to no attested device (``unknown_device``).

The policy's ``cohort`` and ``mode`` apply here as in the risk step: a request outside
the cohort (``policies.admitted``, with the identifiers the risk step uses) is not asked
for an assertion at all; in ``mode = "audit"`` a missing or refused assertion is
recorded (``device.assertion``, outcome ``success``, ``decided`` ``refused``, the
reason) and the request goes on to the risk step, which judges the caller's device as
usual.

The body is read here (within the route's size and time limits) because the assertion
signs it; input validation then checks the same bytes. The header is the gateway's
(``GATEWAY_OWNED_HEADERS``): upstreams never receive it. A refusal is 403 problem
details, audited as ``device.assertion`` with its reason. When the trust data cannot be
had (Google unreachable), the exchange records the outage and the caller's last known
device for the risk step, which applies the policy's outage fallback; only an enforced
policy whose fallback is ``deny`` is refused here (503).
"""

from __future__ import annotations

from bastion.device.binding import request_target
from bastion.device.policies import admitted
from bastion.device.records import Device
from bastion.device.settings import PolicySettings
from bastion.errors import DeviceRefused, DeviceUnverifiable
from bastion.gateway.caller import BASTION, Caller, bound_key, principal
from bastion.gateway.exchange import Exchange, read_body
from bastion.gateway.routes import BODY_METHODS, Route
from bastion.gateway.steps.base import Step

HEADER = b"device-assertion"
NOT_DPOP_BOUND = "This route needs an access token bound to the app's DPoP key."


class DeviceAssertion(Step):
    name = "device assertion"

    @classmethod
    def wanted(cls, route: Route) -> bool:
        policy = route.settings.device
        return policy is not None and policy.require_assertion

    async def request(self, ex: Exchange) -> None:
        trust = self.services.device
        assert trust is not None  # built with every gateway
        policy = ex.route.settings.device
        assert policy is not None
        caller = ex.caller
        if caller is None or caller.client_id is None or caller.issuer != BASTION:
            # A public route, a token naming no client, or another issuer's client (whose
            # ids are not Bastion's declared apps): no app to hold to account.
            self._refuse(ex, policy, ex.who, "no_client")
            return
        jkt = bound_key(caller)
        device = None if jkt is None else await trust.devices.by_jkt(jkt)
        if not self._admitted(policy, caller, device):
            return
        if jkt is None:
            self._refuse(ex, policy, caller.client_id, "not_dpop_bound", NOT_DPOP_BOUND)
            return
        if ex.method in BODY_METHODS and ex.body is None:
            ex.body = await read_body(
                ex.receive,
                ex.route.max_body,
                ex.headers.get("content-length"),
                self.services.body_timeout,
            )
        try:
            ex.device = await trust.verify_assertion(
                client_id=caller.client_id,
                method=ex.method,
                target=request_target(ex.scope),
                body=ex.body or b"",
                header_values=[value for name, value in ex.scope["headers"] if name == HEADER],
                device=device,
                mode=policy.mode,
            )
        except DeviceRefused:
            if policy.mode != "audit":
                raise
        except DeviceUnverifiable:
            if policy.outage == "deny" and policy.mode != "audit":
                raise
            ex.device, ex.device_outage = device, True

    def _refuse(
        self,
        ex: Exchange,
        policy: PolicySettings,
        client_id: str,
        reason: str,
        detail: str | None = None,
    ) -> None:
        trust = self.services.device
        assert trust is not None
        try:
            trust.refuse_assertion(client_id, reason, detail, policy.mode)
        except DeviceRefused:
            if policy.mode != "audit":
                raise

    def _admitted(self, policy: PolicySettings, caller: Caller, device: Device | None) -> bool:
        """Whether the request is in the policy's cohort, judged on what the risk step
        judges it on: the user (none for a client's own token, RFC 9068 §2.2), else
        the device; the app's client (an installation's client counts as its app's);
        the device's app version."""
        trust = self.services.device
        assert trust is not None
        cohort = None if policy.cohort is None else trust.settings.cohorts.get(policy.cohort)
        assert caller.client_id is not None
        client_id = caller.client_id
        if device is not None and device.registered_client_id == client_id:
            client_id = device.client_id
        return admitted(
            cohort,
            user_id=None
            if caller.subject == caller.client_id
            else principal(caller, caller.subject),
            device_id=None if device is None else device.device_id,
            client_id=client_id,
            app_version=None if device is None else device.app_version,
        )
