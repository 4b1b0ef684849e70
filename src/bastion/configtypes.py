"""Building blocks of the settings model, shared by ``config`` and each area's settings.

Besides the value types, two declarations live on the fields themselves, so that a new
option carries them where it is defined rather than in a table elsewhere:

- ``AnchoredPath``: a path that, written relatively in ``bastion.toml``, is relative to
  the file's directory (the loader passes that directory as validation context);
- ``RefusedInProduction``: what ``environment = "production"`` refuses about a value.
  Conditions that span several fields are a section's ``production_refusals`` method.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo

if TYPE_CHECKING:
    from bastion.config import Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

# The key of the validation context that holds the configuration file's directory.
FILE_DIRECTORY = "file_directory"


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


def _anchor(value: object, info: ValidationInfo) -> object:
    """A relative path from the file becomes relative to the file, not the working directory."""
    base = (info.context or {}).get(FILE_DIRECTORY)
    if base is None or not isinstance(value, str):
        return value
    try:
        candidate = Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser/...": leave it for validation to report
        candidate = Path(value)
    return str(candidate if candidate.is_absolute() else Path(base) / candidate)


Duration = Annotated[float, BeforeValidator(parse_duration)]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AnchoredPath = Annotated[Path, BeforeValidator(_anchor)]


class Section(BaseModel):
    """A table of the file: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def remote_plain_http(url: str | None) -> bool:
    """An ``http://`` URL to anything but this machine: readable and alterable in transit."""
    if url is None:
        return False
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False  # the URL's own validator reports it
    return url.startswith("http://") and host not in ("127.0.0.1", "::1", "localhost")


def validation_message(error: Mapping[str, Any]) -> str:
    """The message for one of pydantic's errors, as ``bastion check`` shows it."""
    if error["type"] == "extra_forbidden":
        return "unknown key (a misspelt option would silently keep its default)"
    return str(error["msg"]).removeprefix("Value error, ")


# --- what production refuses -----------------------------------------------------------------


@dataclass(frozen=True)
class RefusedInProduction:
    """Field marker: production refuses the field's value when ``when(value)`` holds.

    Reported at the field's key path, or at ``at`` for a value that comes from elsewhere
    (a secret from the environment).
    """

    when: Callable[[Any], bool]
    why: str
    at: str | None = None


@dataclass(frozen=True)
class Refusal:
    """What a section's ``production_refusals`` finds: a key relative to the section
    ("" for the section itself) and why."""

    key: str
    why: str


@runtime_checkable
class RefusesInProduction(Protocol):
    """A section whose refusals depend on several fields, or on other sections."""

    def production_refusals(self, settings: Settings) -> Iterator[Refusal]: ...


def production_refusals(
    section: BaseModel, settings: Settings, prefix: str = ""
) -> Iterator[tuple[str, str]]:
    """Every (key path, reason) that production refuses in ``section`` and the tables in it."""
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        key = f"{prefix}{name}"
        for marker in field.metadata:
            if isinstance(marker, RefusedInProduction) and marker.when(value):
                yield marker.at or key, marker.why
        if isinstance(value, BaseModel):
            yield from production_refusals(value, settings, f"{key}.")
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from production_refusals(item, settings, f"{key}.{index}.")
    if isinstance(section, RefusesInProduction):
        for refusal in section.production_refusals(settings):
            yield f"{prefix}{refusal.key}".rstrip("."), refusal.why
