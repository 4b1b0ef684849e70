"""Sticky cohorts: which users, clients or app versions a gradual rollout includes.

The bucket of an identifier under a salt is defined once, here, and every rollout
(device trust, remote configuration) uses this exact definition::

    bucket(identifier, salt) =
        int.from_bytes(SHA-256(UTF-8(salt + ":" + identifier))[:8], "big") % 10000

that is, the first 8 bytes of the SHA-256 digest of the salt, a colon and the
identifier, read as a big-endian unsigned integer, modulo 10 000. A percentage
rollout admits an identifier when ``bucket < percent * 100``: buckets are hundredths
of a percent, so 12.5 % admits buckets 0 to 1249. The same identifier and salt always
land in the same bucket (raising the percentage only adds identifiers), and another
salt draws an independent cohort.

A pure core: no I/O, no configuration loading.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from decimal import Decimal

from bastion.errors import InvalidValue

__all__ = ["BUCKETS", "bucket", "in_cohort", "listed_client", "listed_version"]

BUCKETS = 10_000


def bucket(identifier: str, salt: str) -> int:
    """The identifier's bucket under ``salt``, in ``[0, 10000)`` (module docstring)."""
    digest = hashlib.sha256(f"{salt}:{identifier}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _threshold(percent: float) -> Decimal:
    if isinstance(percent, bool) or not isinstance(percent, int | float):
        raise InvalidValue("a cohort percentage must be a number")
    if not math.isfinite(percent) or not 0 <= percent <= 100:
        raise InvalidValue("a cohort percentage must be between 0 and 100")
    # The decimal the operator wrote (12.3, not the binary float just above or below
    # it), so that 0.1 % is exactly buckets 0 to 9.
    return Decimal(repr(percent)) * 100


def in_cohort(identifier: str, salt: str, percent: float) -> bool:
    """Whether a ``percent`` rollout under ``salt`` admits ``identifier``; ``percent``
    is in ``[0, 100]`` (else ``InvalidValue``)."""
    return bucket(identifier, salt) < _threshold(percent)


def listed_client(client_id: str, client_ids: Collection[str]) -> bool:
    """Whether a cohort that lists clients by id includes ``client_id``; ids compare
    exactly, as registered."""
    return client_id in client_ids


def listed_version(app_version: str | None, versions: Collection[str]) -> bool:
    """Whether a cohort that lists app versions includes ``app_version``; versions
    compare as exact strings after trimming whitespace, and an unknown version is in
    no list."""
    if app_version is None:
        return False
    return app_version.strip() in {version.strip() for version in versions}
