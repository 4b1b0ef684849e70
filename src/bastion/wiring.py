"""The composition root: configuration in, a running Bastion out.

This is the only module that reads the process environment (``BASTION_*``); everything
else receives settings, stores and a clock from here.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from starlette.types import ASGIApp

from bastion import config_source
from bastion.audit import AuditEvent, AuditPipeline, JsonLinesSink, Outcome
from bastion.audit.sinks import AuditSink, LoggingSink
from bastion.authserver.registry import client_from_settings
from bastion.authserver.server import build_auth_server
from bastion.clock import Clock, SystemClock
from bastion.config import (
    DEV_MASTER_KEY_FILENAME,
    Settings,
    decode_master_key,
    encode_master_key,
    load_settings,
)
from bastion.config_source import ConfigSource
from bastion.crypto.envelope import Envelope
from bastion.crypto.signing import SigningKeys
from bastion.device.google_api import build_decoder
from bastion.device.play_integrity import Decoder
from bastion.device.service import DeviceTrust
from bastion.errors import ConfigError, ConfigProblem, MasterKeyError
from bastion.gateway.assembly import build_gateway
from bastion.gateway.routes import id_source_problems, object_forms
from bastion.gateway.service_credentials import service_credential
from bastion.gateway.transport import TCP, UpstreamTransport
from bastion.gateway.validation import InputRules
from bastion.guards.service import build_guards
from bastion.runtime import Runtime
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from bastion.store.sql.database import Database
from bastion.store.sql.keys import SqlSigningKeyStore
from bastion.web.app import build_app

log = logging.getLogger("bastion")


def find_config(option: Path | None, environ: Mapping[str, str] | None = None) -> ConfigSource:
    """The configuration file to read and how it was found (``bastion.config_source``)."""
    env = os.environ if environ is None else environ
    return config_source.find_config(option, env, Path.cwd())


def load(
    config: Path | ConfigSource | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Validated settings, including every declared client against the client rules.

    ``config`` is a path given with ``--config``, a source already found, or None to
    look for one.
    """
    env = os.environ if environ is None else environ
    source = config if isinstance(config, ConfigSource) else find_config(config, env)
    settings = load_settings(source.path, env)
    problems = []
    for index, declared in enumerate(settings.oauth.clients):
        try:
            client_from_settings(declared, index)
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(gateway_problems(settings, env))
    problems.extend(device_problems(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def gateway_problems(settings: Settings, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Schemas that do not compile, ids that cannot be found or are spelled two ways, and
    static credentials that cannot be read."""
    problems = []
    rules: dict[str, InputRules | None] = {}
    for index, route in enumerate(settings.gateway.routes):
        try:
            rules[route.label] = None if route.input is None else InputRules.compile(route.input)
        except ValueError as exc:
            problems.append(ConfigProblem(f"gateway.routes.{index}.input", str(exc)))
    try:
        forms = object_forms(settings.gateway.routes, rules)
    except ValueError as exc:
        problems.append(ConfigProblem("gateway.routes", str(exc)))
        forms = {}
    for index, route in enumerate(settings.gateway.routes):
        if route.label in rules:
            for problem in id_source_problems(route, rules[route.label], forms):
                problems.append(ConfigProblem(f"gateway.routes.{index}.objects", problem))
    for index, route in enumerate(settings.gateway.routes):
        cohort = None if route.device is None else route.device.cohort
        if cohort is not None and cohort not in settings.device.cohorts:
            problems.append(
                ConfigProblem(
                    f"gateway.routes.{index}.device.cohort",
                    f"no cohort {cohort!r} in [device.cohorts]",
                )
            )
    audience = gateway_audience(settings)
    for index, upstream in enumerate(settings.gateway.upstreams):
        try:
            service_credential(upstream, environ, SystemClock())
        except ValueError as exc:
            problems.append(ConfigProblem(f"gateway.upstreams.{index}.credential", str(exc)))
        if upstream.credential.type == "token_exchange" and upstream.token_audience == audience:
            # Internal tokens would then be accepted by the gateway itself.
            problems.append(
                ConfigProblem(
                    f"gateway.upstreams.{index}.credential.audience",
                    "an internal token's audience cannot be the gateway's own audience",
                )
            )
    return problems


def device_problems(settings: Settings) -> list[ConfigProblem]:
    """A Play Integrity service account file that cannot be used stops the start: every
    Standard request would otherwise fail at the first device."""
    try:
        decoder = build_decoder(settings)
    except ValueError as exc:
        return [ConfigProblem("device.play_integrity.service_account_file", str(exc))]
    del decoder  # nothing was opened: its session starts with the first request
    return []


def gateway_audience(settings: Settings) -> str:
    """The ``aud`` a Bastion access token needs at the gateway."""
    return settings.gateway.audience or settings.oauth.default_audience or settings.issuer


def master_key(
    settings: Settings,
    audit: AuditPipeline | None = None,
    *,
    ring_has_keys: bool = False,
    create: bool = True,
) -> bytes:
    """The configured master key or, in development only, one kept in the data directory.

    An existing development key file is never replaced: if it is unreadable or malformed
    we refuse, because a new key could not open the ring the old one sealed. For the same
    reason no new file is made while the ring already holds keys. With ``create=False``
    (read-only commands) no file is made either: while the ring is empty nothing has been
    sealed yet, so a key that lives only in this process opens all there is.
    """
    if settings.secrets.master_key is not None:
        return settings.secrets.master_key
    if settings.is_production:
        raise MasterKeyError("production needs BASTION_MASTER_KEY or BASTION_MASTER_KEY_FILE")
    path = settings.data_dir / DEV_MASTER_KEY_FILENAME
    if not path.exists():
        if ring_has_keys:
            raise MasterKeyError(
                f"the key ring holds keys but the development master key {path} is missing: "
                "restore it, or set BASTION_MASTER_KEY to the key that sealed the ring"
            )
        if not create:
            return secrets.token_bytes(32)
        if _create_key_file(path):
            # The message starts on the record's own line: a handler that shows one line
            # per record (journald, a log viewer's list) must not show a bare "WARNING".
            log.warning(
                "DEVELOPMENT MASTER KEY generated at %s: anyone who can read this file can "
                "read every key Bastion stores. Production refuses it: set "
                "BASTION_MASTER_KEY or BASTION_MASTER_KEY_FILE.",
                path,
            )
            if audit is not None:
                audit.emit(
                    AuditEvent(
                        "keys.master_key.generated",
                        Outcome.SUCCESS,
                        target=str(path),
                        details={"environment": settings.environment},
                    )
                )
    try:
        return decode_master_key(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MasterKeyError(f"development master key {path} is unreadable: {exc}") from exc


def _create_key_file(path: Path) -> bool:
    """Write a new key file atomically; False if another process made one first.

    The key is written whole to a temporary file and then hard-linked into place, so a
    concurrent reader sees either no file or a complete one, never a partial write.
    """
    try:
        return _write_key_file(path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise MasterKeyError(
            f"cannot create the development master key {path}: {exc.strerror or exc}"
        ) from exc


def _write_key_file(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".master-key-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(encode_master_key(secrets.token_bytes(32)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # FileExistsError: another process made it first
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new name survives a crash, not only the bytes
        finally:
            os.close(directory)
        return True
    finally:
        os.unlink(temporary)


def open_audit(
    settings: Settings, extra_sinks: tuple[AuditSink, ...] = (), *, lazy: bool = False
) -> AuditPipeline:
    """The audit pipeline; ``lazy`` creates the audit file at the first event, not now."""
    sinks: list[AuditSink] = [JsonLinesSink(settings.audit_path, lazy=lazy), *extra_sinks]
    if settings.audit.stderr:
        sinks.append(LoggingSink())
    return AuditPipeline(sinks)


def open_hot_store(settings: Settings, clock: Clock) -> HotStore:
    url = settings.redis_url
    if url is None:
        return MemoryHotStore(clock)
    return RedisHotStore(
        url,
        prefix=settings.hot_state.key_prefix,
        connect_timeout=settings.hot_state.connect_timeout,
    )


def open_database(settings: Settings, *, create: bool = True) -> Database:
    """The configured database; ``create=False`` never makes an SQLite file (read-only)."""
    return Database(
        settings.database_url,
        pool_size=settings.database.pool_size,
        connect_timeout=settings.database.connect_timeout,
        create=create,
        synchronous=settings.database.sqlite_synchronous,
    )


async def migrate(settings: Settings) -> list[str]:
    """Bring the schema to head (what `bastion db upgrade` does, without the progress bar)."""
    database = open_database(settings)
    try:
        return await database.upgrade()
    finally:
        await database.close()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    require_schema: bool = True,
    key_ring: Literal["ensure", "load", "none"] = "ensure",
    audit_sinks: tuple[AuditSink, ...] = (),
    environ: Mapping[str, str] | None = None,
    transport: UpstreamTransport = TCP,
    read_only: bool = False,
    decoder: Decoder | None = None,
) -> AsyncIterator[Runtime]:
    """Open stores and unlock the key ring, or raise before anything is served.

    ``key_ring``: "ensure" loads it and creates the first key if it is empty (serving),
    "load" only loads it (admin commands), "none" leaves it empty (diagnostics).
    ``transport``: how the gateway connects to upstreams (tests pass an in-process one).
    ``read_only``: create no file (development master key, audit file until an event is
    recorded), for commands that only look. No database file is ever created here.
    ``decoder``: Google's ``decodeIntegrityToken`` for Play Integrity tokens that are not
    verified locally (tests pass a fake).

    Raises ``SchemaNotCurrent`` on an unmigrated database, ``MasterKeyError`` when the
    master key does not open the ring (the ring is left untouched), ``StoreUnavailable``
    when the database cannot be reached at start.
    """
    clock = clock or SystemClock()
    # Only `bastion db upgrade` makes a database: a missing one is a wrong path, not a wish.
    database = open_database(settings, create=False)
    hot = open_hot_store(settings, clock)
    audit: AuditPipeline | None = None
    try:
        if require_schema:
            await database.require_current_schema()
        # After the schema check, so that a command pointed at the wrong place leaves no
        # audit file there either.
        audit = open_audit(settings, audit_sinks, lazy=read_only)
        store = SqlSigningKeyStore(database)
        ring_has_keys = (
            key_ring != "none"
            and settings.secrets.master_key is None
            and bool(await store.list_keys())
        )
        secret = master_key(settings, audit, ring_has_keys=ring_has_keys, create=not read_only)
        keys = SigningKeys(store, Envelope(secret), settings.keys, clock)
        try:
            if key_ring == "ensure":
                await keys.ensure_signing_key()
            elif key_ring == "load":
                await keys.load()
        except MasterKeyError as exc:
            audit.emit(
                AuditEvent(
                    "keys.unlock", Outcome.DENIED, target="key ring", details={"reason": str(exc)}
                )
            )
            raise
        auth = build_auth_server(settings, database, hot, keys, audit, clock, secret)
        guards = build_guards(
            settings, hot=hot, database=database, audit=audit, clock=clock, master_key=secret
        )
        # Google's API for Play Integrity tokens not verified here, unless a test gives one.
        owned_decoder = None if decoder is not None else build_decoder(settings, clock=clock)
        device = DeviceTrust(settings, auth.devices, hot, audit, clock, decoder or owned_decoder)
        gateway = None
        if settings.gateway.routes:
            gateway = build_gateway(
                settings,
                gateway_audience(settings),
                access=auth.access,
                dpop=auth.dpop,
                database=database,
                hot=hot,
                audit=audit,
                clock=clock,
                environ=os.environ if environ is None else environ,
                guards=guards,
                transport=transport,
                risk=auth.risk,
                device=device,
            )
            await gateway.start()
        try:
            yield Runtime(
                settings, clock, database, hot, keys, audit, auth, guards, gateway, device
            )
        finally:
            if gateway is not None:
                await gateway.close()
            if owned_decoder is not None:
                await owned_decoder.close()
    finally:
        await hot.close()
        await database.close()
        if audit is not None:
            audit.close()


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The served app; with no argument (workers), settings are found as the CLI finds them."""
    resolved = settings or load()
    return build_app(resolved, lambda: open_runtime(resolved), served=True)
