"""Shared by the OAuth endpoints: strict form parsing, client authentication, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bastion.audit import AuditEvent, Outcome
from bastion.authserver.server import AuthServer
from bastion.errors import OAuthError, ProblemError, UnsupportedMediaType
from bastion.oauth import client_auth
from bastion.oauth.clients import Client
from bastion.oauth.params import Params, parse
from bastion.web import strict_json

FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 64
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def oauth_json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


def oauth_error(exc: OAuthError) -> Response:
    """RFC 6749 §5.2; 401 answers to client authentication carry a Basic challenge."""
    headers = {"www-authenticate": 'Basic realm="bastion"'} if exc.status == 401 else {}
    return oauth_json(
        {"error": exc.error, "error_description": exc.description}, exc.status, headers
    )


async def form(request: Request) -> Params:
    """The request body as OAuth parameters; anything but a urlencoded form is refused."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    # The raw query string, not ``request.url``: building the URL object costs more
    # than the rest of the parsing.
    if request.scope.get("query_string"):
        # RFC 6749 §3.2: token requests are POST bodies; a query could leak to logs.
        raise OAuthError("invalid_request", "parameters belong in the body, not the URL")
    try:
        body = (await request.body()).decode("utf-8")
        pairs = parse_qsl(
            body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the body is not a valid form") from exc
    return parse(pairs)


async def page_params(request: Request) -> Params:
    """A page's parameters: the form on POST, the query on GET."""
    if request.method == "POST":
        return await form(request)
    return parse(request.query_params.multi_items())


async def json_object(request: Request) -> dict[str, Any]:
    """A JSON object body; ``ProblemError`` (415 or 400, client-safe) for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    try:
        # Strictly: a member named twice would let two readers of one body disagree.
        body = strict_json.loads(await request.body())
    except ValueError as exc:
        raise ProblemError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProblemError("the body must be a JSON object")
    return body


async def authenticate(server: AuthServer, request: Request, params: Params) -> Client:
    """The calling client, with private_key_jwt assertions accepted once only."""
    clock = server.grants.clock
    try:
        credentials = client_auth.presented(request.headers.get("authorization"), params)
        client = await server.clients.get(credentials.client_id)
        client, jti, exp = client_auth.authenticate(
            client, credentials, issuer=server.settings.issuer, now=clock.now()
        )
        if (
            jti is not None
            and exp is not None
            and not await server.hot.set_if_absent(
                f"assertion-jti:{client.client_id}:{jti}",
                b"1",
                ttl=max(1.0, exp - clock.now() + 60),
            )
        ):
            # RFC 7523 §3 item 7: a jti seen before is a replayed assertion.
            raise client_auth.invalid_client("assertion jti replayed")
    except OAuthError as exc:
        if exc.error == "invalid_client":
            reason = str(exc.__cause__) if exc.__cause__ else exc.description
            server.grants.audit.emit(
                AuditEvent(
                    "oauth.client_auth.failed",
                    Outcome.DENIED,
                    actor="client:unauthenticated",
                    details={"reason": reason, "endpoint": request.url.path},
                )
            )
        raise
    return client
