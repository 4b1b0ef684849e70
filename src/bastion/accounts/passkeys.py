"""Passkeys (WebAuthn Level 3) through the ``webauthn`` library: the two ceremonies.

Every ceremony requires user verification (WebAuthn §6.2.3 "required"): the authenticator
checked a PIN or biometric, so a passkey sign-in is two factors in one and, being bound to
the origin, phishing-resistant. Credentials are discoverable (resident), so a user can sign
in without typing a username. Challenges are single-use and kept by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bastion.accounts.records import Passkey
from bastion.errors import PasskeyError

MAX_CREDENTIAL_JSON = 16_384


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def registration_options(
    *, rp_id: str, rp_name: str, user_id: str, username: str, existing: list[Passkey]
) -> tuple[str, bytes]:
    """Options JSON for ``navigator.credentials.create`` and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        # The user handle is the opaque account id, never the username (WebAuthn §14.6.1).
        user_id=user_id.encode(),
        user_name=username,
        user_display_name=username,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    return options_to_json(options), options.challenge


def authentication_options(*, rp_id: str, allowed: list[Passkey]) -> tuple[str, bytes]:
    """Options JSON for ``navigator.credentials.get``; an empty ``allowed`` lets the
    authenticator offer any discoverable credential for this site."""
    options = generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[_descriptor(p) for p in allowed],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options), options.challenge


def verify_registration(
    credential: object,
    *,
    challenge: bytes,
    rp_id: str,
    origin: str,
    user_id: str,
    name: str,
    now: float,
) -> Passkey:
    try:
        text = _credential_text(credential)
        parsed = parse_registration_credential_json(text)
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError("the passkey could not be verified") from exc
    return Passkey(
        credential_id=bytes_to_base64url(verified.credential_id),
        user_id=user_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=(name.strip() or "Passkey")[:100],
        transports=tuple(t.value for t in parsed.response.transports or ()),
        backed_up=verified.credential_backed_up,
        created_at=now,
        last_used_at=None,
    )


@dataclass(frozen=True)
class Assertion:
    """A sign-in assertion, parsed once: its credential id to look up, then verified."""

    credential_id: str
    parsed: AuthenticationCredential


def parse_assertion(credential: object) -> Assertion:
    try:
        parsed = parse_authentication_credential_json(_credential_text(credential))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError("the passkey could not be verified") from exc
    return Assertion(bytes_to_base64url(parsed.raw_id), parsed)


def verify_assertion(
    assertion: Assertion, *, challenge: bytes, rp_id: str, origin: str, stored: Passkey
) -> int:
    """Check an assertion against the stored passkey; returns the new signature counter."""
    handle = assertion.parsed.response.user_handle
    if handle is not None and handle != stored.user_id.encode():
        # The authenticator says the credential belongs to another account.
        raise PasskeyError("the passkey could not be verified")
    try:
        verified = verify_authentication_response(
            credential=assertion.parsed,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=stored.public_key,
            credential_current_sign_count=stored.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError("the passkey could not be verified") from exc
    return verified.new_sign_count


def _credential_text(credential: object) -> str:
    if not isinstance(credential, dict):
        raise PasskeyError("a credential is a JSON object")
    text = orjson.dumps(credential).decode()
    if len(text) > MAX_CREDENTIAL_JSON:
        raise PasskeyError("credential too large")
    return text
