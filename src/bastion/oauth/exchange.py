"""Token exchange rules (RFC 8693): which subject tokens a client may swap, and for how long.

The exchanged token is a short-lived internal credential; it never outlives the subject
token it came from (RFC 8693 §2.2 leaves the lifetime to the server).
"""

from __future__ import annotations

from bastion.errors import OAuthError

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
