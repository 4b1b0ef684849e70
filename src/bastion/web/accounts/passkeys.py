"""Passkey endpoints: sign-in (/login/passkey) and registration (/account/passkeys).

The script on the pages fetches options, runs the browser ceremony and posts the result;
the server answers JSON, with ``redirect`` telling the page where to go next. Challenges
live in hot state for five minutes and are taken (deleted) before verifying, so each one
is used at most once (WebAuthn §13.4.3).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.accounts import passkeys
from bastion.accounts.levels import AMR_PASSKEY
from bastion.audit import AuditEvent, Outcome
from bastion.authserver.browser import Browser
from bastion.authserver.server import AuthServer
from bastion.authserver.signin import SignIn
from bastion.errors import Forbidden, PasskeyError
from bastion.oauth.params import parse
from bastion.web.accounts.account import account_request_json
from bastion.web.accounts.login import advance, client_ip
from bastion.web.accounts.scripts import script_error, script_route, string_field
from bastion.web.oauth.common import json_object
from bastion.web.oauth.interactions import PageRequest, find_interaction

CHALLENGE_TTL = 300.0


async def _take_challenge(server: AuthServer, key: str) -> bytes | None:
    raw = await server.hot.get(key)
    if raw is None or not await server.hot.compare_and_delete(key, raw):
        return None
    return raw


def _as_json(response: Response) -> Response:
    """A redirect becomes {"redirect": url} with the same cookies, for the page's script."""
    location = response.headers.get("location")
    if location is None:
        return script_error("the passkey could not be verified")
    answer = JSONResponse({"redirect": location})
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            answer.raw_headers.append((name, value))
    return answer


async def _sign_in_request(
    browser: Browser, request: Request
) -> tuple[PageRequest, dict[str, Any]]:
    body = await json_object(request)
    interaction_id = string_field(body, "interaction")
    nonce = request.cookies.get(browser.cookies.interaction)
    found = await find_interaction(request, browser, parse([]), interaction_id)
    if found is None or not browser.csrf_ok(
        found.interaction_id, nonce, string_field(body, "csrf")
    ):
        raise Forbidden("the page expired; start again", reason="interaction or CSRF expired")
    return found, body


async def login_options(browser: Browser, request: Request) -> Response:
    page_request, _ = await _sign_in_request(browser, request)
    server = page_request.browser.server
    pending = page_request.interaction.pending_subject
    allowed = await server.factors.passkeys(pending) if pending else []
    options, challenge = passkeys.authentication_options(
        rp_id=server.settings.passkey_rp_id, allowed=allowed
    )
    await server.hot.set(
        f"passkey:login:{page_request.interaction_id}", challenge, ttl=CHALLENGE_TTL
    )
    return Response(options, media_type="application/json")


async def login_finish(browser: Browser, request: Request) -> Response:
    page_request, body = await _sign_in_request(browser, request)
    server = page_request.browser.server
    challenge = await _take_challenge(server, f"passkey:login:{page_request.interaction_id}")
    failure = script_error("the passkey could not be verified")
    if challenge is None:
        return failure
    try:
        assertion = passkeys.parse_assertion(body.get("credential"))
        stored = await server.factors.passkey(assertion.credential_id)
        if stored is None:
            raise PasskeyError("unknown credential")
        pending = page_request.interaction.pending_subject
        if pending is not None and stored.user_id != pending:
            raise PasskeyError("a passkey of another account")
        sign_count = passkeys.verify_assertion(
            assertion,
            challenge=challenge,
            rp_id=server.settings.passkey_rp_id,
            origin=server.settings.origin,
            stored=stored,
        )
    except PasskeyError:
        server.audit.emit(
            AuditEvent(
                "login.failed", Outcome.FAILURE, actor="browser", details={"method": "passkey"}
            )
        )
        return failure
    user = await server.users.get(stored.user_id)
    if user is None or not user.enabled:
        return failure
    await server.factors.passkey_used(stored.credential_id, sign_count, server.clock.now())
    amr = tuple(sorted({*page_request.interaction.pending_amr, *AMR_PASSKEY}))
    outcome = await SignIn(server).next_step(
        page_request.interaction, user, amr, ip=client_ip(request)
    )
    return _as_json(await advance(request, page_request, outcome))


async def register_options(browser: Browser, request: Request) -> Response:
    account, _ = await account_request_json(browser, request)
    server = account.browser.server
    options, challenge = passkeys.registration_options(
        rp_id=server.settings.passkey_rp_id,
        rp_name=server.settings.accounts.passkey_rp_name,
        user_id=account.user.user_id,
        username=account.user.username,
        existing=await server.factors.passkeys(account.user.user_id),
    )
    await server.hot.set(
        f"passkey:register:{account.session.session_id}", challenge, ttl=CHALLENGE_TTL
    )
    return Response(options, media_type="application/json")


async def register_finish(browser: Browser, request: Request) -> Response:
    account, body = await account_request_json(browser, request)
    server = account.browser.server
    challenge = await _take_challenge(server, f"passkey:register:{account.session.session_id}")
    if challenge is None:
        return script_error("the passkey could not be verified")
    name = body.get("name")
    try:
        passkey = passkeys.verify_registration(
            body.get("credential"),
            challenge=challenge,
            rp_id=server.settings.passkey_rp_id,
            origin=server.settings.origin,
            user_id=account.user.user_id,
            name=name if isinstance(name, str) else "",
            now=server.clock.now(),
        )
    except PasskeyError:
        return script_error("the passkey could not be verified")
    if await server.factors.passkey(passkey.credential_id) is not None:
        return script_error("this passkey is already registered", 409)
    await server.factors.add_passkey(passkey)
    server.audit.emit(
        AuditEvent(
            "accounts.passkey.registered",
            Outcome.SUCCESS,
            actor=f"user:{account.user.user_id}",
            target=account.user.user_id,
        )
    )
    return JSONResponse({"redirect": "/account"})


def routes(browser: Browser) -> list[Route]:
    return [
        script_route("/login/passkey/options", login_options, browser),
        script_route("/login/passkey", login_finish, browser),
        script_route("/account/passkeys/options", register_options, browser),
        script_route("/account/passkeys", register_finish, browser),
    ]
