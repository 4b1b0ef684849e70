"""Settings: one ``bastion.toml`` validated into a frozen object, secrets from the environment.

Each area owns its tables and declares, on its fields, which paths are relative to the
file (``AnchoredPath``) and what production refuses (``RefusedInProduction``, or a
section's ``production_refusals``); this module composes them into ``Settings`` and
loads the file:

=================  ============================  =========================================
table              settings                      module
=================  ============================  =========================================
(top level)        ``Settings``                  here
``[server]``       ``ServerSettings``            ``bastion.web.settings``
``[database]``     ``DatabaseSettings``          ``bastion.store.settings``
``[hot_state]``    ``HotStateSettings``          ``bastion.store.settings``
``[keys]``         ``KeySettings``               ``bastion.crypto.settings``
``[audit]``        ``AuditSettings``             ``bastion.audit.settings``
``[oauth]``        ``OAuthSettings``             ``bastion.authserver.settings``
``[accounts]``     ``AccountSettings``           ``bastion.accounts.settings``
``[gateway]``      ``GatewaySettings``           ``bastion.gateway.settings``
``[guards]``       ``GuardSettings``             ``bastion.guards.settings``
(environment)      ``Secrets``                   ``bastion.env_secrets``
=================  ============================  =========================================

The file never needs to hold a secret. Unknown keys are errors: a misspelt option must
not silently leave a protection at its default.

``load_settings`` collects every problem before raising, so ``bastion check`` can report
them all at once, each with its dotted key path and, where the file shows it, a line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from bastion.accounts.settings import AccountSettings, PasswordSettings, ThrottleSettings
from bastion.audit.settings import AuditSettings
from bastion.authserver.settings import ClientSettings, OAuthSettings, RegistrationSettings
from bastion.configtypes import (
    FILE_DIRECTORY,
    AnchoredPath,
    RefusedInProduction,
    Section,
    parse_duration,
    production_refusals,
    validation_message,
)
from bastion.crypto.settings import (
    DEV_MASTER_KEY_FILENAME,
    MASTER_KEY_BYTES,
    KeySettings,
    decode_master_key,
    encode_master_key,
)
from bastion.device.settings import DeviceSettings
from bastion.env_secrets import Secrets, resolve_secrets
from bastion.errors import ConfigError, ConfigProblem
from bastion.gateway.settings import GatewaySettings
from bastion.guards.settings import GuardSettings
from bastion.store.settings import (
    DatabaseSettings,
    HotStateSettings,
    check_redis_url,
    normalise_database_url,
)
from bastion.web.page_settings import PageSettings
from bastion.web.settings import ServerSettings

__all__ = [
    "DEV_MASTER_KEY_FILENAME",
    "MASTER_KEY_BYTES",
    "AccountSettings",
    "AuditSettings",
    "ClientSettings",
    "DatabaseSettings",
    "GatewaySettings",
    "GuardSettings",
    "HotStateSettings",
    "KeySettings",
    "OAuthSettings",
    "PasswordSettings",
    "RegistrationSettings",
    "Secrets",
    "ServerSettings",
    "Settings",
    "ThrottleSettings",
    "check_redis_url",
    "decode_master_key",
    "encode_master_key",
    "load_settings",
    "locate_keys",
    "normalise_database_url",
    "parse_duration",
    "resolve_secrets",
]


def _plain_http(url: str) -> bool:
    return url.startswith("http://")


class Settings(Section):
    environment: Literal["development", "production"] = "development"
    issuer: Annotated[str, RefusedInProduction(_plain_http, "the issuer must be an https URL")] = (
        "http://127.0.0.1:8000"
    )
    data_dir: AnchoredPath = Path("data")
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    hot_state: HotStateSettings = HotStateSettings()
    keys: KeySettings = KeySettings()
    audit: AuditSettings = AuditSettings()
    oauth: OAuthSettings = OAuthSettings()
    accounts: AccountSettings = AccountSettings()
    gateway: GatewaySettings = GatewaySettings()
    device: DeviceSettings = DeviceSettings()
    guards: GuardSettings = GuardSettings()
    pages: PageSettings = PageSettings()
    secrets: Secrets = Field(Secrets(), exclude=True)

    @model_validator(mode="after")
    def _signed_lifetimes(self) -> Settings:
        longest = max(self.oauth.access_token_lifetime, self.oauth.id_token_lifetime)
        if longest > self.keys.max_token_lifetime:
            raise ValueError(
                "keys.max_token_lifetime must cover oauth access and ID token lifetimes"
            )
        return self

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        match = re.fullmatch(r"(https?)://([^/?#@\s]+)(/[^?#\s]*)?", value)
        if not match:
            raise ValueError("issuer must be an http(s) URL without query, fragment or userinfo")
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def database_url(self) -> str:
        url = self.secrets.database_url or self.database.url
        if url is None:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'bastion.db').resolve()}"
        return url

    @property
    def redis_url(self) -> str | None:
        return self.secrets.redis_url or self.hot_state.url

    @property
    def passkey_rp_id(self) -> str:
        """WebAuthn relying party ID: the issuer's host unless configured (a registrable
        suffix of it, WebAuthn §5.1.4.1)."""
        return self.accounts.passkey_rp_id or (urlsplit(self.issuer).hostname or "")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def audit_path(self) -> Path:
        return self.audit.path or self.data_dir / "audit.jsonl"

    @property
    def serves_tls(self) -> bool:
        return self.server.tls_cert is not None

    def insecure_options(self) -> list[ConfigProblem]:
        """Every option that is unsafe in production, with where it is set."""
        return [ConfigProblem(path, why) for path, why in production_refusals(self, self)]


# --- loading --------------------------------------------------------------------------------


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read, validate and freeze the configuration, or raise ``ConfigError`` with every problem."""
    raw: dict[str, Any] = {}
    lines: dict[str, int] = {}
    problems: list[ConfigProblem] = []
    context: dict[str, Path] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigProblem("", f"cannot read {path}: {exc.strerror}")]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigProblem("", f"{path} is not UTF-8 text")]) from exc
        try:
            raw = tomllib.loads(text)
        except RecursionError as exc:
            raise ConfigError([ConfigProblem("", "not valid TOML: nested too deeply")]) from exc
        except tomllib.TOMLDecodeError as exc:
            # Python < 3.14 only states the position inside the message.
            where = re.search(r"at line (\d+)", str(exc))
            line = int(where.group(1)) if where else None
            raise ConfigError([ConfigProblem("", f"not valid TOML: {exc}", line)]) from exc
        lines = locate_keys(text)
        if "secrets" in raw:
            problems.append(
                ConfigProblem(
                    "secrets",
                    "secrets are read from BASTION_* environment variables, not the file",
                    lines.get("secrets"),
                )
            )
            raw.pop("secrets")
        # Relative paths in the file are relative to the file (AnchoredPath).
        context[FILE_DIRECTORY] = path.parent

    secrets, secret_problems = resolve_secrets(environ)
    problems.extend(secret_problems)
    try:
        settings = Settings.model_validate({**raw, "secrets": secrets}, context=context)
    except ValidationError as exc:
        failed: list[tuple[str | int, ...]] = []
        for error in exc.errors():
            failed.append(tuple(error["loc"]))
            dotted = _dotted_loc(error["loc"])
            problems.append(
                ConfigProblem(dotted, validation_message(error), _line_for(dotted, lines))
            )
        # Still say what production would refuse, judged on the keys that did validate,
        # so one run of `bastion check` lists every problem.
        try:
            partial = Settings.model_validate(
                {**_without(raw, failed), "secrets": secrets}, context=context
            )
        except ValidationError:
            partial = None
        if partial is not None:
            reported = {p.path for p in problems}
            problems.extend(
                p
                for p in _refusals(partial, lines)
                if not any(p.path == r or p.path.startswith(f"{r}.") for r in reported)
            )
        raise ConfigError(problems) from None
    problems.extend(_refusals(settings, lines))
    if problems:
        raise ConfigError(problems)
    return settings


def _refusals(settings: Settings, lines: Mapping[str, int]) -> list[ConfigProblem]:
    if not settings.is_production:
        return []
    return [
        ConfigProblem(p.path, f"refused in production: {p.message}", _line_for(p.path, lines))
        for p in settings.insecure_options()
    ]


def _dotted_loc(loc: tuple[str | int, ...]) -> str:
    dotted = ".".join(str(part) for part in loc if not isinstance(part, int))
    return re.sub(r"\.function-(before|after)\[[^\]]*\]", "", dotted)


def _without(raw: dict[str, Any], locations: list[tuple[str | int, ...]]) -> dict[str, Any]:
    """A copy of ``raw`` without the keys that failed validation (defaults take over)."""
    copy = deepcopy(raw)
    for loc in locations:
        table: Any = copy
        names = [part for part in loc if isinstance(part, str) and not part.startswith("function-")]
        for depth, name in enumerate(names):
            if not isinstance(table, dict) or name not in table:
                break
            if depth == len(names) - 1 or not isinstance(table[name], dict):
                del table[name]
                break
            table = table[name]
    return copy


def _line_for(dotted: str, lines: Mapping[str, int]) -> int | None:
    while dotted:
        if dotted in lines:
            return lines[dotted]
        dotted = dotted.rpartition(".")[0]
    return None


_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\".' ]+?)\s*=")


def locate_keys(text: str) -> dict[str, int]:
    """Map dotted key paths to the 1-based line that sets them (tables and keys)."""
    found: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _TABLE.match(line):
            table = _dotted(match.group(1))
            found.setdefault(table, number)
        elif match := _KEY.match(line):
            key = _dotted(match.group(1))
            found.setdefault(f"{table}.{key}" if table else key, number)
    return found


def _dotted(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))
