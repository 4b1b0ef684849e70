"""The device-trust endpoints (docs/device-trust.md#challenges-attestation-and-assertions):

- ``POST /device/challenge``: a one-time challenge for a client's app;
- ``POST /device/attest/apple`` and ``POST /device/attest/google``: an installation
  proves itself (App Attest, Play Integrity) over a challenge and the thumbprint of its
  DPoP key, whose proof (RFC 9449 §4, no token, so no ``ath``) comes with the request;
- ``PUT /device/encryption-key``: an attested installation registers its encryption key,
  authenticated by a DPoP proof with the key bound to it (and a ``Device-Assertion``
  over the request when it sends one).

Bodies are JSON objects of bounded size (refused once past ``MAX_BODY_BYTES``, however
sent), read strictly (a member named twice is refused: RFC 8259 §4 leaves its meaning
open), validated against the models below (unknown members refused); errors are RFC
9457 problem details; no answer is cached. A per-installation client (attested
registration) asks for challenges as its app (``_app_of``).
"""

from __future__ import annotations

import base64
import binascii
from functools import partial
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.authserver.installations import installation_app
from bastion.authserver.server import AuthServer
from bastion.device.binding import request_target
from bastion.device.encryption_key import encryption_key
from bastion.device.records import Device
from bastion.device.service import DeviceTrust
from bastion.errors import (
    BodyTooLarge,
    DpopError,
    DpopRefused,
    InvalidInput,
    ProblemError,
    UnsupportedMediaType,
)
from bastion.oauth.clients import Client
from bastion.oauth.dpop import DpopProof
from bastion.web import strict_json

# An attestation object is at most 16 KiB (22 KB in base64), a Play Integrity token
# 16 KiB: anything far above is not from an app.
MAX_BODY_BYTES = 32 * 1024
NO_STORE = {"cache-control": "no-store"}
_CLIENT_ID = r"^[\x21-\x7e]{1,255}$"
_VERSION = r"^[A-Za-z0-9._+-]{1,64}$"

_DPOP_DETAILS = {
    "invalid_token": "This request cannot be made this way.",
    "invalid_dpop_proof": "The DPoP proof is invalid.",
    "use_dpop_nonce": "A DPoP nonce from this server is required.",
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_M = TypeVar("_M", bound=_Body)


class ChallengeRequest(_Body):
    client_id: str = Field(pattern=_CLIENT_ID)


class AppleAttestation(_Body):
    client_id: str = Field(pattern=_CLIENT_ID)
    # base64url of the 32 raw bytes of the key id.
    key_id: str = Field(min_length=43, max_length=44)
    # The attestation object (CBOR), base64 (standard or URL-safe alphabet).
    attestation_object: str = Field(min_length=1, max_length=24_000)
    challenge: str = Field(min_length=1, max_length=64)
    app_version: str | None = Field(None, pattern=_VERSION)


class GoogleAttestation(_Body):
    client_id: str = Field(pattern=_CLIENT_ID)
    integrity_token: str = Field(min_length=1, max_length=16_384)
    challenge: str = Field(min_length=1, max_length=64)
    app_version: str | None = Field(None, pattern=_VERSION)


class EncryptionKey(_Body):
    jwk: dict[str, Any]


async def _read(request: Request) -> bytes:
    """The body, read no further than ``MAX_BODY_BYTES``: a larger one is refused (413)
    as soon as it is past this endpoint's own limit, declared or streamed (chunked), not
    once the server's general limit is reached."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body is over {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _document(request: Request) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object (``strict_json``: a member named twice is refused, since
    parsers disagree on which one counts) and as the bytes sent."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise UnsupportedMediaType("the body must be application/json")
    raw = await _read(request)
    try:
        document = strict_json.loads(raw)
    except ValueError as exc:
        raise ProblemError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ProblemError("the body must be a JSON object")
    return document, raw


async def _body(request: Request, model: type[_M]) -> _M:
    return _validated(model, (await _document(request))[0])


def _validated(model: type[_M], document: dict[str, Any]) -> _M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = [
            {
                "pointer": _pointer(error["loc"]),
                "detail": _message(error),
            }
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidInput("The request body is not valid.", extensions={"errors": errors}) from exc


def _pointer(location: tuple[int | str, ...]) -> str:
    """RFC 6901 pointer to a member; a member name the app chose is cut short, so an
    answer never carries much of the request back."""
    parts = (str(part)[:64].replace("~", "~0").replace("/", "~1") for part in location)
    return "/" + "/".join(parts)


def _message(error: Any) -> str:
    # pydantic's messages never quote the input; "extra" ones name the member only.
    kind = error.get("type")
    if kind == "extra_forbidden":
        return "not an accepted member"
    if kind == "missing":
        return "required"
    return str(error.get("msg", "invalid"))


def _bytes(value: str, pointer: str) -> bytes:
    """Base64 in either alphabet (RFC 4648 §4 or §5), padded or not: Swift's
    ``base64EncodedString()`` pads, other encoders do not. The padding is taken off and
    put back as the length needs, so "=", "==" and none all read."""
    text = value.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            "The request body is not valid.",
            extensions={"errors": [{"pointer": pointer, "detail": "not base64"}]},
        ) from exc


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=NO_STORE
    )


def _device_view(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "platform": device.platform,
        "level": device.level,
        "attested_at": int(device.attested_at),
    }


async def _dpop_proof(
    auth: AuthServer, request: Request, client: Client | None, method: str
) -> DpopProof:
    """The request's DPoP proof, checked and used up (RFC 9449 §4.3); 401 with a DPoP
    challenge (§7.1) otherwise."""
    dpop = auth.dpop
    try:
        return await dpop.check(
            request.headers.getlist("dpop"),
            method=method,
            uri=f"{auth.settings.issuer}{request.url.path}",
            actor=f"client:{client.client_id if client else 'unknown'}",
            nonce=dpop.nonce_required(client),
        )
    except DpopError as exc:
        raise _dpop_refused(auth, exc) from exc


def _dpop_refused(auth: AuthServer, exc: DpopError) -> DpopRefused:
    return DpopRefused(_DPOP_DETAILS[exc.error], exc.error, auth.dpop.challenge(exc.error))


async def _dpop_jkt(auth: AuthServer, request: Request, client_id: str) -> str:
    client = await auth.clients.get(client_id)
    return (await _dpop_proof(auth, request, client, "POST")).jkt


async def challenge(trust: DeviceTrust, auth: AuthServer, request: Request) -> Response:
    body = await _body(request, ChallengeRequest)
    issued = await trust.challenge(await _app_of(auth, trust, body.client_id))
    expires_in = max(0, int(issued.expires_at - trust.clock.now()))
    return _json({"challenge": issued.value, "expires_in": expires_in})


async def _app_of(auth: AuthServer, trust: DeviceTrust, client_id: str) -> str:
    """The declared app a challenge is for: ``client_id`` itself, or for a
    per-installation client made by attested registration (RFC 7591) the app client it
    is an installation of (``installations.installation_app``), so that installations
    can make assertions, judged as the app they are. A disabled installation client
    (its device revoked) gets none."""
    if client_id in trust.apps:
        return client_id
    client = await auth.clients.get(client_id)
    app = None if client is None or not client.enabled else installation_app(client)
    return client_id if app is None else app


async def attest_apple(trust: DeviceTrust, auth: AuthServer, request: Request) -> Response:
    body = await _body(request, AppleAttestation)
    trust.app(body.client_id)
    attestation_object = _bytes(body.attestation_object, "/attestation_object")
    jkt = await _dpop_jkt(auth, request, body.client_id)
    device = await trust.attest_apple(
        client_id=body.client_id,
        key_id=body.key_id,
        attestation_object=attestation_object,
        challenge=body.challenge,
        dpop_jkt=jkt,
        app_version=body.app_version,
    )
    return _json(_device_view(device), 201)


async def attest_google(trust: DeviceTrust, auth: AuthServer, request: Request) -> Response:
    body = await _body(request, GoogleAttestation)
    trust.app(body.client_id)
    jkt = await _dpop_jkt(auth, request, body.client_id)
    outcome = await trust.attest_google_outcome(
        client_id=body.client_id,
        token=body.integrity_token,
        challenge=body.challenge,
        dpop_jkt=jkt,
        app_version=body.app_version,
    )
    return _json(_device_view(outcome.device), 201 if outcome.created else 200)


async def put_encryption_key(trust: DeviceTrust, auth: AuthServer, request: Request) -> Response:
    document, raw = await _document(request)
    body = _validated(EncryptionKey, document)
    try:
        jwk = encryption_key(body.jwk)
    except ValueError as exc:
        raise InvalidInput(
            "The key is not accepted.",
            extensions={"errors": [{"pointer": "/jwk", "detail": str(exc)}]},
        ) from exc
    # The installation is the one the proof's key is bound to, so the client (and its
    # nonce rule, RFC 9449 §8) is known only once the proof is verified.
    proof = await _dpop_proof(auth, request, None, "PUT")
    device = await trust.device_for_key(proof.jkt, "device.encryption_key")
    client = await auth.clients.get(device.client_id)
    if auth.dpop.nonce_required(client) and not auth.dpop.nonces.accepts(
        proof.nonce, trust.clock.now()
    ):
        error = DpopError("nonce", "a fresh DPoP nonce is required", "use_dpop_nonce")
        auth.dpop.refused(f"client:{device.client_id}", error.reason, request.url.path)
        raise _dpop_refused(auth, error)
    assertion = [v.encode("latin-1") for v in request.headers.getlist("device-assertion")]
    if assertion:
        device = await trust.verify_assertion(
            client_id=device.client_id,
            method="PUT",
            target=request_target(request.scope),
            body=raw,
            header_values=assertion,
            device=device,
        )
    await trust.register_encryption_key(device, jwk)
    return _json({"device_id": device.device_id, "encryption_key": jwk})


def routes(trust: DeviceTrust, auth: AuthServer) -> list[Route]:
    return [
        Route("/device/challenge", partial(challenge, trust, auth), methods=["POST"]),
        Route("/device/attest/apple", partial(attest_apple, trust, auth), methods=["POST"]),
        Route("/device/attest/google", partial(attest_google, trust, auth), methods=["POST"]),
        Route("/device/encryption-key", partial(put_encryption_key, trust, auth), methods=["PUT"]),
    ]
