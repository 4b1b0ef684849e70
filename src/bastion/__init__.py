"""Bastion: the hardened backend between mobile apps and the APIs they call."""

from bastion.clock import Clock, FixedClock, SystemClock
from bastion.config import Settings, load_settings
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

__version__ = "0.1.0"

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
