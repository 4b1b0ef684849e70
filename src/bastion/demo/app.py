"""The demo app: one page at the app's loopback redirect URI, playing a native app.

It starts the authorization request itself ("Sign in" -> Bastion's /authorize with PKCE),
checks the answer at ``/callback`` and redeems the code on the server side, keeps the
tokens in memory under an HttpOnly random cookie, and runs the page's buttons
(``bastion.demo.actions``) as POSTs answered by a redirect back to the page (so a reload
sends nothing twice).

Its origin is ``http://127.0.0.1:<port>``, not ``localhost``: Bastion accepts plain-HTTP
redirect URIs only on the loopback IP literals (RFC 8252 §7.3, §8.3). Being another site
than ``localhost`` also keeps the app's cookie and Bastion's session cookie apart, as
an app's storage and the system browser's are. A request naming another host is sent
to the app's own origin, so that the cookie set before sign-in is there after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.clock import Clock, SystemClock
from bastion.demo import client as oauth
from bastion.demo.actions import BY_NAME, Scenario
from bastion.demo.client import AppClient
from bastion.demo.pages import PageFacts, page, static_file
from bastion.demo.sessions import COOKIE, IDLE_SECONDS, Answer, Session, Sessions
from bastion.errors import CallbackRefused
from bastion.web.middleware import SecurityHeaders

MAX_FORM_BYTES = 1024
SAME = b"same-origin"
ANSWER = "/#answer"
SIGNED_IN = (
    "The app checked the answer's state and iss (RFC 9207), then redeemed the code with "
    "its PKCE verifier (RFC 7636): a code intercepted on its way to the app is useless "
    "without the verifier, which never left the app."
)


@dataclass(frozen=True)
class AppSettings:
    """Where the app and Bastion are, and what the app asks for."""

    origin: str
    issuer: str
    gateway: str
    client_id: str
    scope: str
    facts: PageFacts


class DemoApp:
    def __init__(self, settings: AppSettings, scenario: Scenario, clock: Clock) -> None:
        self.settings = settings
        self.scenario = scenario
        self.sessions = Sessions(clock)
        self._client: AppClient | None = None

    @property
    def client(self) -> AppClient:
        if self._client is None:
            raise RuntimeError("the demo app is not started (the ASGI lifespan has not run)")
        return self._client

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=oauth.TIMEOUT) as http:
            self._client = AppClient(
                http,
                issuer=self.settings.issuer,
                client_id=self.settings.client_id,
                redirect_uri=f"{self.settings.origin}/callback",
                scope=self.settings.scope,
                gateway=self.settings.gateway,
            )
            try:
                yield
            finally:
                self._client = None

    def _session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    async def home(self, request: Request) -> Response:
        return page(self.settings.facts, self._session(request))

    async def sign_in(self, request: Request) -> Response:
        key = request.cookies.get(COOKIE)
        session = self.sessions.get(key)
        url, pending = self.client.authorization_request()
        response = RedirectResponse(url, status_code=303)
        if session is None:
            key, session = self.sessions.new()
            # Lax, not Strict: the browser comes back from Bastion, another site, and a
            # Strict cookie would stay behind on that navigation.
            response.set_cookie(
                COOKIE, key, max_age=int(IDLE_SECONDS), httponly=True, samesite="lax"
            )
        session.pending = pending
        return response

    async def callback(self, request: Request) -> Response:
        session = self._session(request)
        pending = session.pending if session else None
        try:
            code = self.client.code_from(pending, request.query_params)
        except CallbackRefused as exc:
            return page(self.settings.facts, session, str(exc), status=400)
        # code_from refuses an answer without a pending request, hence without a session.
        assert session is not None
        assert pending is not None
        session.pending = None  # an answer is taken once
        try:
            exchange, tokens = await self.client.redeem(pending, code)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return page(self.settings.facts, session, _unreachable(exc), status=502)
        session.answer = Answer("Sign in", SIGNED_IN, (exchange,))
        if tokens is not None:
            session.tokens, session.spent_refresh, session.rotations = tokens, None, 0
        return RedirectResponse(ANSWER, status_code=303)

    async def act(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return PlainTextResponse("Request too large.", status_code=413)
        action = BY_NAME.get(dict(parse_qsl(body.decode("utf-8", "replace"))).get("action", ""))
        session = self._session(request)
        if action is None or session is None or session.tokens is None:
            return RedirectResponse("/", status_code=303)
        try:
            session.answer = await action.perform(session, self.client, self.scenario)
        except (aiohttp.ClientError, TimeoutError) as exc:
            session.answer = Answer(action.label, _unreachable(exc), ())
        return RedirectResponse(ANSWER, status_code=303)


def _unreachable(exc: BaseException) -> str:
    return f"Bastion did not answer ({type(exc).__name__}). Is the demo still running?"


class SameOrigin:
    """Requests must name the app's own host; POSTs from another site are refused.

    The host check also stops DNS rebinding: a page elsewhere whose name comes to
    resolve to 127.0.0.1 cannot use the app's session. POSTs are judged by their fetch
    metadata (``Sec-Fetch-Site``), because under ``Referrer-Policy: no-referrer`` a
    browser sends ``Origin: null`` even for the page's own forms; a browser without
    fetch metadata still withholds the SameSite=Lax cookie from another site's POST.
    """

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.origin = origin
        self.host = urlsplit(origin).netloc.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        response: Response | None = None
        if headers.get(b"host") != self.host:
            if scope["method"] in ("GET", "HEAD"):
                query = scope.get("query_string", b"").decode("latin-1")
                target = self.origin + scope["path"] + (f"?{query}" if query else "")
                response = RedirectResponse(target, status_code=307)
            else:
                response = PlainTextResponse("Unknown host.", status_code=421)
        elif scope["method"] == "POST" and headers.get(b"sec-fetch-site", SAME) != SAME:
            response = PlainTextResponse("Cross-site request refused.", status_code=403)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def demo_app(settings: AppSettings, scenario: Scenario, clock: Clock | None = None) -> ASGIApp:
    demo = DemoApp(settings, scenario, clock or SystemClock())
    starlette = Starlette(
        routes=[
            Route("/", demo.home, methods=["GET"]),
            Route("/signin", demo.sign_in, methods=["GET"]),
            Route("/callback", demo.callback, methods=["GET"]),
            Route("/actions", demo.act, methods=["POST"]),
            Route("/static/{name}", static_file, methods=["GET"]),
        ],
        lifespan=demo.lifespan,
    )
    return SecurityHeaders(
        SameOrigin(starlette, settings.origin), hsts_max_age=0, behind_tls_proxy=False
    )
