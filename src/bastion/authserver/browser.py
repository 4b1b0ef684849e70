"""The browser side of the authorization server: login sessions and pending interactions.

* A **session** cookie holds 32 random bytes; the database keeps only their SHA-256.
  Sessions end at an idle or absolute timeout, on logout, or when the user's tokens are
  revoked.
* An **interaction** is an authorization request waiting for login or consent. It lives
  in hot state for ``login_timeout`` and is bound to the browser that started it by a
  second cookie; the forms carry a CSRF token that is an HMAC of both, so a form posted
  from another site (which lacks the SameSite=Lax cookie) or replayed for another
  interaction is refused.

Cookies use the ``__Host-`` prefix with ``Secure`` whenever the issuer is https; a
development issuer on plain http gets unprefixed cookies, since browsers drop ``Secure``
cookies set over http.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson
from starlette.responses import Response

from bastion.accounts.passwords import verify
from bastion.authserver.server import AuthServer
from bastion.oauth.authorize import AuthorizationRequest
from bastion.store.sql.sessions import BrowserSession
from bastion.store.sql.users import User

ACR_PASSWORD = "urn:bastion:acr:password"
AMR_PASSWORD = ("pwd",)  # RFC 8176 §2


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CookieNames:
    session: str
    interaction: str
    secure: bool

    @classmethod
    def for_issuer(cls, issuer: str) -> CookieNames:
        if issuer.startswith("https://"):
            return cls("__Host-bastion-session", "__Host-bastion-interaction", True)
        return cls("bastion-session", "bastion-interaction", False)


@dataclass(frozen=True)
class Interaction:
    interaction_id: str
    request: AuthorizationRequest
    nonce_hash: str
    created_at: float
    # Set when the request demanded a fresh sign-in (no session, prompt=login, max_age):
    # only a session authenticated at or after this moment may complete it.
    login_after: float | None = None


class Browser:
    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.clock = server.grants.clock
        self.settings = server.settings.oauth
        self.cookies = CookieNames.for_issuer(server.settings.issuer)

    def set_cookie(
        self, response: Response, name: str, value: str, max_age: int | None = None
    ) -> None:
        """Every Bastion cookie has the same attributes: HttpOnly, SameSite=Lax, whole site,
        Secure whenever the issuer is https."""
        response.set_cookie(
            name,
            value,
            path="/",
            httponly=True,
            secure=self.cookies.secure,
            samesite="lax",
            max_age=max_age,
        )

    def clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(
            name, path="/", httponly=True, secure=self.cookies.secure, samesite="lax"
        )

    # --- interactions ------------------------------------------------------------------

    async def start(
        self, request: AuthorizationRequest, *, needs_login: bool = False
    ) -> tuple[str, str]:
        """A new interaction; returns its id and the browser nonce for the cookie."""
        interaction_id, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        fields = dataclasses.asdict(request) | {"prompt": sorted(request.prompt)}
        record = {
            "request": fields,
            "nonce_hash": _hash(nonce),
            "created_at": self.clock.now(),
            "login_after": self.clock.now() if needs_login else None,
        }
        await self.server.hot.set(
            f"interaction:{interaction_id}", orjson.dumps(record), ttl=self.settings.login_timeout
        )
        return interaction_id, nonce

    async def load(self, interaction_id: str, nonce: str | None) -> Interaction | None:
        """The interaction, only for the browser that started it."""
        if not nonce or len(interaction_id) > 64:
            return None
        raw = await self.server.hot.get(f"interaction:{interaction_id}")
        if raw is None:
            return None
        record = orjson.loads(raw)
        if not hmac.compare_digest(record["nonce_hash"].encode(), _hash(nonce).encode()):
            return None
        fields = record["request"]
        for name in ("scope", "resources", "acr_values"):
            fields[name] = tuple(fields[name])
        fields["prompt"] = frozenset(fields["prompt"])
        return Interaction(
            interaction_id,
            AuthorizationRequest(**fields),
            record["nonce_hash"],
            record["created_at"],
            record.get("login_after"),
        )

    async def finish(self, interaction_id: str) -> None:
        await self.server.hot.delete(f"interaction:{interaction_id}")

    def csrf_token(self, interaction_id: str, nonce: str) -> str:
        message = f"csrf|{interaction_id}|{nonce}".encode()
        return hmac.new(self.server.cookie_key, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, interaction_id: str, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(
            self.csrf_token(interaction_id, nonce).encode(), token.encode("utf-8", "surrogatepass")
        )

    # --- sessions ------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> User | None:
        """The user if the password is right; the same work is done for unknown users."""
        user = await self.server.users.by_username(username)
        ok = verify(password, user.password_hash if user else None)
        if user is None or not ok or not user.enabled:
            return None
        return user

    async def create_session(self, user: User) -> tuple[str, BrowserSession]:
        now = self.clock.now()
        cookie = secrets.token_urlsafe(32)
        session = BrowserSession(
            session_id=secrets.token_urlsafe(16),
            subject=user.user_id,
            auth_time=now,
            acr=ACR_PASSWORD,
            amr=AMR_PASSWORD,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.settings.session_absolute,
            revoked_at=None,
        )
        await self.server.sessions.create(_hash(cookie), session)
        return cookie, session

    async def current(self, cookie: str | None) -> BrowserSession | None:
        if not cookie or len(cookie) > 128:
            return None
        hashed = _hash(cookie)
        session = await self.server.sessions.get(hashed)
        now = self.clock.now()
        if session is None or session.revoked_at is not None or now >= session.expires_at:
            return None
        if now - session.last_seen_at >= self.settings.session_idle:
            return None
        user = await self.server.users.get(session.subject)
        if user is None or not user.enabled or session.auth_time < user.tokens_valid_after:
            return None
        await self.server.sessions.touch(hashed, now)
        return session
