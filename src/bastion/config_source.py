"""Which configuration file a command uses, and how it was found.

Without ``--config`` the file is looked for the way git and ruff look for theirs:
``BASTION_CONFIG``, then ``bastion.toml`` in the working directory, then in each parent
up to the root; with none found, every option has its built-in default. The answer keeps
how it was found, so that a command can tell the operator which file it used: the same
command run from another directory may otherwise read another file, or none.

A file found by looking around (not named by ``--config`` or ``BASTION_CONFIG``) is used
only if it belongs to the user running Bastion or to root. Another user who can write to
a parent directory, ``/tmp`` say, could otherwise choose the database that a command run
below it sends password hashes to.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bastion.errors import ConfigError, ConfigProblem

CONFIG_ENV = "BASTION_CONFIG"
FILENAME = "bastion.toml"


class Origin(enum.StrEnum):
    OPTION = "--config"
    ENVIRONMENT = CONFIG_ENV
    WORKING_DIRECTORY = "working directory"
    PARENT_DIRECTORY = "parent directory"
    DEFAULTS = "built-in defaults"


@dataclass(frozen=True)
class ConfigSource:
    """A configuration file and how it was chosen; no file means built-in defaults."""

    path: Path | None
    origin: Origin

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else "built-in defaults"

    def describe(self) -> str:
        """One line for people: which configuration, and why that one."""
        why = {
            Origin.OPTION: "from --config",
            Origin.ENVIRONMENT: f"from {CONFIG_ENV}",
            Origin.WORKING_DIRECTORY: f"./{FILENAME}",
            Origin.PARENT_DIRECTORY: f"{FILENAME} of a parent directory",
        }
        if self.path is None:
            return (
                f"config: built-in defaults (no --config, no {CONFIG_ENV}, "
                f"no {FILENAME} here or in a parent directory)"
            )
        return f"config: {self.path} ({why[self.origin]})"


def find_config(
    option: Path | None, environ: Mapping[str, str], working_directory: Path
) -> ConfigSource:
    """``--config``, else ``BASTION_CONFIG`` (an empty value counts as unset), else the
    nearest ``bastion.toml`` at or above ``working_directory``, else the defaults."""
    if option is not None:
        return ConfigSource(option, Origin.OPTION)
    value = environ.get(CONFIG_ENV)
    if value:
        return ConfigSource(Path(value), Origin.ENVIRONMENT)
    start = working_directory.absolute()
    for directory in (start, *start.parents):
        candidate = directory / FILENAME
        if candidate.is_file():
            _refuse_foreign(candidate)
            origin = Origin.WORKING_DIRECTORY if directory == start else Origin.PARENT_DIRECTORY
            return ConfigSource(candidate, origin)
    return ConfigSource(None, Origin.DEFAULTS)


def _refuse_foreign(path: Path) -> None:
    owner = path.stat().st_uid
    if owner not in (os.getuid(), 0):
        raise ConfigError(
            [
                ConfigProblem(
                    "",
                    f"found {path}, which belongs to another user (uid {owner}); a {FILENAME} "
                    "found by looking in this and parent directories is used only if it is "
                    f"yours or root's: pass -c {path} to use it anyway, or -c with the file "
                    "you meant",
                )
            ]
        )
