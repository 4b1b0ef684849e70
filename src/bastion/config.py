"""Settings: one ``bastion.toml`` validated into a frozen object, secrets from the environment.

The file never needs to hold a secret. Secrets come from ``BASTION_<NAME>`` or from the
file named by ``BASTION_<NAME>_FILE`` (for container secret mounts). Unknown keys are
errors: a misspelt option must not silently leave a protection at its default.

``load_settings`` collects every problem before raising, so ``bastion check`` can report
them all at once, each with its dotted key path and, where the file shows it, a line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bastion.configtypes import Duration, IPNetwork, Section, remote_plain_http
from bastion.configtypes import parse_duration as parse_duration
from bastion.errors import ConfigError, ConfigProblem
from bastion.gateway.settings import GatewaySettings
from bastion.guards.settings import GuardSettings

MASTER_KEY_BYTES = 32
DEV_MASTER_KEY_FILENAME = "dev-master.key"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    max_body_bytes: int = Field(1_048_576, ge=1024, le=256 * 1_048_576)
    hsts_max_age: Duration = 31_536_000.0
    # uvicorn's line per request. Off by default: refusals and writes are audited, every
    # answer carries X-Request-Id, and the line costs a quarter of the gateway's
    # throughput (docs/performance.md).
    access_log: bool = False
    # Resource limits on every request (docs/guards.md).
    max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    max_headers: int = Field(100, ge=10, le=1000)
    header_timeout: Duration = 10.0
    body_timeout: Duration = 30.0
    max_requests_per_connection: int = Field(1000, ge=1)
    debug: bool = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be set together")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self


class DatabaseSettings(Section):
    url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file bastion.db in data_dir"
    )
    pool_size: int = Field(10, ge=1, le=200)
    connect_timeout: Duration = 5.0
    # How often a served process deletes expired rows (0: never; `bastion db prune`).
    prune_interval: Duration = Field(600.0, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else normalise_database_url(value)


class HotStateSettings(Section):
    url: str | None = Field(None, description="redis:// or rediss:// URL; default: in memory")
    connect_timeout: Duration = 2.0
    key_prefix: str = Field("bastion:", min_length=1, max_length=64)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)


class KeySettings(Section):
    algorithm: Literal["ES256", "Ed25519"] = "ES256"
    publish_ahead: Duration = 600.0
    max_token_lifetime: Duration = 86_400.0
    refresh_interval: Duration = 30.0
    jwks_max_age: Duration = 300.0

    @model_validator(mode="after")
    def _ordering(self) -> KeySettings:
        # A new key must be visible to every worker and every verifier's JWKS cache
        # before it signs, so both delays must fit inside publish_ahead.
        if self.refresh_interval >= self.publish_ahead:
            raise ValueError("refresh_interval must be shorter than publish_ahead")
        if self.jwks_max_age >= self.publish_ahead:
            raise ValueError("jwks_max_age must be shorter than publish_ahead")
        if self.max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be positive")
        return self


class AuditSettings(Section):
    path: Path | None = Field(None, description="JSON-lines file; default data_dir/audit.jsonl")
    stderr: bool = False


class ClientSettings(Section):
    """A client declared in the file (see docs/oauth.md). Its secret, if any, is given as a
    SHA-256 hash: the secret itself never needs to be in the file."""

    client_id: str
    type: Literal["public", "confidential"] = "public"
    name: str = ""
    auth_method: Literal["none", "client_secret_basic", "private_key_jwt"] | None = None
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ("openid",)
    grant_types: tuple[str, ...] | None = None
    resources: tuple[str, ...] = ()
    require_pushed_authorization_requests: bool = False
    secret_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    jwks_file: Path | None = None
    introspection: bool = False
    auth_policy: Literal["password", "mfa", "passkey"] = "password"
    exchange_subject_audiences: tuple[str, ...] = ()
    exchange_delegation_chains: bool = False


class RegistrationSettings(Section):
    enabled: bool = False
    software_statement_jwks_file: Path | None = None
    default_scopes: tuple[str, ...] = ("openid",)


class OAuthSettings(Section):
    access_token_lifetime: Duration = 300.0
    id_token_lifetime: Duration = 300.0
    refresh_idle_lifetime: Duration = 14 * 86_400.0
    refresh_absolute_lifetime: Duration = 90 * 86_400.0
    # Off by default: inside a grace window the token just rotated out still works, so a
    # thief racing the app is not detected (RFC 9700 §4.14.2). Opt-in, same instance only.
    refresh_grace: Duration = 0.0
    par_lifetime: Duration = 60.0
    login_timeout: Duration = 600.0
    session_idle: Duration = 3_600.0
    session_absolute: Duration = 12 * 3_600.0
    default_audience: str | None = None
    clients: tuple[ClientSettings, ...] = ()
    registration: RegistrationSettings = RegistrationSettings()

    @model_validator(mode="after")
    def _lifetimes(self) -> OAuthSettings:
        if not 1 <= self.access_token_lifetime <= 3600:
            raise ValueError("access_token_lifetime must be between 1 second and 1 hour")
        if self.refresh_grace > 60:
            raise ValueError("refresh_grace above 60 s would let a stolen token fork a family")
        if self.refresh_idle_lifetime > self.refresh_absolute_lifetime:
            raise ValueError("refresh_idle_lifetime cannot exceed refresh_absolute_lifetime")
        ids = [c.client_id for c in self.clients]
        if len(ids) != len(set(ids)):
            raise ValueError("client_id values must be unique")
        return self


class PasswordSettings(Section):
    """NIST SP 800-63B §5.1.1.2: a floor on length, room for passphrases, no composition rules."""

    min_length: int = Field(8, ge=8, le=64)
    max_length: int = Field(256, ge=64, le=4096)
    argon2_time_cost: int = Field(3, ge=1, le=20)
    argon2_memory_kib: int = Field(65_536, ge=8_192, le=4_194_304)
    argon2_parallelism: int = Field(1, ge=1, le=16)


class ThrottleSettings(Section):
    account_free_failures: int = Field(5, ge=1, le=100)
    account_base_delay: Duration = 1.0
    account_max_delay: Duration = 300.0
    account_window: Duration = 900.0
    ip_failures: int = Field(50, ge=1)
    ip_window: Duration = 900.0
    global_failures: int = Field(1000, ge=1)
    global_window: Duration = 60.0
    spray_accounts_per_ip: int = Field(10, ge=2)
    stuffing_ips_per_account: int = Field(10, ge=2)

    @model_validator(mode="after")
    def _delays(self) -> ThrottleSettings:
        if not 0 < self.account_base_delay <= self.account_max_delay:
            raise ValueError("account_base_delay must be positive and at most account_max_delay")
        if min(self.account_window, self.ip_window, self.global_window) <= 0:
            raise ValueError("throttle windows must be positive")
        if self.account_max_delay > self.account_window:
            # Otherwise the failure count would expire while the account is still delayed,
            # handing an attacker a fresh set of free attempts.
            raise ValueError("account_max_delay cannot exceed account_window")
        return self


class AccountSettings(Section):
    passwords: PasswordSettings = PasswordSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    totp_issuer: str = Field("Bastion", min_length=1, max_length=64)
    passkey_rp_id: str | None = Field(None, max_length=253)
    passkey_rp_name: str = Field("Bastion", min_length=1, max_length=64)
    reauthentication_window: Duration = 900.0
    recovery_link_lifetime: Duration = 86_400.0
    device_cookie_lifetime: Duration = 180 * 86_400.0
    admin_scope: str = Field("bastion:admin", min_length=1, max_length=128)


class Secrets(BaseModel):
    """Values read from the environment only; never printed (repr hides them)."""

    model_config = ConfigDict(frozen=True)

    master_key: bytes | None = Field(None, repr=False)
    master_key_source: str = "none"
    database_url: str | None = Field(None, repr=False)
    redis_url: str | None = Field(None, repr=False)
    registration_token: str | None = Field(None, repr=False)


class Settings(Section):
    environment: Literal["development", "production"] = "development"
    issuer: str = "http://127.0.0.1:8000"
    data_dir: Path = Path("data")
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    hot_state: HotStateSettings = HotStateSettings()
    keys: KeySettings = KeySettings()
    audit: AuditSettings = AuditSettings()
    oauth: OAuthSettings = OAuthSettings()
    accounts: AccountSettings = AccountSettings()
    gateway: GatewaySettings = GatewaySettings()
    guards: GuardSettings = GuardSettings()
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
        found: list[ConfigProblem] = []
        if self.secrets.master_key_source in ("none", "development"):
            found.append(
                ConfigProblem(
                    "env:BASTION_MASTER_KEY",
                    "development keys: a master key generated into the data directory is not "
                    "allowed; set BASTION_MASTER_KEY or BASTION_MASTER_KEY_FILE",
                )
            )
        if self.server.debug:
            found.append(ConfigProblem("server.debug", "debug pages are not allowed"))
        if not self.serves_tls and not self.server.trusted_proxies:
            found.append(
                ConfigProblem(
                    "server",
                    "plain HTTP: set server.tls_cert and server.tls_key, or declare the "
                    "TLS-terminating proxy in server.trusted_proxies",
                )
            )
        if self.server.workers > 1 and self.redis_url is None:
            found.append(
                ConfigProblem(
                    "server.workers",
                    "several workers with in-memory hot state: counters and one-time values "
                    "would not be shared; set BASTION_REDIS_URL or hot_state.url",
                )
            )
        if self.issuer.startswith("http://"):
            found.append(ConfigProblem("issuer", "the issuer must be an https URL"))
        for index, upstream in enumerate(self.gateway.upstreams):
            if remote_plain_http(upstream.url):
                # Internal tokens and injected credentials would cross the network in clear.
                found.append(
                    ConfigProblem(
                        f"gateway.upstreams.{index}.url",
                        "plain HTTP to a remote upstream; use https (or a local sidecar)",
                    )
                )
            token_url = upstream.credential.token_url
            if token_url is not None and remote_plain_http(token_url):
                # The client secret would cross the network in clear.
                found.append(
                    ConfigProblem(
                        f"gateway.upstreams.{index}.credential.token_url",
                        "the upstream's token endpoint must be https",
                    )
                )
        for index, issuer in enumerate(self.gateway.issuers):
            if remote_plain_http(issuer.jwks_uri):
                # Whoever can alter the key set in transit can mint that issuer's tokens.
                found.append(
                    ConfigProblem(
                        f"gateway.issuers.{index}.jwks_uri", "the JWKS must be fetched over https"
                    )
                )
        for path, url in (
            ("database.url", self.database.url),
            ("hot_state.url", self.hot_state.url),
        ):
            if url is not None and _has_password(url):
                env = "BASTION_DATABASE_URL" if path == "database.url" else "BASTION_REDIS_URL"
                found.append(ConfigProblem(path, f"contains a password; pass the URL in {env}"))
        return found


def normalise_database_url(value: str) -> str:
    """Accept plain driver names and pin the async drivers Bastion ships with."""
    try:
        url = make_url(value)
    except ArgumentError as exc:
        raise ValueError("not a database URL") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError("database URL must be sqlite:// or postgresql://")
    return url.render_as_string(hide_password=False)


def check_redis_url(value: str) -> str:
    if not re.match(r"^(redis|rediss|unix)://", value):
        raise ValueError("hot state URL must start with redis://, rediss:// or unix://")
    try:
        urlsplit(value).port  # noqa: B018 - raises on a malformed host or port
    except ValueError as exc:
        raise ValueError("hot state URL is not a valid URL") from exc
    return value


def _has_password(url: str) -> bool:
    """A password in the userinfo or in the query string (asyncpg and redis-py read both)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return True
    except ValueError:
        return False  # the URL's own validator reports it
    return any(name.lower() == "password" for name, _ in parse_qsl(parts.query))


# --- loading --------------------------------------------------------------------------------


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read, validate and freeze the configuration, or raise ``ConfigError`` with every problem."""
    raw: dict[str, Any] = {}
    lines: dict[str, int] = {}
    problems: list[ConfigProblem] = []
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
        _anchor_paths(raw, path.parent)

    secrets, secret_problems = resolve_secrets(environ)
    problems.extend(secret_problems)
    try:
        settings = Settings.model_validate({**raw, "secrets": secrets})
    except ValidationError as exc:
        failed: list[tuple[str | int, ...]] = []
        for error in exc.errors():
            failed.append(tuple(error["loc"]))
            dotted = _dotted_loc(error["loc"])
            problems.append(ConfigProblem(dotted, _message(error), _line_for(dotted, lines)))
        # Still say what production would refuse, judged on the keys that did validate,
        # so one run of `bastion check` lists every problem.
        try:
            partial = Settings.model_validate({**_without(raw, failed), "secrets": secrets})
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


_PATH_KEYS = (
    ("data_dir",),
    ("server", "tls_cert"),
    ("server", "tls_key"),
    ("audit", "path"),
    ("oauth", "registration", "software_statement_jwks_file"),
)


# Paths inside arrays of tables: (table, array, keys inside each item).
_LISTED_PATH_KEYS: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("oauth", "clients", (("jwks_file",),)),
    (
        "gateway",
        "upstreams",
        (("tls_client_cert",), ("tls_client_key",), ("tls_ca_file",), ("credential", "file")),
    ),
    (
        "gateway",
        "routes",
        (
            ("input", "body_file"),
            ("input", "query_file"),
            ("input", "path_file"),
            ("input", "openapi"),
        ),
    ),
)


def _anchor_paths(raw: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file, not to the working directory."""
    for *parents, leaf in _PATH_KEYS:
        table: Any = raw
        for part in parents:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and isinstance(table.get(leaf), str):
            table[leaf] = _anchored(table[leaf], base)
    for table_name, list_name, keys in _LISTED_PATH_KEYS:
        table = raw.get(table_name)
        listed = table.get(list_name) if isinstance(table, dict) else None
        for item in listed if isinstance(listed, list) else []:
            for *parents, leaf in keys:
                holder: Any = item
                for part in parents:
                    holder = holder.get(part) if isinstance(holder, dict) else None
                if isinstance(holder, dict) and isinstance(holder.get(leaf), str):
                    holder[leaf] = _anchored(holder[leaf], base)


def _anchored(value: str, base: Path) -> str:
    try:
        candidate = Path(value).expanduser()
    except RuntimeError:  # "~nosuchuser/...": leave it for validation to report
        candidate = Path(value)
    return str(candidate if candidate.is_absolute() else base / candidate)


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (a misspelt option would silently keep its default)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


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


def resolve_secrets(environ: Mapping[str, str]) -> tuple[Secrets, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    values: dict[str, str | None] = {}
    for name in ("MASTER_KEY", "DATABASE_URL", "REDIS_URL", "REGISTRATION_TOKEN"):
        try:
            values[name] = _read_secret(environ, name)
        except ValueError as exc:
            problems.append(ConfigProblem(f"env:BASTION_{name}", str(exc)))
            values[name] = None

    master_key: bytes | None = None
    source = "none"
    if (encoded := values["MASTER_KEY"]) is not None:
        try:
            master_key = decode_master_key(encoded)
            source = "environment"
        except ValueError as exc:
            problems.append(ConfigProblem("env:BASTION_MASTER_KEY", str(exc)))
        key_file = environ.get("BASTION_MASTER_KEY_FILE", "")
        if key_file and Path(key_file).name == DEV_MASTER_KEY_FILENAME:
            source = "development"

    urls: dict[str, str | None] = {}
    for name, check in (("DATABASE_URL", normalise_database_url), ("REDIS_URL", check_redis_url)):
        urls[name] = values[name]
        if values[name] is not None:
            try:
                urls[name] = check(values[name] or "")
            except ValueError as exc:
                problems.append(ConfigProblem(f"env:BASTION_{name}", str(exc)))
    secrets = Secrets(
        master_key=master_key,
        master_key_source=source,
        database_url=urls["DATABASE_URL"],
        redis_url=urls["REDIS_URL"],
        registration_token=values["REGISTRATION_TOKEN"],
    )
    return secrets, problems


def _read_secret(environ: Mapping[str, str], name: str) -> str | None:
    direct = environ.get(f"BASTION_{name}")
    file_name = environ.get(f"BASTION_{name}_FILE")
    if direct and file_name:
        raise ValueError(f"set BASTION_{name} or BASTION_{name}_FILE, not both")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the file named by BASTION_{name}_FILE: {exc}") from exc
    return direct or None


def decode_master_key(encoded: str) -> bytes:
    """A master key is 32 random bytes, base64url-encoded (padding optional)."""
    text = encoded.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("master key is not valid base64url") from exc
    if len(raw) != MASTER_KEY_BYTES:
        raise ValueError(
            f"master key must decode to {MASTER_KEY_BYTES} bytes "
            "(create one with `bastion keys new-master-key --out FILE`)"
        )
    return raw


def encode_master_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
