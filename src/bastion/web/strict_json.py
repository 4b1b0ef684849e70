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


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise ValueError("a member name appears twice")
        document[name] = value
    return document


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes) -> Any:
    """The JSON value of ``data``; ``ValueError``, saying which, for a member named
    twice or anything that is not JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("not UTF-8") from exc
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
