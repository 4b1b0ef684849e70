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

from bastion.accounts.levels import ACR_PASSWORD
from bastion.accounts.records import BrowserSession, User
from bastion.authserver.server import AuthServer
from bastion.oauth.authorize import AuthorizationRequest

# Local pages an interaction may return to once sign-in completes; anything else would be
# an open redirect.
RETURN_PATHS = frozenset({"/account"})


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CookieNames:
    session: str
    interaction: str
    device: str
    secure: bool

    @classmethod
    def for_issuer(cls, issuer: str) -> CookieNames:
        if issuer.startswith("https://"):
            return cls(
                "__Host-bastion-session",
                "__Host-bastion-interaction",
                "__Host-bastion-device",
                True,
            )
        return cls("bastion-session", "bastion-interaction", "bastion-device", False)


@dataclass(frozen=True)
class Interaction:
    """A sign-in in progress: for an app's authorization request, or for the account page.

    ``pending_subject`` is set once a first factor succeeded and a second is needed;
    ``upgrade_session`` names the session a step-up will raise instead of creating one.
    """

    interaction_id: str
    request: AuthorizationRequest | None
    nonce_hash: str
    created_at: float
    # Set when the request demanded a fresh sign-in (no session, prompt=login, max_age):
    # only a session authenticated at or after this moment may complete it.
    login_after: float | None = None
    required_acr: str = ACR_PASSWORD
    return_to: str | None = None
    pending_subject: str | None = None
    pending_amr: tuple[str, ...] = ()
    upgrade_session: str | None = None


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
        self,
        request: AuthorizationRequest | None,
        *,
        needs_login: bool = False,
        required_acr: str = ACR_PASSWORD,
        return_to: str | None = None,
        step_up: BrowserSession | None = None,
    ) -> tuple[str, str]:
        """A new interaction; returns its id and the browser nonce for the cookie.

        With ``step_up``, that session's user has already proved its factors: only the
        missing one is asked for, and the session is raised rather than replaced.
        """
        interaction_id, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        now = self.clock.now()
        record: dict[str, object] = {
            "request": None
            if request is None
            else dataclasses.asdict(request) | {"prompt": sorted(request.prompt)},
            "nonce_hash": _hash(nonce),
            "created_at": now,
            "login_after": now if needs_login else None,
            "required_acr": required_acr,
            "return_to": return_to if return_to in RETURN_PATHS else None,
            "pending_subject": step_up.subject if step_up else None,
            "pending_amr": list(step_up.amr) if step_up else [],
            "upgrade_session": step_up.session_id if step_up else None,
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
        request = None
        if (fields := record["request"]) is not None:
            for name in ("scope", "resources", "acr_values"):
                fields[name] = tuple(fields[name])
            fields["prompt"] = frozenset(fields["prompt"])
            request = AuthorizationRequest(**fields)
        return Interaction(
            interaction_id,
            request,
            record["nonce_hash"],
            record["created_at"],
            record["login_after"],
            record["required_acr"],
            record["return_to"],
            record["pending_subject"],
            tuple(record["pending_amr"]),
            record["upgrade_session"],
        )

    async def update(self, interaction: Interaction, **changes: object) -> Interaction:
        """Store changed fields, keeping the interaction's original deadline."""
        key = f"interaction:{interaction.interaction_id}"
        raw = await self.server.hot.get(key)
        left = await self.server.hot.ttl(key)
        if raw is None or left is None:
            return interaction
        record = orjson.loads(raw) | {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in changes.items()
        }
        await self.server.hot.set(key, orjson.dumps(record), ttl=left)
        return dataclasses.replace(interaction, **changes)  # type: ignore[arg-type]

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

    async def create_session(
        self, user: User, acr: str, amr: tuple[str, ...], user_agent: str = ""
    ) -> tuple[str, BrowserSession]:
        now = self.clock.now()
        cookie = secrets.token_urlsafe(32)
        session = BrowserSession(
            session_id=secrets.token_urlsafe(16),
            subject=user.user_id,
            auth_time=now,
            acr=acr,
            amr=amr,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.settings.session_absolute,
            revoked_at=None,
            user_agent=user_agent[:200],
        )
        await self.server.sessions.create(_hash(cookie), session)
        return cookie, session

    async def elevate_session(
        self, session_id: str, acr: str, amr: tuple[str, ...]
    ) -> tuple[str, BrowserSession] | None:
        """Raise a session's level after step-up, under a new cookie value (a session's
        privileges never grow under an identifier an attacker may have planted or seen;
        OWASP ASVS V3.2.1)."""
        cookie = secrets.token_urlsafe(32)
        session = await self.server.sessions.elevate(
            session_id, _hash(cookie), acr, amr, self.clock.now()
        )
        return None if session is None else (cookie, session)

    # --- device cookies ------------------------------------------------------------------

    def device_cookie(self, username: str) -> str:
        """Proof that this browser once signed in as ``username``; it lets the owner past
        the account-wide failure delay an attacker elsewhere causes (OWASP "device
        cookies"), so throttling cannot lock the owner out."""
        issued = str(int(self.clock.now()))
        nonce = secrets.token_urlsafe(9)
        return f"v1.{issued}.{nonce}.{self._device_mac(username, issued, nonce)}"

    def device_trusted(self, cookie: str | None, username: str) -> bool:
        if not cookie or len(cookie) > 200:
            return False
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return False
        if self.clock.now() - int(parts[1]) > self.server.settings.accounts.device_cookie_lifetime:
            return False
        expected = self._device_mac(username, parts[1], parts[2])
        return hmac.compare_digest(expected.encode(), parts[3].encode("utf-8", "surrogatepass"))

    def _device_mac(self, username: str, issued: str, nonce: str) -> str:
        message = f"device|{username.casefold()}|{issued}|{nonce}".encode()
        return hmac.new(self.server.cookie_key, message, hashlib.sha256).hexdigest()[:32]

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

    def csrf_for_session(self, session: BrowserSession) -> str:
        """The account page's forms carry this HMAC of the session id (OWASP ASVS V3.5)."""
        message = f"account-csrf|{session.session_id}".encode()
        return hmac.new(self.server.cookie_key, message, hashlib.sha256).hexdigest()

    def session_csrf_ok(self, session: BrowserSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(
            self.csrf_for_session(session).encode(), token.encode("utf-8", "surrogatepass")
        )
