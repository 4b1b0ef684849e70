"""App versions as the risk engine compares them: dotted numbers, compared numerically.

``1.10`` is newer than ``1.9``, and trailing zeros do not count (``2.0`` is ``2``). A
version that is not dotted numbers (``2.1-beta``, empty) cannot be shown to be recent:
against a minimum it counts as outdated. An unknown version (no device record, or one
that never reported a version) is neither outdated nor unreleased: there is nothing to
compare, and the attestation signals already score a missing device.

A pure core: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["outdated", "parse", "unreleased"]

_DOTTED = re.compile(r"^\d{1,9}(\.\d{1,9}){0,9}$")


def parse(version: str) -> tuple[int, ...] | None:
    """The numbers of a dotted version without trailing zeros, or None if it is not one."""
    text = version.strip()
    if not _DOTTED.match(text):
        return None
    numbers = [int(part) for part in text.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def outdated(version: str | None, minimum: str | None) -> bool:
    """Whether ``version`` is below ``minimum`` (a client's ``min_app_version``)."""
    if minimum is None or version is None:
        return False
    floor, found = parse(minimum), parse(version)
    if floor is None:
        return False  # the settings refuse such a minimum; nothing to compare with
    return found is None or found < floor


def unreleased(version: str | None, released: Collection[str]) -> bool:
    """Whether ``version`` is missing from a non-empty list of released versions (a
    client's ``released_versions``): a build the team never shipped, repackaged or
    tampered with. Versions compare as exact strings after trimming whitespace, as
    cohort version lists do."""
    if not released or version is None:
        return False
    return version.strip() not in {entry.strip() for entry in released}
