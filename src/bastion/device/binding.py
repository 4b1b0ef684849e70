"""What an attestation or an assertion is bound to: the exact client data, and the
``Device-Assertion`` header that carries an assertion on a request.

The verification cores (``app_attest``, ``play_integrity``) take client data as given;
this module says what it must be, so a verdict made for one challenge, key or request
cannot be used for another.

Attestation (registering an installation), both platforms::

    client_data = challenge "." dpop_jkt           (ASCII)

``challenge`` is the one ``POST /device/challenge`` issued; ``dpop_jkt`` the RFC 7638
thumbprint of the installation's DPoP key, which this binds to the attested key. iOS
passes ``SHA-256(client_data)`` as ``clientDataHash`` to ``attestKey``; Android passes
``request_hash(client_data)`` as the Standard request's ``requestHash`` (or the classic
request's ``nonce``).

Assertion (one request), both platforms::

    client_data = "bastion-request-v1" LF method LF target LF body_hash LF challenge

``method`` upper case as sent; ``target`` the path and query exactly as sent (percent
encoding untouched, "?" and the query only if there is one); ``body_hash`` base64url
without padding of SHA-256 of the body bytes (of the empty string when there is none);
``challenge`` a fresh one from ``POST /device/challenge``. iOS signs
``SHA-256(client_data)`` with ``generateAssertion``; Android asks for a token with
``requestHash = request_hash(client_data)``.

The header is an RFC 9651 Dictionary::

    Device-Assertion: key-id=:<base64>:, assertion=:<base64>:, challenge="<challenge>"
    Device-Assertion: integrity="<Play Integrity token>", challenge="<challenge>"
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from http_sfv.dictionary import Dictionary

ASSERTION_HEADER = "device-assertion"
REQUEST_PREFIX = b"bastion-request-v1"
# An App Attest assertion is a few hundred bytes, a Play Integrity token a few kB.
MAX_HEADER_BYTES = 16_384


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def attestation_client_data(challenge: str, dpop_jkt: str) -> bytes:
    """The client data of an attestation: the challenge and the DPoP key it binds."""
    return f"{challenge}.{dpop_jkt}".encode("ascii")


def request_client_data(method: str, target: str, body: bytes, challenge: str) -> bytes:
    """The client data of an assertion over one request (see the module docstring)."""
    body_hash = b64url(hashlib.sha256(body).digest())
    return b"\n".join(
        (
            REQUEST_PREFIX,
            method.upper().encode("ascii"),
            target.encode("latin-1"),
            body_hash.encode("ascii"),
            challenge.encode("ascii"),
        )
    )


def request_target(scope: Mapping[str, Any]) -> str:
    """The ``target`` of ``request_client_data`` for an ASGI request: the path as the
    app sent it (``raw_path``, percent-encoding untouched) and, when there is one, "?"
    and the query."""
    raw: bytes = scope.get("raw_path") or str(scope["path"]).encode("utf-8")
    # Some servers put the query in raw_path as well; it is taken from query_string.
    path = raw.split(b"?", 1)[0]
    query: bytes = scope.get("query_string") or b""
    return (path + b"?" + query if query else path).decode("latin-1")


def request_hash(client_data: bytes) -> str:
    """What an Android app passes as ``requestHash`` (or ``nonce``) for ``client_data``:
    base64url of its SHA-256, without padding (43 characters)."""
    return b64url(hashlib.sha256(client_data).digest())


@dataclass(frozen=True)
class AssertionHeader:
    """A parsed ``Device-Assertion``: an App Attest assertion (``key_id`` is base64url
    of the raw key id, as device records store it) or a Play Integrity token."""

    challenge: str
    key_id: str | None = None
    assertion: bytes | None = None
    integrity_token: str | None = None


def parse_assertion_header(values: list[bytes]) -> AssertionHeader:
    """Parse the header's field lines; ``ValueError`` for anything but exactly one
    well-formed assertion of one platform."""
    if sum(len(value) for value in values) > MAX_HEADER_BYTES:
        raise ValueError("Device-Assertion is too large")
    if not values:
        raise ValueError("no Device-Assertion")
    parsed = Dictionary()
    try:
        parsed.parse(b", ".join(values))
    except ValueError as exc:
        raise ValueError("Device-Assertion is not a structured field dictionary") from exc
    members = {name: parsed[name].value for name in parsed}
    challenge = members.get("challenge")
    if not isinstance(challenge, str):
        raise ValueError("Device-Assertion needs a challenge string")
    key_id, assertion = members.get("key-id"), members.get("assertion")
    token = members.get("integrity")
    if set(members) == {"challenge", "key-id", "assertion"}:
        if not isinstance(key_id, bytes) or not isinstance(assertion, bytes):
            raise ValueError("key-id and assertion are byte sequences")
        return AssertionHeader(challenge, key_id=b64url(key_id), assertion=assertion)
    if set(members) == {"challenge", "integrity"}:
        if not isinstance(token, str) or not token:
            raise ValueError("integrity is a string")
        return AssertionHeader(challenge, integrity_token=token)
    raise ValueError(
        "Device-Assertion holds challenge with key-id and assertion (App Attest) or with "
        "integrity (Play Integrity), and nothing else"
    )
