"""``RateLimit-Policy`` and ``RateLimit`` fields, draft-ietf-httpapi-ratelimit-headers-10.

Both are Structured Field Lists (RFC 9651 §3.1) of String items with parameters:

    RateLimit-Policy: "per-user";q=100;w=60
    RateLimit: "per-user";r=42;t=1

``q`` is the quota per window ``w`` (seconds, a non-zero Integer); ``r`` the remaining
quota, never more than ``q``, and ``t`` the seconds until more is available (both
non-negative Integers). Only limits declared ``visible`` are advertised: an abuse
threshold tells an attacker nothing.
The 429 body uses the draft's ``quota-exceeded`` problem type with ``violated-policies``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# sf-string: printable ASCII; backslash and double quote escaped (RFC 9651 §3.3.3).
_NAME = re.compile(r"^[\x20-\x7e]{1,64}$")


@dataclass(frozen=True)
class Advertised:
    name: str
    quota: int
    window: float
    remaining: int
    reset: float


@functools.lru_cache(maxsize=1024)
def sf_string(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a policy name is 1-64 printable ASCII characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def delay_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, never below 0 (RFC 9110 §10.2.3 delay-seconds)."""
    return max(0, math.ceil(seconds - 1e-9))


def policy_field(limits: Sequence[Advertised]) -> str:
    return ", ".join(
        f"{sf_string(a.name)};q={a.quota};w={max(1, delay_seconds(a.window))}" for a in limits
    )


def ratelimit_field(limits: Sequence[Advertised]) -> str:
    return ", ".join(
        f"{sf_string(a.name)};r={min(a.quota, max(0, a.remaining))};t={delay_seconds(a.reset)}"
        for a in limits
    )


class Advertisement:
    """One visible limit's fields with everything constant about them encoded once.

    ``RateLimit-Policy`` depends only on the limit (its name, quota and window), and the
    ``RateLimit`` item differs per request only in ``r`` and ``t``: the limiter's
    single-limit path builds these per limit, not per request. The bytes are exactly
    what ``policy_field`` and ``ratelimit_field`` give for that one limit (tested).
    """

    __slots__ = ("_prefix", "policy", "quota")

    def __init__(self, name: str, quota: int, window: float) -> None:
        self.quota = quota
        self.policy = policy_field([Advertised(name, quota, window, 0, 0.0)]).encode()
        self._prefix = f"{sf_string(name)};r="

    def current(self, remaining: int, reset: float) -> bytes:
        """The ``RateLimit`` field for this limit alone."""
        left = min(self.quota, max(0, remaining))
        return f"{self._prefix}{left};t={delay_seconds(reset)}".encode()
