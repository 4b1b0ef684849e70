"""JSON read strictly, for bodies whose members decide something (the device endpoints).

RFC 8259 §4 leaves the meaning of an object with duplicate member names undefined
("the names within an object SHOULD be unique"): parsers differ on which one wins, so
one that checks a request and one that acts on it may read different values
(``{"client_id": "web", "client_id": "shop"}``). Such a body is refused, as are the
non-JSON constants ``NaN`` and ``Infinity`` Python would otherwise accept, and text
that is not UTF-8 (RFC 8259 §8.1).
"""

from __future__ import annotations

import json
from typing import Any


class StrictJsonError(ValueError):
    """The text is not JSON as RFC 8259 means it, or repeats a member name."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise StrictJsonError("a member name appears twice")
        document[name] = value
    return document


def _constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not JSON")


def loads(data: bytes) -> Any:
    """The JSON value of ``data``; ``StrictJsonError`` for anything else."""
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except StrictJsonError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StrictJsonError("not JSON") from exc
