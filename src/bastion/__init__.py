"""Bastion: the hardened backend between mobile apps and the APIs they call."""

from typing import TYPE_CHECKING, Any

from bastion.clock import Clock, FixedClock, SystemClock
from bastion.errors import (
    BastionError,
    ConfigError,
    ConfigProblem,
    KeyNotFound,
    KeyRingError,
    MasterKeyError,
    OAuthError,
    ProblemError,
    SchemaNotCurrent,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from bastion.config import Settings, load_settings

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The settings pull in pydantic and their area modules (a few hundred milliseconds):
    # loaded on first use, so the pure cores (bastion.oauth, bastion.guards) import fast.
    if name in ("Settings", "load_settings"):
        from bastion import config

        return getattr(config, name)
    raise AttributeError(f"module 'bastion' has no attribute {name!r}")


__all__ = [
    "BastionError",
    "Clock",
    "ConfigError",
    "ConfigProblem",
    "FixedClock",
    "KeyNotFound",
    "KeyRingError",
    "MasterKeyError",
    "OAuthError",
    "ProblemError",
    "SchemaNotCurrent",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "SystemClock",
    "__version__",
    "load_settings",
]
