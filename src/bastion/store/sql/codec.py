"""Column codecs shared by the SQL stores: lists and mappings as JSON text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson


def dump_list(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def load_tuple(text: str | None) -> tuple[str, ...]:
    return tuple(orjson.loads(text)) if text else ()


def dump_map(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(dict(value)).decode()


def load_map(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(orjson.loads(text))
