"""Client authentication at the token, PAR, revocation and introspection endpoints.

Supported: ``none`` (public clients, identified by ``client_id``), ``client_secret_basic``
(RFC 6749 §2.3.1) and ``private_key_jwt`` (RFC 7523 §2.2, OpenID Connect Core §9). A
request using more than one method is refused (RFC 6749 §2.3). Every failure is the
same ``invalid_client`` to the caller (RFC 6749 §5.2); the reason goes to the audit log.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.errors import OAuthError
from bastion.oauth.clients import Client, secret_matches
from bastion.oauth.params import Params

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("ES256", "ES384", "Ed25519", "EdDSA", "PS256", "RS256")
MAX_ASSERTION_LIFETIME = 300.0
MAX_CLOCK_SKEW = 30.0


def invalid_client(reason: str) -> OAuthError:
    error = OAuthError("invalid_client", "client authentication failed", status=401)
    error.__cause__ = ValueError(reason)
    return error


@dataclass(frozen=True)
class Presented:
    """The credentials a request carries, before any is checked."""

    client_id: str
    method: str
    secret: str | None = None
    assertion: str | None = None


def presented(authorization: str | None, params: Params) -> Presented:
    methods: list[Presented] = []
    if authorization is not None:
        methods.append(_basic(authorization))
    if params.get("client_assertion") is not None or params.get("client_assertion_type"):
        if params.get("client_assertion_type") != JWT_BEARER:
            raise invalid_client("unsupported client_assertion_type")
        assertion = params.require("client_assertion")
        methods.append(
            Presented(_assertion_subject(assertion), "private_key_jwt", assertion=assertion)
        )
    if params.get("client_secret") is not None:
        raise OAuthError(
            "invalid_request",
            "client_secret_post is not supported; use HTTP Basic or private_key_jwt",
        )
    if len(methods) > 1:
        raise OAuthError("invalid_request", "use exactly one client authentication method")
    if not methods:
        client_id = params.get("client_id")
        if not client_id:
            raise invalid_client("no client identification")
        return Presented(client_id, "none")
    found = methods[0]
    form_id = params.get("client_id")
    if form_id is not None and form_id != found.client_id:
        raise invalid_client("client_id differs from the authenticated client")
    return found


def authenticate(
    client: Client | None, credentials: Presented, *, issuer: str, now: float
) -> tuple[Client, str | None, float | None]:
    """The authenticated client, plus the assertion's ``jti`` and ``exp`` for replay checks."""
    if client is None or not client.enabled:
        raise invalid_client("unknown or disabled client")
    if credentials.method != client.auth_method:
        raise invalid_client(f"client uses {client.auth_method}, request used {credentials.method}")
    if credentials.method == "client_secret_basic":
        if (
            client.secret_hash is None
            or credentials.secret is None
            or not secret_matches(credentials.secret, client.secret_hash)
        ):
            raise invalid_client("wrong client secret")
        return client, None, None
    if credentials.method == "private_key_jwt":
        assert credentials.assertion is not None
        jti, exp = check_assertion(client, credentials.assertion, issuer=issuer, now=now)
        return client, jti, exp
    return client, None, None


def check_assertion(
    client: Client, assertion: str, *, issuer: str, now: float
) -> tuple[str, float]:
    """RFC 7523 §3 with the audience fixed to the issuer identifier, which closes the
    audience-confusion attack on assertions replayed to other endpoints."""
    try:
        keys = KeySet.import_key_set(dict(client.jwks or {}))  # type: ignore[arg-type]
        decoded = jwt.decode(assertion, keys, algorithms=list(ASSERTION_ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise invalid_client(f"assertion signature: {type(exc).__name__}") from exc
    claims: Mapping[str, Any] = decoded.claims
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise invalid_client("assertion iss and sub must be the client_id")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audiences != [issuer]:
        raise invalid_client("assertion aud must be exactly the issuer")
    exp, jti = claims.get("exp"), claims.get("jti")
    if not isinstance(exp, int | float) or exp <= now - MAX_CLOCK_SKEW:
        raise invalid_client("assertion expired or without exp")
    if exp > now + MAX_ASSERTION_LIFETIME:
        raise invalid_client("assertion lives too long")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now + MAX_CLOCK_SKEW):
        raise invalid_client("assertion not yet valid (nbf)")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, int | float) or iat > now + MAX_CLOCK_SKEW):
        raise invalid_client("assertion issued in the future")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise invalid_client("assertion needs a jti")
    return jti, float(exp)


def _basic(authorization: str) -> Presented:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise invalid_client("unsupported Authorization scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # also non-ASCII input and bad UTF-8
        raise invalid_client("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise invalid_client("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return Presented(unquote_plus(client_id), "client_secret_basic", secret=unquote_plus(secret))


def _assertion_subject(assertion: str) -> str:
    """The client an assertion claims to be, read before verification to find its keys."""
    try:
        payload = assertion.split(".")[1]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        subject = orjson.loads(raw).get("sub")
    except (IndexError, ValueError, binascii.Error, AttributeError):
        raise invalid_client("malformed client assertion") from None
    if not isinstance(subject, str) or not subject:
        raise invalid_client("client assertion without sub")
    return subject
