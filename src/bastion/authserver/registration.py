"""Dynamic client registration (RFC 7591) and management (RFC 7592).

Registration is off unless ``oauth.registration.enabled``, and even then a request must
carry either the initial access token (``BASTION_REGISTRATION_TOKEN``, RFC 7591 §3) or a
software statement signed by the operator (§2.3). This lets each app install obtain its
own client, typically a confidential one with ``private_key_jwt`` and a key that never
leaves the device, instead of every install sharing one embedded identity.

What a registration may claim is bounded: without a statement, scopes come from
``registration.default_scopes`` and no resources are granted; a statement's values
take precedence over the request's (§2.3, §3.1.1). They are stored with the client and
are the ceiling for every later update: statements ship inside apps, so anyone can
register with one, and an update must not then move the trusted name and scopes to
another redirect URI or key. Changing such a value takes a new statement.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bastion.errors import ClientMetadataError, OAuthError
from bastion.oauth.clients import (
    AUTHORIZATION_CODE,
    BRANDING,
    REFRESH_TOKEN,
    Branding,
    Client,
    check_client,
    hash_secret,
)

STATEMENT_ALGORITHMS = ("ES256", "ES384", "Ed25519", "EdDSA", "PS256", "RS256")
ALLOWED_AUTH_METHODS = ("none", "private_key_jwt", "client_secret_basic")
# Metadata a statement can fix. Lists may narrow on update; the rest must stay as signed.
BOUND_LISTS = ("redirect_uris", "grant_types", "resources", "exchange_subject_audiences")
BOUND_VALUES = (
    "client_name",
    *BRANDING,
    "jwks",
    "jwks_uri",
    "token_endpoint_auth_method",
    "dpop_bound_access_tokens",
)
CODE_FLOW = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN})


def new_client_id() -> str:
    """128 random bits in hex: no leading '-' for a shell to read as an option, and one
    word to double-click and copy."""
    return secrets.token_hex(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def initial_token_ok(presented: str | None, configured: str | None) -> bool:
    if not presented or not configured:
        return False
    return hmac.compare_digest(token_hash(presented), token_hash(configured))


def load_statement_keys(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def verify_statement(statement: str, keys: Mapping[str, Any] | None, now: float) -> dict[str, Any]:
    """The statement's claims if the operator signed it (RFC 7591 §2.3)."""
    if keys is None:
        raise OAuthError("unapproved_software_statement", "software statements are not accepted")
    try:
        decoded = jwt.decode(
            statement,
            KeySet.import_key_set(dict(keys)),  # type: ignore[arg-type]
            algorithms=list(STATEMENT_ALGORITHMS),
        )
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OAuthError(
            "invalid_software_statement", "the software statement is not signed by a trusted key"
        ) from exc
    claims = dict(decoded.claims)
    if not isinstance(claims.get("iss"), str):
        raise OAuthError("invalid_software_statement", "the software statement needs iss")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int | float) or exp <= now):
        raise OAuthError("invalid_software_statement", "the software statement has expired")
    return claims


def statement_values(statement: Mapping[str, Any] | None) -> dict[str, Any]:
    """The registration metadata a verified statement fixes."""
    names = ("scope", *BOUND_LISTS, *BOUND_VALUES)
    return {n: statement[n] for n in names if statement and statement.get(n) is not None}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OAuthError("invalid_client_metadata", f"{name} must be a list of strings")
    for item in value:
        _text(item, name)
    return tuple(value)


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise OAuthError("invalid_client_metadata", f"{name} must be a string")
    if value is not None and (_CONTROL.search(value) or len(value) > 2048):
        raise OAuthError("invalid_client_metadata", f"{name} is too long or has control characters")
    return value


def _flag(value: Any) -> bool:
    # RFC 9449 §5.2: a JSON boolean, false when absent.
    if value is None:
        return False
    if not isinstance(value, bool):
        raise OAuthError("invalid_client_metadata", "dpop_bound_access_tokens must be a boolean")
    return value


def _branding(metadata: Mapping[str, Any]) -> Branding:
    """The branding members sent (RFC 7591 §2); checked with the rest of the client."""
    return Branding.from_metadata({name: _text(metadata.get(name), name) for name in BRANDING})


def _public_jwks(value: Any) -> dict[str, Any] | None:
    """A JWK Set of public asymmetric keys, or ``invalid_client_metadata``."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise OAuthError("invalid_client_metadata", "jwks must be a JWK Set")
    for key in value["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("EC", "OKP", "RSA") or "d" in key:
            raise OAuthError(
                "invalid_client_metadata", "jwks must hold public EC, OKP or RSA keys only"
            )
    try:
        KeySet.import_key_set(value)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise OAuthError("invalid_client_metadata", "jwks holds an invalid key") from exc
    return dict(value)


def client_from_metadata(
    metadata: Mapping[str, Any],
    *,
    client_id: str,
    statement: Mapping[str, Any] | None,
    default_scopes: tuple[str, ...],
) -> tuple[Client, str | None]:
    """The client a registration describes, and a new secret if it uses one."""
    merged = {**metadata, **(statement or {})}
    method = _text(merged.get("token_endpoint_auth_method"), "token_endpoint_auth_method") or (
        "private_key_jwt" if merged.get("jwks") else "none"
    )
    if method not in ALLOWED_AUTH_METHODS:
        raise OAuthError("invalid_client_metadata", "unsupported token_endpoint_auth_method")
    if merged.get("jwks_uri") is not None:
        raise OAuthError("invalid_client_metadata", "jwks_uri is not supported; send jwks")
    jwks = _public_jwks(merged.get("jwks"))
    grants = _strings(merged.get("grant_types"), "grant_types") or tuple(sorted(CODE_FLOW))
    # Only the operator (through a statement) may allow more than an app's code flow:
    # client credentials or token exchange from self-registration would mint API tokens.
    grant_ceiling = _strings((statement or {}).get("grant_types"), "grant_types") or CODE_FLOW
    if not set(grants) <= set(grant_ceiling):
        raise OAuthError("invalid_client_metadata", "a requested grant type may not be registered")
    response_types = _strings(merged.get("response_types"), "response_types")
    if response_types and set(response_types) != {"code"}:
        raise OAuthError("invalid_client_metadata", "only the code response type exists")
    requested = _scope(merged)
    ceiling = _scope(statement or {}) or default_scopes
    if not set(requested) <= set(ceiling):
        raise OAuthError("invalid_client_metadata", "a requested scope may not be registered")
    secret = secrets.token_urlsafe(32) if method == "client_secret_basic" else None
    client = Client(
        client_id=client_id,
        client_type="public" if method == "none" else "confidential",
        auth_method=method,  # type: ignore[arg-type]
        name=(_text(merged.get("client_name"), "client_name") or "")[:200],
        redirect_uris=_strings(merged.get("redirect_uris"), "redirect_uris"),
        scopes=frozenset(requested or ceiling),
        grant_types=frozenset(grants),
        resources=frozenset(_strings((statement or {}).get("resources"), "resources")),
        # Whose tokens the client may exchange is the operator's word only; delegation
        # chains are not offered to registered clients at all.
        exchange_subject_audiences=frozenset(
            _strings(
                (statement or {}).get("exchange_subject_audiences"), "exchange_subject_audiences"
            )
        ),
        secret_hash=hash_secret(secret) if secret else None,
        jwks=jwks,
        source="registration",
        statement_values=statement_values(statement) or None,
        branding=_branding(merged),
        dpop_bound_access_tokens=_flag(merged.get("dpop_bound_access_tokens")),
    )
    try:
        return check_client(client), secret
    except ClientMetadataError as exc:
        raise OAuthError(exc.error, str(exc)) from exc


def updated(
    client: Client, metadata: Mapping[str, Any], statement: Mapping[str, Any] | None
) -> Client:
    """RFC 7592 §2.2: a full replacement of what the client may change; never wider.

    The stored statement values are the ceiling (RFC 7591 §3.1.1: statement values take
    precedence), as the operator last left them (``operator_ceiling``). A statement sent
    with an update may restate or narrow them, never widen them: statements ship inside
    apps, so an older or looser one must not undo what the operator narrowed. Widening
    takes a new registration, or the operator.
    """
    if metadata.get("client_id") not in (None, client.client_id):
        raise OAuthError("invalid_client_metadata", "client_id cannot change")
    bound = dict(client.statement_values or {})
    if statement:
        presented = statement_values(statement)
        _check_ceiling(presented, bound)
        bound |= presented
    _check_ceiling(metadata, bound)
    merged = {**bound, **metadata}
    if merged.get("token_endpoint_auth_method") not in (None, client.auth_method):
        raise OAuthError("invalid_client_metadata", "token_endpoint_auth_method cannot change")
    if merged.get("jwks_uri") is not None:
        raise OAuthError("invalid_client_metadata", "jwks_uri is not supported; send jwks")
    # Scopes and grant types are the operator's: bounded by the statement's values (as
    # the operator last left them) or, where it fixed none, by what the client has.
    scope_ceiling = frozenset(_scope(bound)) or client.scopes
    grant_ceiling = (
        frozenset(_strings(bound.get("grant_types"), "grant_types")) or client.grant_types
    )
    scope = frozenset(_scope(merged)) or scope_ceiling
    grants = frozenset(_strings(merged.get("grant_types"), "grant_types")) or client.grant_types
    if not scope <= scope_ceiling or not grants <= grant_ceiling:
        raise OAuthError("invalid_client_metadata", "scopes and grant types can only narrow")
    changed = replace(
        client,
        name=(_text(merged.get("client_name"), "client_name") or client.name)[:200],
        redirect_uris=_strings(merged.get("redirect_uris"), "redirect_uris"),
        scopes=scope,
        grant_types=grants,
        jwks=_public_jwks(merged.get("jwks")) or client.jwks,
        statement_values=bound or None,
        branding=_branding(merged),
        # The app may turn DPoP on, never off: a statement (BOUND_VALUES) or the operator
        # may have required it, and the registration token lives on the device.
        dpop_bound_access_tokens=_flag(merged.get("dpop_bound_access_tokens"))
        or client.dpop_bound_access_tokens,
    )
    try:
        return check_client(changed)
    except ClientMetadataError as exc:
        raise OAuthError(exc.error, str(exc)) from exc


def operator_ceiling(client: Client) -> dict[str, Any] | None:
    """The stored statement values after the operator changed ``client``: each value the
    statement fixed now says what the client has, so a registrant's update can neither
    bring back what the operator removed nor drop what the operator added."""
    if not client.statement_values:
        return None
    current: dict[str, Any] = {
        "scope": " ".join(sorted(client.scopes)),
        "redirect_uris": list(client.redirect_uris),
        "grant_types": sorted(client.grant_types),
        "resources": sorted(client.resources),
        "exchange_subject_audiences": sorted(client.exchange_subject_audiences),
        "client_name": client.name,
        "token_endpoint_auth_method": client.auth_method,
        "jwks": None if client.jwks is None else dict(client.jwks),
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        **{name: getattr(client.branding, name) for name in BRANDING},
    }
    return {name: current.get(name, fixed) for name, fixed in client.statement_values.items()}


def _scope(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple((_text(metadata.get("scope"), "scope") or "").split())


def _check_ceiling(metadata: Mapping[str, Any], bound: Mapping[str, Any]) -> None:
    """Refuse a value beyond what the statement fixed: a wider list, any other change."""
    for name, fixed in bound.items():
        if name not in metadata:
            continue
        if name == "scope":
            within = set(_scope(metadata)) <= set(_scope(bound))
        elif name in BOUND_LISTS:
            within = set(_strings(metadata[name], name)) <= set(_strings(fixed, name))
        else:
            within = metadata[name] == fixed
        if not within:
            raise OAuthError(
                "invalid_client_metadata",
                f"{name} is fixed by the software statement; changing it needs a new one",
            )
