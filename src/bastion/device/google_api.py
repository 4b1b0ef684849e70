"""Google's Play Integrity API: the ``Decoder`` of Standard requests' tokens.

Only Google's servers decrypt a Standard request's token, through
``POST {endpoint}/v1/{packageName}:decodeIntegrityToken`` with the body
``{"integrity_token": token}``; the answer's ``tokenPayloadExternal`` is the verdict
("Make a standard API request", step "Decrypt and verify the integrity verdict",
https://developer.android.com/google/play/integrity/standard). ``check_verdict`` then
checks it as it checks a classic one.

The call is authorised by a Google Cloud service account whose project is linked to the
app in the Play Console. Its JSON key file gives ``client_email``, ``private_key`` (RSA,
PEM), ``private_key_id`` and ``token_uri``. An access token comes from the JWT bearer
grant (RFC 7523 §2.1) as Google's "Using OAuth 2.0 for Server to Server Applications"
describes it (https://developers.google.com/identity/protocols/oauth2/service-account,
"Preparing to make an authorized API call"): an RS256 JWT whose ``iss`` is the account,
``scope`` the Play Integrity scope, ``aud`` the token endpoint, and which lives at most
one hour. That token is shared by every decode and renewed ahead of its expiry, one
fetch at a time however many decodes wait for it (``bastion.gateway.renewal``).

What Google answers is translated here, at the boundary:

- the verdict → returned, unchecked;
- 400 ``INVALID_ARGUMENT`` (not a token, another app's token, one Google cannot
  decode) → ``IntegrityError("token_invalid")``: a refusal of that token;
- 401 (the access token expired early or was revoked) → a new access token, and the
  call once more; a second 401 is an outage;
- anything else (unreachable, timed out, 5xx, quota, 403 because the account is not
  linked to the app, an answer that cannot be read) → ``IntegrityUnavailable``: the
  token was not judged, and the caller's outage fallback applies.

Neither the integrity token, the access token nor the key reaches a log line or a
``repr``: logs name the HTTP status and Google's error status only.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bastion.clock import Clock, SystemClock
from bastion.config import Settings
from bastion.configtypes import remote_plain_http
from bastion.crypto.jws import b64url
from bastion.device.play_integrity import MAX_TOKEN
from bastion.errors import IntegrityError, IntegrityUnavailable, UnavailableReason
from bastion.gateway.renewal import Renewing, Timing
from bastion.gateway.transport import DEFAULT_KEEPALIVE, DEFAULT_LIMIT, TCP, UpstreamTransport

__all__ = [
    "PLAY_INTEGRITY_SCOPE",
    "PlayIntegrityApi",
    "ServiceAccount",
    "build_decoder",
    "grant_assertion",
]

log = logging.getLogger("bastion.device")

PLAY_INTEGRITY_SCOPE: Final = "https://www.googleapis.com/auth/playintegrity"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
# Google refuses an assertion that lives longer than an hour.
ASSERTION_LIFETIME: Final = 3600
# A verdict is a few kilobytes; a token answer a few hundred bytes.
MAX_ANSWER_BYTES: Final = 65_536
# Google's access tokens live an hour. Renew one when it has less than five minutes
# left (in the background, the old one still used); never use one with under a minute.
RENEW_AHEAD: Final = 300.0
MIN_REMAINING: Final = 60.0
_CACHE_KEY: Final = "google"
# Google's key files are a couple of kilobytes; anything far larger is not one.
_MAX_KEY_FILE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class ServiceAccount:
    """What a service account's JSON key file holds that the grant needs."""

    client_email: str
    private_key_id: str
    token_uri: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_file(cls, path: Path, *, token_uri: str | None = None) -> ServiceAccount:
        """Read a key file; ``ValueError`` naming what is wrong (never the key itself).
        ``token_uri`` replaces the file's (a test's local token endpoint)."""
        try:
            with path.open("rb") as file:
                raw = file.read(_MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {type(exc).__name__}") from exc
        try:
            document = orjson.loads(raw) if len(raw) <= _MAX_KEY_FILE_BYTES else None
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise ValueError(f"{path} is not a service account key file (JSON object)")
        return cls.from_info(document, token_uri=token_uri, source=str(path))

    @classmethod
    def from_info(
        cls, info: dict[str, Any], *, token_uri: str | None = None, source: str = "key file"
    ) -> ServiceAccount:
        if info.get("type", "service_account") != "service_account":
            raise ValueError(f"{source}: type is not service_account")
        values: dict[str, str] = {}
        for name in ("client_email", "private_key", "private_key_id", "token_uri"):
            value = info.get(name)
            if name == "token_uri" and token_uri is not None:
                value = token_uri
            if not isinstance(value, str) or not value:
                raise ValueError(f"{source}: {name} missing")
            values[name] = value
        try:
            key = serialization.load_pem_private_key(values["private_key"].encode(), None)
        except (ValueError, TypeError) as exc:
            # The message of the loader is not repeated: it could quote the key.
            raise ValueError(f"{source}: private_key is not an unencrypted PEM key") from exc
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise ValueError(f"{source}: private_key is not an RSA key of 2048 bits or more")
        return cls(
            client_email=values["client_email"],
            private_key_id=values["private_key_id"],
            token_uri=values["token_uri"],
            private_key=key,
        )


def grant_assertion(account: ServiceAccount, now: float) -> str:
    """The RS256 JWT of the JWT bearer grant (RFC 7523 §3) as Google asks for it:
    ``kid`` the key's id, ``iss`` the account, ``scope`` Play Integrity's, ``aud`` the
    token endpoint, issued now and expiring within the hour."""
    issued = int(now)
    header = {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}
    claims = {
        "iss": account.client_email,
        "scope": PLAY_INTEGRITY_SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    signature = account.private_key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{b64url(signature)}"


class PlayIntegrityApi:
    """``Decoder`` through Google's ``decodeIntegrityToken`` (see the module docstring)."""

    def __init__(
        self,
        account: ServiceAccount,
        *,
        endpoint: str,
        timeout: float,
        clock: Clock,
        tls: ssl.SSLContext | None = None,
        transport: UpstreamTransport = TCP,
    ) -> None:
        self._account = account
        self._endpoint = endpoint.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._tls = tls
        self._transport = transport
        self._tokens = Renewing(clock, max_entries=1)
        self._lifetime = float(ASSERTION_LIFETIME)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"PlayIntegrityApi(account={self._account.client_email!r})"

    async def decode(self, package_name: str, token: str) -> dict[str, Any]:
        """The verdict (``tokenPayloadExternal``) of ``token``, unchecked."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN or not _printable(token):
            # Not worth a call: no integrity token looks like this.
            raise IntegrityError("malformed", "not an integrity token")
        url = f"{self._endpoint}/v1/{quote(package_name, safe='.')}:decodeIntegrityToken"
        body = orjson.dumps({"integrity_token": token})
        for attempt in (1, 2):
            access = await self._access_token()
            status, raw = await self._post(
                url, body, {"authorization": f"Bearer {access}", "content-type": "application/json"}
            )
            if status == 401 and attempt == 1:
                # Revoked or expired early: this token only is dropped, then one retry.
                if self._tokens.value(_CACHE_KEY) == access:
                    self._tokens.forget(_CACHE_KEY)
                continue
            return _verdict(status, raw)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _access_token(self) -> str:
        timing = Timing.for_lifetime(self._lifetime, MIN_REMAINING, RENEW_AHEAD)
        return await self._tokens.get(_CACHE_KEY, self._fetch_token, timing)

    async def _fetch_token(self) -> tuple[str, float]:
        started = self._clock.now()
        form = {"grant_type": JWT_BEARER, "assertion": grant_assertion(self._account, started)}
        status, raw = await self._post(
            self._account.token_uri, form, {"accept": "application/json"}
        )
        token, expires_in = _access_token_answer(status, raw)
        self._lifetime = expires_in
        return token, started + expires_in

    async def _post(
        self, url: str, data: bytes | dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=self._transport.connector(
                    ssl=self._tls or True, limit=DEFAULT_LIMIT, keepalive_timeout=DEFAULT_KEEPALIVE
                ),
            )
        try:
            async with self._session.post(
                url, data=data, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
                return response.status, raw
        except TimeoutError as exc:
            log.warning("Play Integrity API: no answer in time")
            raise IntegrityUnavailable("timeout") from exc
        except aiohttp.ClientError as exc:
            log.warning("Play Integrity API unreachable: %s", type(exc).__name__)
            raise IntegrityUnavailable("unreachable", type(exc).__name__) from exc


def _json(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_ANSWER_BYTES:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _access_token_answer(status: int, raw: bytes) -> tuple[str, float]:
    """The access token and its lifetime (RFC 6749 §5.1), or ``IntegrityUnavailable``:
    a refused grant (a deleted key, a disabled account, a clock far off) is Bastion's
    own credential failing, not the device's token."""
    document = _json(raw)
    if status != 200 or document is None:
        error = document.get("error") if document is not None else None
        code = error if isinstance(error, str) and error.isidentifier() else "-"
        reason: UnavailableReason = "server_error" if status >= 500 else "credentials_refused"
        log.error("Google's token endpoint answered %d (error %s)", status, code)
        raise IntegrityUnavailable(reason, f"token endpoint {status}")
    token = document.get("access_token")
    kind = document.get("token_type")
    expires_in = document.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        expires_in = 0
    bearer = isinstance(kind, str) and kind.lower() == "bearer"
    if not isinstance(token, str) or not _printable(token) or not bearer or expires_in <= 0:
        log.error("Google's token endpoint answered an unusable token")
        raise IntegrityUnavailable("bad_answer", "token endpoint")
    return token, float(min(expires_in, ASSERTION_LIFETIME))


def _verdict(status: int, raw: bytes) -> dict[str, Any]:
    document = _json(raw)
    if status == 200:
        payload = None if document is None else document.get("tokenPayloadExternal")
        if not isinstance(payload, dict):
            log.warning("Play Integrity API answered 200 without a verdict")
            raise IntegrityUnavailable("bad_answer")
        return payload
    google_status = _google_status(document)
    if status == 400 and google_status == "INVALID_ARGUMENT":
        raise IntegrityError("token_invalid")
    if status in (401, 403):
        # 401 twice, or 403: the service account is refused or not linked to this app in
        # the Play Console. An operator must act; the device is not at fault.
        log.error("Play Integrity API refused Bastion's account: %d %s", status, google_status)
        raise IntegrityUnavailable("denied", f"{status} {google_status}")
    log.warning("Play Integrity API answered %d %s", status, google_status)
    raise IntegrityUnavailable("server_error", f"{status} {google_status}")


def _google_status(document: dict[str, Any] | None) -> str:
    """The ``error.status`` of Google's error answer (``INVALID_ARGUMENT``, ...), or "-":
    a word of Google's vocabulary, safe to log, unlike the message."""
    error = None if document is None else document.get("error")
    found = error.get("status") if isinstance(error, dict) else None
    return found if isinstance(found, str) and found.isidentifier() else "-"


def _printable(value: str) -> bool:
    return bool(value) and all(0x20 < ord(c) < 0x7F for c in value)


def build_decoder(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tls: ssl.SSLContext | None = None,
    transport: UpstreamTransport = TCP,
) -> PlayIntegrityApi | None:
    """The decoder ``[device.play_integrity]`` configures, or ``None`` without a service
    account file. ``ValueError`` when the key file cannot be used, or when a token would
    travel over plain http to another machine."""
    api = settings.device.play_integrity
    if api.service_account_file is None:
        return None
    account = ServiceAccount.from_file(api.service_account_file, token_uri=api.token_uri)
    for name, url in (("endpoint", api.endpoint), ("token_uri", account.token_uri)):
        if remote_plain_http(url) or not url.startswith(("https://", "http://")):
            raise ValueError(f"device.play_integrity: {name} must be an https URL")
    return PlayIntegrityApi(
        account,
        endpoint=api.endpoint,
        timeout=api.timeout,
        clock=clock or SystemClock(),
        tls=tls,
        transport=transport,
    )
