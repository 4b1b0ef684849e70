"""Credentials an upstream expects from the gateway itself, kept current without a restart.

- ``static``: a header whose value comes from an environment variable (read once, at
  start) or a file. A file is looked at again at most once a second and re-read when it
  changed (size, modification time or inode: a Kubernetes secret swaps a symlink), and
  on demand (``SIGHUP``). A file that cannot be read keeps the last good value, logged:
  a secret half-written during a rotation must not take every request down.
- ``client_credentials``: an access token from the upstream's own authorization server
  (RFC 6749 §4.4), fetched once for every request that needs it and renewed ahead of
  its expiry (``renewal``); its client secret is an environment variable or a file,
  watched like the static one. While no usable token can be had, requests fail with 502
  (fail closed). An upstream answering 401 makes the next request fetch a new token.

Secrets never reach a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import quote_plus

import aiohttp
import orjson

from bastion.clock import Clock
from bastion.errors import UpstreamFailure
from bastion.gateway.renewal import Renewing, Timing
from bastion.gateway.settings import CredentialSettings, UpstreamSettings
from bastion.gateway.transport import DEFAULT_KEEPALIVE, DEFAULT_LIMIT, TCP, UpstreamTransport

log = logging.getLogger("bastion.gateway")

# How often a secret file is looked at (one stat call), in seconds.
FILE_CHECK_INTERVAL = 1.0
MAX_TOKEN_RESPONSE_BYTES = 65_536
# An answer without expires_in (RFC 6749 §5.1 makes it optional) is renewed this often.
DEFAULT_EXPIRES_IN = 60.0
# Use a fetched token while it has this long left; renew it when it has less than this.
MIN_REMAINING = 10.0
RENEW_AHEAD = 60.0
# After an upstream 401, a new token is fetched at most this often.
REFETCH_INTERVAL = 10.0
UNAVAILABLE = "The service behind this API is unavailable. Try again shortly."


class ServiceCredential(Protocol):
    header: str

    async def current(self) -> str:
        """The header's value for the next upstream request."""

    def rejected(self, sent: str) -> None:
        """The upstream answered 401 to a request that carried ``sent``."""

    def reload(self) -> None:
        """Read secret files again now (``SIGHUP``)."""

    async def close(self) -> None: ...


def _one_line(value: str, source: str) -> str:
    value = value.strip()
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{source} must hold one line without control characters")
    return value


class Secret:
    """A secret from the environment (fixed) or a file (watched); ``ValueError`` at start."""

    def __init__(self, settings: CredentialSettings, environ: Mapping[str, str], clock: Clock):
        self._clock = clock
        self._path: Path | None = settings.file
        self._stamp: tuple[int, int, int, int] | None = None
        self._checked = clock.now()
        if settings.env is not None:
            value = environ.get(settings.env)
            if not value:
                raise ValueError(f"environment variable {settings.env} is not set")
            self._value = _one_line(value, settings.env)
        else:
            self._value = self._read()

    def __repr__(self) -> str:
        return f"Secret(file={self._path!s}, value=<redacted>)"

    def value(self) -> str:
        if self._path is not None:
            now = self._clock.now()
            if now - self._checked >= FILE_CHECK_INTERVAL:
                self._checked = now
                self._refresh(force=False)
        return self._value

    def reload(self) -> None:
        if self._path is not None:
            self._refresh(force=True)

    def _refresh(self, *, force: bool) -> None:
        try:
            if force or _stamp(self._path) != self._stamp:
                self._value = self._read()
                log.info("re-read the secret in %s", self._path)
        except ValueError as exc:
            log.warning("keeping the last good secret: %s", exc)

    def _read(self) -> str:
        assert self._path is not None
        try:
            stamp = _stamp(self._path)
            value = _one_line(self._path.read_text(encoding="utf-8"), str(self._path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {self._path}: {type(exc).__name__}") from exc
        self._stamp = stamp
        return value


def _stamp(path: Path | None) -> tuple[int, int, int, int]:
    """What changes when a file is replaced or rewritten: a copy that keeps the size and
    modification time (``cp -p``) still changes the inode change time."""
    assert path is not None
    found = os.stat(path)
    return (found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino)


class StaticCredential:
    def __init__(self, settings: CredentialSettings, secret: Secret) -> None:
        self.header = settings.header
        self._prefix = settings.prefix
        self._secret = secret

    def __repr__(self) -> str:
        return f"StaticCredential(header={self.header!r}, value=<redacted>)"

    async def current(self) -> str:
        return self._prefix + self._secret.value()

    def rejected(self, sent: str) -> None:
        """A static value cannot be renewed; the operator rotates it."""

    def reload(self) -> None:
        self._secret.reload()

    async def close(self) -> None:
        """Nothing is held open."""


class ClientCredentials:
    """RFC 6749 §4.4 against the upstream's token endpoint, one token shared by all."""

    header = "authorization"

    def __init__(
        self,
        upstream: UpstreamSettings,
        secret: Secret,
        clock: Clock,
        tls: ssl.SSLContext | None,
        transport: UpstreamTransport = TCP,
    ) -> None:
        settings = upstream.credential
        if settings.token_url is None or settings.client_id is None:
            raise ValueError("a client_credentials credential needs token_url and client_id")
        self._token_url = settings.token_url
        self._client_id = settings.client_id
        self._settings = settings
        self._name = upstream.name
        self._secret = secret
        self._clock = clock
        self._tls = tls
        self._transport = transport
        self._timeout = aiohttp.ClientTimeout(
            total=upstream.total_timeout, connect=upstream.connect_timeout
        )
        self._tokens = Renewing(clock, max_entries=1)
        self._lifetime = DEFAULT_EXPIRES_IN
        self._dropped_at = -REFETCH_INTERVAL
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ClientCredentials(upstream={self._name!r}, client_id={self._client_id!r})"

    async def current(self) -> str:
        timing = Timing.for_lifetime(self._lifetime, MIN_REMAINING, RENEW_AHEAD)
        return "Bearer " + await self._tokens.get("token", self._fetch, timing)

    def rejected(self, sent: str) -> None:
        """Fetch a new token on the next request, unless it was fetched moments ago.

        Only the token that was refused is dropped (a newer one stays), and at most once
        per ``REFETCH_INTERVAL``: an app could otherwise make every request it sends
        fetch a token from the upstream's authorization server.
        """
        now = self._clock.now()
        if now - self._dropped_at < REFETCH_INTERVAL:
            return
        if self._tokens.value("token") == sent.removeprefix("Bearer "):
            self._dropped_at = now
            self._tokens.forget("token")

    def reload(self) -> None:
        self._secret.reload()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self) -> tuple[str, float]:
        settings = self._settings
        form = {"grant_type": "client_credentials"}
        if settings.scope:
            form["scope"] = settings.scope
        if settings.resource:
            form["resource"] = settings.resource  # RFC 8707 §2
        headers = {"accept": "application/json"}
        if settings.auth_method == "client_secret_post":
            form |= {"client_id": self._client_id, "client_secret": self._secret.value()}
        else:
            # RFC 6749 §2.3.1: both parts form-encoded, then joined for Basic (RFC 7617).
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._secret.value())}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                # Without a context of the upstream's own, https is verified as usual.
                connector=self._transport.connector(
                    ssl=self._tls or True, limit=DEFAULT_LIMIT, keepalive_timeout=DEFAULT_KEEPALIVE
                ),
            )
        started = self._clock.now()
        try:
            async with self._session.post(
                self._token_url,
                data=form,
                timeout=self._timeout,
                allow_redirects=False,
                headers=headers,
            ) as response:
                raw = await response.content.read(MAX_TOKEN_RESPONSE_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("token endpoint of upstream %s failed: %s", self._name, type(exc).__name__)
            raise UpstreamFailure(UNAVAILABLE) from exc
        token, expires_in = _token_response(status, raw, self._name)
        self._lifetime = expires_in
        return token, started + expires_in


def _token_response(status: int, raw: bytes, name: str) -> tuple[str, float]:
    """The access token and its lifetime from a token response (RFC 6749 §5.1), or 502."""
    try:
        document = orjson.loads(raw) if len(raw) <= MAX_TOKEN_RESPONSE_BYTES else None
    except orjson.JSONDecodeError:
        document = None
    if status != 200 or not isinstance(document, dict):
        error = document.get("error") if isinstance(document, dict) else None
        # The error code is the server's own vocabulary; the body may hold anything.
        code = error if isinstance(error, str) and error.isidentifier() else "-"
        log.warning("token endpoint of upstream %s answered %d (error %s)", name, status, code)
        raise UpstreamFailure(UNAVAILABLE)
    token = document.get("access_token")
    kind = document.get("token_type")
    expires_in = document.get("expires_in", DEFAULT_EXPIRES_IN)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        expires_in = 0
    # RFC 6749 §7.1: the type is case-insensitive; only bearer tokens can be sent as is.
    bearer = isinstance(kind, str) and kind.lower() == "bearer"
    if not isinstance(token, str) or not _printable(token) or not bearer or expires_in <= 0:
        log.warning("token endpoint of upstream %s answered an unusable token", name)
        raise UpstreamFailure(UNAVAILABLE)
    return token, float(expires_in)


def _printable(token: str) -> bool:
    return bool(token) and all(0x20 < ord(c) < 0x7F for c in token)


def service_credential(
    upstream: UpstreamSettings,
    environ: Mapping[str, str],
    clock: Clock,
    tls: ssl.SSLContext | None = None,
    transport: UpstreamTransport = TCP,
) -> ServiceCredential | None:
    """The upstream's own credential, or ``None``; ``ValueError`` when its secret cannot be
    read at start (``bastion check`` reports it)."""
    settings = upstream.credential
    if settings.type == "static":
        return StaticCredential(settings, Secret(settings, environ, clock))
    if settings.type == "client_credentials":
        return ClientCredentials(upstream, Secret(settings, environ, clock), clock, tls, transport)
    return None
