"""A local stand-in for Google's Play Integrity API and token endpoint, since Google
cannot be reached from the tests.

It speaks what Bastion's decoder relies on, and checks it as Google does:

- ``POST /token``: the JWT bearer grant (RFC 7523 §2.1) of a service account
  (https://developers.google.com/identity/protocols/oauth2/service-account). The
  assertion's RS256 signature is verified (by joserfc, not by the code that made it)
  against the test account's public key, with its ``kid``, ``iss``, ``scope``, ``aud``
  and a lifetime of at most an hour; the answer is an access token with
  ``expires_in``. A refused grant answers 400 ``invalid_grant``.
- ``POST /v1/{packageName}:decodeIntegrityToken``: the bearer must be a token this fake
  issued, unexpired by the test's clock and not revoked (else 401 ``UNAUTHENTICATED``);
  the body's ``integrity_token`` (or ``integrityToken``: Google reads both spellings)
  must be a token the test registered for that package (else 400
  ``INVALID_ARGUMENT``); the answer is ``{"tokenPayloadExternal": verdict}``.

A test queues ``Answer``s to make either endpoint fail, stall or answer garbage.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from bastion.clock import Clock

SCOPE = "https://www.googleapis.com/auth/playintegrity"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class TestAccount:
    """A service account made for one test: its key and the file Google would give."""

    __test__ = False

    client_email: str = "bastion-verifier@example-project.iam.gserviceaccount.com"
    private_key_id: str = field(default_factory=lambda: secrets.token_hex(20))
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        repr=False,
    )

    def info(self, token_uri: str) -> dict[str, str]:
        """The key file's members, in the shape Google's console downloads."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": self.private_key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }

    def write(self, directory: Path, token_uri: str) -> Path:
        path = directory / "service-account.json"
        path.write_bytes(orjson.dumps(self.info(token_uri)))
        path.chmod(0o600)
        return path


@dataclass(frozen=True)
class Answer:
    """What an endpoint answers instead of its usual answer: ``body`` as is (bytes) or
    as JSON, after ``delay`` seconds."""

    status: int = 200
    body: bytes | dict[str, Any] | list[Any] = b""
    delay: float = 0.0

    def response(self) -> web.Response:
        raw = self.body if isinstance(self.body, bytes) else orjson.dumps(self.body)
        return web.Response(status=self.status, body=raw, content_type="application/json")


def google_error(status: int, code: str, message: str = "") -> Answer:
    """An error in the shape of Google's APIs (https://cloud.google.com/apis/design/errors)."""
    return Answer(status, {"error": {"code": status, "message": message, "status": code}})


class FakeGooglePlay:
    """The token endpoint and ``decodeIntegrityToken`` on 127.0.0.1 (see the module)."""

    def __init__(self, account: TestAccount, clock: Clock, *, expires_in: int = 3599) -> None:
        self.account = account
        self.clock = clock
        self.expires_in = expires_in
        self.token_fetches = 0
        self.decode_calls = 0
        self.assertions: list[dict[str, Any]] = []
        self.bearers_seen: list[str] = []
        self.token_answers: deque[Answer] = deque()
        self.decode_answers: deque[Answer] = deque()
        # How long a token fetch takes: a window in which concurrent decodes pile up.
        self.token_delay = 0.0
        self._verdicts: dict[str, tuple[str, dict[str, Any]]] = {}
        self._issued: dict[str, float] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def register(self, token: str, package_name: str, verdict: dict[str, Any]) -> None:
        """Google will decode ``token`` (made by ``package_name``) to ``verdict``."""
        self._verdicts[token] = (package_name, verdict)

    def revoke_all(self) -> None:
        self._issued.clear()

    async def start(self) -> FakeGooglePlay:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post(r"/v1/{package:[^/:]+}:decodeIntegrityToken", self._decode)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_fetches += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_answers:
            answer = self.token_answers.popleft()
            await asyncio.sleep(answer.delay)
            return answer.response()
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER or not isinstance(form.get("assertion"), str):
            return _grant_error("unsupported_grant_type")
        claims = self._verified(str(form["assertion"]))
        if claims is None:
            return _grant_error("invalid_grant")
        self.assertions.append(claims)
        access = "ya29." + secrets.token_urlsafe(32)
        self._issued[access] = self.clock.now() + self.expires_in
        body = {"access_token": access, "expires_in": self.expires_in, "token_type": "Bearer"}
        return web.json_response(body)

    def _verified(self, assertion: str) -> dict[str, Any] | None:
        public = RSAKey.import_key(self.account.key.public_key())
        try:
            token = jwt.decode(assertion, public, algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        claims = dict(token.claims)
        now = self.clock.now()
        issued, expires = claims.get("iat"), claims.get("exp")
        if (
            token.header.get("kid") != self.account.private_key_id
            or claims.get("iss") != self.account.client_email
            or claims.get("scope") != SCOPE
            or claims.get("aud") != self.token_uri
            or not isinstance(issued, int)
            or not isinstance(expires, int)
            or expires - issued > 3600
            or issued > now + 60
            or expires <= now
        ):
            return None
        return claims

    async def _decode(self, request: web.Request) -> web.Response:
        self.decode_calls += 1
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.bearers_seen.append(bearer)
        if self.decode_answers:
            answer = self.decode_answers.popleft()
            await asyncio.sleep(answer.delay)
            return answer.response()
        expires = self._issued.get(bearer)
        if expires is None or expires <= self.clock.now():
            return google_error(
                401, "UNAUTHENTICATED", "Request had invalid credentials."
            ).response()
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload.").response()
        token = body.get("integrity_token", body.get("integrityToken"))
        found = self._verdicts.get(token) if isinstance(token, str) else None
        if found is None or found[0] != request.match_info["package"]:
            return google_error(
                400, "INVALID_ARGUMENT", "Integrity token cannot be decoded."
            ).response()
        return web.json_response({"tokenPayloadExternal": found[1]})


def _grant_error(code: str) -> web.Response:
    return web.json_response({"error": code, "error_description": "refused"}, status=400)


@contextmanager
def serving_in_thread(fake: FakeGooglePlay) -> Iterator[FakeGooglePlay]:
    """``fake`` served from a loop of its own in a background thread, for a Bastion that
    is itself served in another thread; stopped on exit. ``register`` and the counters
    may be used from the test's thread (dict and int updates, no awaiting)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(timeout=30)
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
