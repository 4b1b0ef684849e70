"""Levels of assurance: the ``acr`` values Bastion issues, the ``amr`` methods behind them,
and the policies that demand a level.

Three levels, ordered (NIST SP 800-63B authenticator assurance levels in spirit):

* ``urn:bastion:acr:password`` — a memorized secret (AAL1);
* ``urn:bastion:acr:mfa`` — password plus a one-time code, or a passkey (AAL2);
* ``urn:bastion:acr:phishing-resistant`` — a passkey with user verification: the key is
  bound to the origin, so a look-alike site cannot replay it (AAL2 phishing-resistant).

``amr`` values come from RFC 8176 §2: ``pwd`` password, ``otp`` one-time code,
``hwk`` proof of possession of a (platform or roaming) key, ``user`` user verification
by the authenticator, ``mfa`` more than one factor.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

ACR_PASSWORD = "urn:bastion:acr:password"  # noqa: S105 - a level name, not a secret
ACR_MFA = "urn:bastion:acr:mfa"
ACR_PHISHING_RESISTANT = "urn:bastion:acr:phishing-resistant"
ACR_VALUES = (ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT)
_RANK = {acr: rank for rank, acr in enumerate(ACR_VALUES, start=1)}

AMR_PASSWORD = ("pwd",)
AMR_PASSWORD_OTP = ("mfa", "otp", "pwd")
AMR_PASSKEY = ("hwk", "mfa", "user")


class Policy(StrEnum):
    """What an account or a client demands of every sign-in."""

    PASSWORD = "password"  # noqa: S105 - a policy name, not a secret
    MFA = "mfa"
    PASSKEY = "passkey"

    @property
    def acr(self) -> str:
        return {
            Policy.PASSWORD: ACR_PASSWORD,
            Policy.MFA: ACR_MFA,
            Policy.PASSKEY: ACR_PHISHING_RESISTANT,
        }[self]


def rank(acr: str | None) -> int:
    """0 for values Bastion does not issue, so they never satisfy anything."""
    return _RANK.get(acr or "", 0)


def satisfies(acr: str | None, required: str) -> bool:
    return rank(acr) >= rank(required)


def strongest(*acrs: str) -> str:
    return max(acrs, key=rank, default=ACR_PASSWORD)


def needed(required: str, policy: str | None) -> str:
    """The level a sign-in must reach: what the request and client require, raised to what
    the account's own policy demands (``None``: no account known yet)."""
    return strongest(required, Policy(policy).acr) if policy else required


def requested(acr_values: Iterable[str]) -> str | None:
    """The level an authorization request's ``acr_values`` asks for, or None.

    OpenID Connect Core §3.1.2.1 lists acceptable values in order of preference; any one of
    them satisfies the request, so the weakest recognised value is the requirement.
    Unrecognised values are ignored, as the parameter is voluntary.
    """
    known = [acr for acr in acr_values if acr in _RANK]
    return min(known, key=rank) if known else None


def method_acr(amr: Iterable[str]) -> str:
    """The level a set of authentication methods reaches."""
    methods = set(amr)
    if "hwk" in methods and "user" in methods:
        return ACR_PHISHING_RESISTANT
    if "mfa" in methods:
        return ACR_MFA
    return ACR_PASSWORD
