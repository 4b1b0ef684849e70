"""Building blocks of the settings model, shared by ``config`` and each area's settings."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"500ms"``, ``"15m"``, ``"24h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("a duration is a number of seconds or a string like '15m'")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Section(BaseModel):
    """A table of the file: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def remote_plain_http(url: str) -> bool:
    """An ``http://`` URL to anything but this machine: readable and alterable in transit."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False  # the URL's own validator reports it
    return url.startswith("http://") and host not in ("127.0.0.1", "::1", "localhost")
