"""Secrets: read from the environment only, never from the file, never printed.

Each is ``BASTION_<NAME>`` or the contents of the file named by ``BASTION_<NAME>_FILE``
(container secret mounts; surrounding whitespace is stripped). Setting both is an error.

pydantic-settings reads them through ``SecretVariables``, a settings source over the
mapping the loader is handed rather than ``os.environ``: the composition root passes the
environment explicitly (DESIGN.md rule 3), so ``bastion check`` and the tests see
exactly the variables they give.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bastion.configtypes import RefusedInProduction, validation_message
from bastion.crypto.settings import DEV_MASTER_KEY_FILENAME, decode_master_key
from bastion.errors import ConfigProblem
from bastion.store.settings import check_redis_url, normalise_database_url

PREFIX = "BASTION_"

MasterKeySource = Literal["none", "environment", "development"]


def _without_a_real_key(source: MasterKeySource) -> bool:
    return source != "environment"


class Secrets(BaseSettings):
    """Values from the environment. Every secret is kept out of ``repr``; the one field
    shown, where the master key came from, is derived rather than read."""

    model_config = SettingsConfigDict(frozen=True, env_prefix=PREFIX, case_sensitive=True)

    master_key: bytes | None = Field(None, repr=False)
    database_url: str | None = Field(None, repr=False)
    redis_url: str | None = Field(None, repr=False)
    registration_token: str | None = Field(None, repr=False)
    master_key_source: Annotated[
        MasterKeySource,
        RefusedInProduction(
            _without_a_real_key,
            "development keys: a master key generated into the data directory is not "
            "allowed; set BASTION_MASTER_KEY or BASTION_MASTER_KEY_FILE",
            at=f"env:{PREFIX}MASTER_KEY",
        ),
    ] = "none"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what ``resolve_secrets`` hands in: never the process environment behind
        # the loader's back, nor a .env file or secrets directory.
        return (init_settings,)

    @field_validator("master_key", mode="before")
    @classmethod
    def _master_key(cls, value: object) -> object:
        return decode_master_key(value) if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)


class SecretVariables(PydanticBaseSettingsSource):
    """``BASTION_<NAME>`` or the file named by ``BASTION_<NAME>_FILE``, for each secret.

    A variable that cannot be used is recorded in ``problems`` and left unset, so one
    load reports every bad variable rather than the first.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = variable(field_name)
        try:
            return self._read(name), field_name, False
        except ValueError as exc:
            self.problems.append(ConfigProblem(f"env:{name}", str(exc)))
            return None, field_name, False

    def _read(self, name: str) -> str | None:
        direct = self.environ.get(name)
        file_name = self.environ.get(f"{name}_FILE")
        if direct and file_name:
            raise ValueError(f"set {name} or {name}_FILE, not both")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read the file named by {name}_FILE: {exc}") from exc
        # An empty variable counts as unset, as compose files and shells often leave one.
        return direct or None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            if field.repr:
                continue  # not a secret: derived, never read from the environment
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


def variable(field_name: str) -> str:
    return f"{PREFIX}{field_name.upper()}"


def resolve_secrets(environ: Mapping[str, str]) -> tuple[Secrets, list[ConfigProblem]]:
    """The secrets in ``environ``, and a problem for each variable that is unusable."""
    source = SecretVariables(Secrets, environ)
    values = source()
    problems = source.problems
    try:
        secrets = Secrets(**values)
    except ValidationError as exc:
        failed = {str(error["loc"][0]) for error in exc.errors()}
        problems.extend(
            ConfigProblem(f"env:{variable(str(error['loc'][0]))}", validation_message(error))
            for error in exc.errors()
        )
        secrets = Secrets(**{name: v for name, v in values.items() if name not in failed})
    if secrets.master_key is not None:
        key_file = Path(environ.get(f"{PREFIX}MASTER_KEY_FILE", ""))
        development = key_file.name == DEV_MASTER_KEY_FILENAME
        source_name: MasterKeySource = "development" if development else "environment"
        secrets = secrets.model_copy(update={"master_key_source": source_name})
    return secrets, problems
