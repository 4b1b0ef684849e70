"""The authorization request (RFC 6749 §4.1.1 as profiled by OAuth 2.1, RFC 8252, RFC 9700).

Validation runs in two stages because their errors travel differently:

1. ``identify``: the client and redirect URI. Until both are known good, nothing may be
   redirected anywhere; errors are shown on Bastion's own page (RFC 9700 §4.11.2,
   RFC 6749 §4.1.2.1 first paragraph).
2. ``validate``: everything else. Errors go back to the client's redirect URI with
   ``error``, ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bastion.errors import OAuthError, UnsafeRedirect
from bastion.oauth import pkce
from bastion.oauth.clients import AUTHORIZATION_CODE, Client
from bastion.oauth.params import Params, scopes
from bastion.oauth.redirects import is_loopback, matches

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
PAR_URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
_RESOURCE = re.compile(r"[a-z][a-z0-9+.\-]*:[^\s#]+")
# Enough for a dozen language tags; the rest of a longer value is ignored.
MAX_UI_LOCALES = 256
# RFC 7638 SHA-256 thumbprint, base64url: always 43 characters (RFC 9449 §10).
JKT = re.compile(r"[A-Za-z0-9_\-]{43}")


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    resources: tuple[str, ...] = ()
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    acr_values: tuple[str, ...] = ()
    redirect_uri_given: bool = True
    # OIDC Core §3.1.2.1: the languages the app prefers for Bastion's pages, in order.
    ui_locales: str | None = None
    # RFC 9449 §10: the thumbprint of the DPoP key the code will be bound to.
    dpop_jkt: str | None = None

    @property
    def wants_openid(self) -> bool:
        return "openid" in self.scope


def identify(params: Params, lookup: Callable[[str], Client | None]) -> tuple[Client, str]:
    """The client and the redirect URI to answer to, or ``UnsafeRedirect``."""
    client_id = params.get("client_id")
    client = lookup(client_id) if client_id else None
    if client is None or not client.enabled:
        raise UnsafeRedirect("invalid_client", "unknown or disabled client")
    if not client.allows_grant(AUTHORIZATION_CODE):
        raise UnsafeRedirect("unauthorized_client", "this client may not use the code flow")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        # OAuth 2.1 §2.3.2: optional only when exactly one URI is registered; a loopback
        # URI needs the request's port, so it must always be sent.
        if len(client.redirect_uris) != 1 or is_loopback(client.redirect_uris[0]):
            raise UnsafeRedirect("invalid_request", "redirect_uri is required")
        redirect_uri = client.redirect_uris[0]
    elif not matches(client.redirect_uris, redirect_uri):
        raise UnsafeRedirect("invalid_request", "redirect_uri is not registered for this client")
    return client, redirect_uri


def validate(
    params: Params, client: Client, redirect_uri: str, *, pushed: bool
) -> AuthorizationRequest:
    """Check every other parameter; errors from here on may be redirected."""
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if client.require_pushed_authorization_requests and not pushed:
        raise OAuthError(
            "invalid_request", "this client must use pushed authorization requests (RFC 9126 §6)"
        )
    if "request" in params:
        raise OAuthError("request_not_supported", "request objects are not supported; use PAR")
    if params.get("response_mode") not in (None, "query"):
        raise OAuthError("invalid_request", "only response_mode=query is supported")
    requested = scopes(params.get("scope"))
    if not requested:
        raise OAuthError("invalid_scope", "scope is required")
    if not set(requested) <= client.scopes:
        raise OAuthError("invalid_scope", "a requested scope is not allowed for this client")
    check_resources(params.resources, client)
    challenge = pkce.check_challenge(
        params.get("code_challenge"), params.get("code_challenge_method")
    )
    prompt = frozenset((params.get("prompt") or "").split())
    if not prompt <= PROMPTS:
        raise OAuthError("invalid_request", "unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise OAuthError("invalid_request", "prompt=none cannot be combined with other values")
    max_age = _max_age(params.get("max_age"))
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):
        raise OAuthError("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=requested,
        code_challenge=challenge,
        state=params.get("state"),
        nonce=params.get("nonce"),
        resources=params.resources,
        prompt=prompt,
        max_age=max_age,
        acr_values=tuple((params.get("acr_values") or "").split()),
        redirect_uri_given=params.get("redirect_uri") is not None,
        ui_locales=(params.get("ui_locales") or "")[:MAX_UI_LOCALES] or None,
        dpop_jkt=dpop_jkt,
    )


def check_resources(resources: tuple[str, ...], client: Client) -> None:
    """RFC 8707 §2: absolute URIs without fragments, and only those the client may use."""
    for resource in resources:
        if not _RESOURCE.fullmatch(resource):
            raise OAuthError("invalid_target", "resource must be an absolute URI without fragment")
        if resource not in client.resources:
            raise OAuthError(
                "invalid_target", "a requested resource is not allowed for this client"
            )


def narrow_resources(
    requested: tuple[str, ...], ceiling: tuple[str, ...], client: Client
) -> tuple[str, ...]:
    """The audience of a token issued from a grant (RFC 8707 §2.2).

    ``ceiling`` is what the grant covers: the resources of the authorization request,
    or the default audience when it named none. A token request may narrow it, never
    add a resource the user did not see, even one the client may otherwise use.
    """
    if not requested:
        return ceiling
    check_resources(requested, client)
    if not set(requested) <= set(ceiling):
        raise OAuthError("invalid_target", "a resource was not part of the grant")
    return requested


def _max_age(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise OAuthError("invalid_request", "max_age must be a non-negative integer")
    return int(value)
