"""Per-request device assertions at the gateway, on routes whose ``device`` policy has
``require_assertion``: the request carries a ``Device-Assertion`` (an App Attest
assertion or a Play Integrity token) over its method, target, body and a fresh
challenge (``bastion.device.binding``), made by the caller's app and, when the caller's
token is DPoP-bound to an attested device, by that device.

The body is read here (within the route's size and time limits) because the assertion
signs it; input validation then checks the same bytes. The header is the gateway's
(``GATEWAY_OWNED_HEADERS``): upstreams never receive it. A refusal is 403 problem
details, audited as ``device.assertion`` with its reason. When the trust data cannot be
had (Google unreachable), the exchange records the outage and the caller's last known
device for the risk step, which applies the policy's outage fallback; only a policy
whose fallback is ``deny`` is refused here (503).
"""

from __future__ import annotations

from bastion.device.binding import request_target
from bastion.errors import DeviceUnverifiable
from bastion.gateway.caller import BASTION, bound_key
from bastion.gateway.exchange import Exchange, read_body
from bastion.gateway.routes import BODY_METHODS, Route
from bastion.gateway.steps.base import Step

HEADER = b"device-assertion"


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
            trust.refuse_assertion(ex.who, "no_client")
        jkt = bound_key(caller)
        device = None if jkt is None else await trust.devices.by_jkt(jkt)
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
            )
        except DeviceUnverifiable:
            if policy.outage == "deny":
                raise
            ex.device, ex.device_outage = device, True
