"""Server metadata (RFC 8414) and OpenID Connect Discovery 1.0: exactly what is supported."""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.accounts.levels import ACR_VALUES
from bastion.config import Settings
from bastion.oauth.clients import GRANT_TYPES
from bastion.oauth.tokens import SIGNING_ALGORITHMS
from bastion.web.i18n import available


def metadata(settings: Settings) -> dict[str, Any]:
    base = settings.issuer
    scopes = sorted({scope for c in settings.oauth.clients for scope in c.scopes} | {"openid"})
    document: dict[str, Any] = {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "pushed_authorization_request_endpoint": f"{base}/par",
        "require_pushed_authorization_requests": False,
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        # RFC 9449 §5.1: proofs are accepted at the token endpoint with these algorithms.
        "dpop_signing_alg_values_supported": list(settings.oauth.dpop.algorithms),
        "userinfo_endpoint": f"{base}/userinfo",
        "end_session_endpoint": f"{base}/logout",
        "acr_values_supported": list(ACR_VALUES),
        "jwks_uri": f"{base}/jwks.json",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": sorted(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": [
            "ES256",
            "ES384",
            "Ed25519",
            "EdDSA",
            "PS256",
            "RS256",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "private_key_jwt",
        ],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "azp",
            "preferred_username",
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        # OIDC Discovery §3: languages of the pages (BCP 47), chosen with ui_locales.
        "ui_locales_supported": [language.replace("_", "-") for language in available()],
        "tls_client_certificate_bound_access_tokens": False,
    }
    if settings.oauth.registration.enabled:
        document["registration_endpoint"] = f"{base}/register"
    return document


async def server_metadata(document: dict[str, Any], _request: Request) -> Response:
    return JSONResponse(document, headers={"cache-control": "public, max-age=300"})


def routes(settings: Settings) -> list[Route]:
    # The document depends on the settings alone, so it is computed once.
    endpoint = partial(server_metadata, metadata(settings))
    return [
        Route("/.well-known/oauth-authorization-server", endpoint, methods=["GET"]),
        Route("/.well-known/openid-configuration", endpoint, methods=["GET"]),
    ]
