"""One request as it moves through the gateway's steps, and what the steps share.

The ``Exchange`` is the only state a request has: each step reads what earlier steps
found (the route, the caller, the canonical parameters, the validated body) and adds
its own. ``Services`` are the long-lived objects steps are built with.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from bastion.audit import AuditEvent, AuditPipeline, Outcome
from bastion.authserver.dpop import Dpop
from bastion.caches import TTLCache
from bastion.clock import Clock
from bastion.device.policies import RiskPolicies
from bastion.device.records import Device
from bastion.errors import BodyTooLarge, InvalidInput, RequestTimeout, UpstreamFailure
from bastion.gateway.authentication import Authenticator
from bastion.gateway.caller import Caller, principal
from bastion.gateway.credentials import InternalTokens
from bastion.gateway.guarding import Kept, Page
from bastion.gateway.objects import Ownership
from bastion.gateway.routes import Route
from bastion.gateway.upstream import UNAVAILABLE
from bastion.guards.idempotency import Claim
from bastion.guards.service import Guards
from bastion.web.context import correlation_id

if TYPE_CHECKING:
    from bastion.device.service import DeviceTrust

log = logging.getLogger("bastion.gateway")


@dataclass(frozen=True)
class Services:
    authenticator: Authenticator
    internal_tokens: InternalTokens
    ownership: Ownership
    audit: AuditPipeline
    clock: Clock
    guards: Guards
    # DPoP proofs (RFC 9449): checks, replay memory, nonces; and the origin of the
    # gateway as a proof's htu names it.
    dpop: Dpop
    public_origin: str
    body_timeout: float
    # The last good answer per (route, URL, caller), for stale fallbacks; keyed by the
    # caller too, so a fallback never hands one user's data to another.
    stale: TTLCache[tuple[str, ...], Kept]
    # Per-route device risk policies (bastion.device.policies); None only where no
    # route has a device table.
    risk: RiskPolicies | None = None
    # Device attestation and assertions (routes whose ``device`` policy asks for them).
    device: DeviceTrust | None = None


@dataclass(slots=True)
class Answer:
    """An upstream answer read whole, as the app will receive it once the steps are done."""

    status: int
    headers: list[tuple[bytes, bytes]]
    payload: bytes
    # Where it came from, for the log when it is not what a step expected.
    upstream: str = ""
    _document: Any = None
    _parsed: bool = False
    _changed: bool = False

    def json(self) -> Any:
        """The payload as JSON (parsed once), ``None`` when empty, or a 502 when it is not
        JSON: a route that must check or shape an answer never passes one it cannot read."""
        if not self._parsed:
            self._parsed = True
            if self.payload:
                try:
                    self._document = orjson.loads(self.payload)
                except orjson.JSONDecodeError:
                    log.warning("upstream %s answered non-JSON on a checked route", self.upstream)
                    raise UpstreamFailure(UNAVAILABLE) from None
        return self._document

    def replace(self, document: Any) -> None:
        """A step changed the document: the app receives it serialised again."""
        self._document = document
        self._changed = True

    def final(self) -> bytes:
        return orjson.dumps(self._document) if self._changed else self.payload


# Slots: one of each is made per request, and their fields are read by every step.
@dataclass(slots=True)
class Exchange:
    scope: Scope
    receive: Receive
    send: Send
    method: str
    # Request headers by lower-case name; the first of repeated fields wins.
    headers: dict[str, str]
    route: Route
    params: dict[str, str]
    query: dict[str, str | list[str]] = field(default_factory=dict)
    # The query the upstream receives (pagination rewrites it).
    query_string: bytes = b""
    caller: Caller | None = None
    # The Authorization header's scheme ("bearer" or "dpop") and token, once parsed.
    presented: tuple[str, str] | None = None
    object_id: str | None = None
    # The id a create makes, when the app chose it (path or body), and whether this
    # request reserved it in the ownership registry.
    created_id: str | None = None
    reserved: bool = False
    # The body as the app sent it, and as JSON once validated (then forwarded re-serialised).
    body: bytes | None = None
    document: Any = None
    _forwarded: bytes | None = None
    outgoing: list[tuple[str, str]] = field(default_factory=list)
    page: Page | None = None
    claim: Claim | None = None
    # The idempotency key's record holds the final answer.
    settled: bool = False
    # The upstream call was attempted: from here on it may have acted.
    called: bool = False
    # The upstream's status, once it answered; its answer when read whole.
    status: int | None = None
    answer: Answer | None = None
    # Once the status line is sent, a failure can only cut the connection.
    started: bool = False
    # The app has its answer (a replay, a stream, a stale copy): later steps stop.
    answered: bool = False
    # Headers every answer to this request carries (RateLimit fields, Link, CORS).
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)
    # The device whose assertion this request carried (steps.device_assertion), for the
    # risk step; ``device_outage`` when it could not be verified (trust data unavailable)
    # and ``device`` is then the last known record of the caller's device, if any.
    device: Device | None = None
    device_outage: bool = False

    def forwarded_body(self) -> bytes | None:
        """What the upstream receives: the validated document, or the body as sent.

        Forwarding what was validated means duplicate keys or numbers the parser read one
        way cannot reach the upstream to be read another way.
        """
        if self.document is None:
            return self.body
        if self._forwarded is None:
            # Serialised once, when the first step needs it: the steps that change the
            # document (validation, bound fields) all run before those that read it.
            self._forwarded = orjson.dumps(self.document)
        return self._forwarded

    @property
    def who(self) -> str:
        """The caller in its issuer's namespace, or "anonymous"."""
        caller = self.caller
        return "anonymous" if caller is None else principal(caller, caller.subject)

    async def send_whole(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self.started = True
        self.answered = True
        await send_whole(self.send, status, headers, body)


def raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"]).encode()
    return raw.split(b"?", 1)[0]


def request_headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; the first of repeated fields wins."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in found:
            found[key] = value.decode("latin-1")
    return found


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int, declared: str | None, per_read: float) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            # A client that stops sending mid-body (slowloris) is cut off, per read.
            async with asyncio.timeout(per_read):
                message: Message = await receive()
        except TimeoutError:
            raise RequestTimeout("The request body arrived too slowly.") from None
        if message["type"] == "http.disconnect":
            raise InvalidInput("The request was cancelled.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body is over {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def audit_exchange(
    audit: AuditPipeline,
    ex: Exchange,
    action: str,
    status: int,
    outcome: Outcome,
    **details: str,
) -> None:
    """Who (subject and app), which route, which object; never the body."""
    caller = ex.caller
    audit.emit(
        AuditEvent(
            action,
            outcome,
            actor=_actor(caller),
            target=ex.object_id,
            policy=ex.route.label,
            correlation_id=correlation_id(ex.scope),
            details={
                "method": ex.method,
                "status": status,
                "client": None if caller is None else caller.client_id,
                **details,
            },
        )
    )


def _actor(caller: Caller | None) -> str:
    if caller is None:
        return "anonymous"
    return (
        f"user:{caller.subject}"
        if caller.issuer == "bastion"
        else f"{caller.issuer}:{caller.subject}"
    )
