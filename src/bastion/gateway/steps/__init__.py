"""The gateway's steps, in order: the one place that says what a request goes through.

Each step is a module of its own (``steps.base`` says what a step is); a route runs
only the steps it needs. ``bastion check --explain ROUTE`` prints a route's chain.
"""

from __future__ import annotations

from bastion.gateway.steps.authentication import Authentication
from bastion.gateway.steps.authorization import Authorization
from bastion.gateway.steps.base import Step
from bastion.gateway.steps.body_claims import BodyClaims
from bastion.gateway.steps.claim_bindings import ClaimBindings
from bastion.gateway.steps.credential import UpstreamCredential
from bastion.gateway.steps.device import DeviceRisk
from bastion.gateway.steps.device_assertion import DeviceAssertion
from bastion.gateway.steps.dpop import SenderConstraint
from bastion.gateway.steps.fallback import StaleFallback
from bastion.gateway.steps.idempotency import Idempotency
from bastion.gateway.steps.identifiers import Identifiers
from bastion.gateway.steps.limits import AddressLimits, UserLimits
from bastion.gateway.steps.ownership import Ownership
from bastion.gateway.steps.pagination import Pagination
from bastion.gateway.steps.recording import Recording
from bastion.gateway.steps.shaping import Shaping
from bastion.gateway.steps.upstream_call import UpstreamCall
from bastion.gateway.steps.validation import InputValidation

ORDER: tuple[type[Step], ...] = (
    AddressLimits,
    Authentication,
    SenderConstraint,
    # The assertion first: the risk step reads the device it verified, or its outage.
    DeviceAssertion,
    DeviceRisk,
    Authorization,
    Identifiers,
    ClaimBindings,
    UserLimits,
    InputValidation,
    BodyClaims,
    UpstreamCredential,
    Ownership,
    Pagination,
    Idempotency,
    StaleFallback,
    UpstreamCall,
    Recording,
    Shaping,
)

__all__ = ["ORDER", "Step"]
