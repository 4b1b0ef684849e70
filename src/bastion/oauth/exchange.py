"""Token exchange rules (RFC 8693): which subject tokens a client may swap, and for how long.

RFC 8693 §2.1 and §5 leave to policy whose tokens a client may exchange. Bastion's is
deny by default: a subject token is accepted only when it was issued *to* the requesting
client, or *for* it, meaning its audience names a resource server the client operates
(``exchange_subject_audiences``). Being allowed to ask for an audience (``resources``)
is not the same: a client that may request the gateway's audience does not thereby
receive tokens meant for the gateway. A token that already names an actor (``act``) is
an internal one; exchanging it again builds a delegation chain, which a client must be
allowed explicitly (``exchange_delegation_chains``).

The exchanged token is a short-lived internal credential; it never outlives the subject
token it came from (RFC 8693 §2.2 leaves the lifetime to the server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.errors import OAuthError
from bastion.oauth.clients import Client

MAX_LIFETIME = 60.0
# Verification forgives MAX_CLOCK_SKEW past exp, so a subject token can verify with no
# time left; below this it is refused rather than turned into a token that is born dead.
MIN_SUBJECT_REMAINING = 1.0


def lifetime(subject_exp: float, now: float) -> float:
    """How long the exchanged token may live, or ``invalid_grant`` if the subject is ending."""
    remaining = subject_exp - now
    if remaining < MIN_SUBJECT_REMAINING:
        raise OAuthError("invalid_grant", "the subject token expires too soon")
    return min(MAX_LIFETIME, remaining)


def check_subject(claims: Mapping[str, Any], client: Client) -> None:
    """Raise ``invalid_grant`` unless ``client`` may exchange the verified ``claims``."""
    if "act" in claims and not client.exchange_delegation_chains:
        raise OAuthError(
            "invalid_grant", "the subject token is delegated and this client may not chain"
        )
    if claims.get("client_id") == client.client_id:
        return
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if not any(a in client.exchange_subject_audiences for a in audiences if isinstance(a, str)):
        raise OAuthError("invalid_grant", "the subject token was not issued for this client")
