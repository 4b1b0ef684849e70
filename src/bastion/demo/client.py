"""The demo app's side of OAuth 2.1 for native apps, and its calls through the gateway.

A public client (RFC 8252): it starts each authorization request with PKCE S256
(RFC 7636) and a fresh ``state``, takes the answer only with that ``state`` (RFC 6749
§10.12) and the issuer's ``iss`` (RFC 9207, the mix-up defence), redeems the code with
its verifier, rotates its refresh token on every use (RFC 9700 §4.14.2) and revokes it
(RFC 7009). Every request it makes is kept as an ``Exchange`` for the page, with token
values replaced by their fingerprints: the page and the logs never show a token.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from bastion.demo.tokens import fingerprint
from bastion.errors import CallbackRefused
from bastion.oauth import pkce

# What the page shows of an answer's headers: those that explain the outcome.
SHOWN_HEADERS = (
    "content-type",
    "www-authenticate",
    "location",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-request-id",
)
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "token")
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class Pending:
    """An authorization request the app started and waits for the answer to."""

    state: str
    verifier: str


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    id_token: str | None


@dataclass(frozen=True)
class Exchange:
    """One request the app made and the answer it got, as the page shows them."""

    method: str
    url: str
    sent: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def refused(self) -> bool:
        return self.status >= 400


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each token replaced by a label and its fingerprint."""
    return {
        name: f"<{name.replace('_', ' ')} {fingerprint(value)}>"
        if name in TOKEN_FIELDS and isinstance(value, str)
        else value
        for name, value in values.items()
    }


def _pretty(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
    if isinstance(parsed, dict):
        parsed = masked(parsed)
    return orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()


class AppClient:
    """The app's OAuth client and gateway caller; ``http`` is its connection pool."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        issuer: str,
        client_id: str,
        redirect_uri: str,
        scope: str,
        gateway: str,
    ) -> None:
        self._http = http
        self.issuer = issuer
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.gateway = gateway

    def authorization_request(self) -> tuple[str, Pending]:
        """Where to send the browser, and what to remember until it comes back."""
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(48))
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "response_type": "code",
                "scope": self.scope,
                "state": pending.state,
                "code_challenge": pkce.s256(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.issuer}/authorize?{query}", pending

    def code_from(self, pending: Pending | None, query: Mapping[str, str]) -> str:
        """The code of an answer to ``pending``; raises ``CallbackRefused`` otherwise,
        including for an error answer (its code and description are in the message)."""
        state = query.get("state", "")
        if pending is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise CallbackRefused(
                "The answer does not carry the state of a sign-in this app started "
                "(RFC 6749 §10.12): it was not meant for this browser, or came twice."
            )
        if query.get("iss") != self.issuer:
            raise CallbackRefused(
                f"The answer does not come from {self.issuer} (RFC 9207 iss parameter)."
            )
        if "error" in query:
            description = query.get("error_description", "")
            raise CallbackRefused(f"Bastion answered {query['error']}: {description}".strip())
        code = query.get("code")
        if not code:
            raise CallbackRefused("The answer carries no code.")
        return code

    async def redeem(self, pending: Pending, code: str) -> tuple[Exchange, Tokens | None]:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "code_verifier": pending.verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> tuple[Exchange, Tokens | None]:
        return await self._token(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
            }
        )

    async def revoke(self, token: str) -> Exchange:
        form = {"token": token, "token_type_hint": "refresh_token", "client_id": self.client_id}
        exchange, _ = await self._send("POST", f"{self.issuer}/revoke", form=form)
        return exchange

    async def call(self, method: str, path: str, access_token: str, json: Any = None) -> Exchange:
        """A call through the gateway with the access token as a bearer token."""
        exchange, _ = await self._send(
            method,
            f"{self.gateway}{path}",
            json=json,
            headers={"authorization": f"Bearer {access_token}"},
        )
        return exchange

    async def _token(self, form: dict[str, str]) -> tuple[Exchange, Tokens | None]:
        exchange, body = await self._send("POST", f"{self.issuer}/token", form=form)
        if exchange.status != 200 or not isinstance(body.get("access_token"), str):
            return exchange, None
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        return exchange, Tokens(
            body["access_token"],
            refresh if isinstance(refresh, str) else None,
            id_token if isinstance(id_token, str) else None,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        form: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Exchange, dict[str, Any]]:
        if form is not None:
            sent = urlencode(masked(form))
        elif json is not None:
            sent = orjson.dumps(json).decode()
        else:
            sent = ""
        async with self._http.request(
            method, url, data=form, json=json, headers=headers, allow_redirects=False
        ) as answer:
            raw = await answer.read()
            shown = tuple(
                (name, answer.headers[name]) for name in SHOWN_HEADERS if name in answer.headers
            )
            exchange = Exchange(
                method, url, sent, answer.status, answer.reason or "", shown, _pretty(raw)
            )
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        return exchange, parsed if isinstance(parsed, dict) else {}
