"""Idempotency keys, draft-ietf-httpapi-idempotency-key-header-07, for POST and PATCH.

The first request with a key runs; its answer is stored with a fingerprint of the
request (method, route, caller, body hash). A retry with the same key and fingerprint
gets the stored answer again (``Idempotent-Replayed: true``) without reaching the
upstream; the same key while the first is still running gets 409; the same key with
another payload gets 422 (draft §2.7). Keys expire after the route's ``ttl``. Keys are
scoped by route and caller, so one user's key can neither replay nor probe another's.

At most once, even across a crash: the record is written as "running" before the
upstream is called and only completed after. If the process dies in between (or the
upstream times out), nobody knows whether the write happened, so the key is never run
again: retries get 409 ``idempotency-outcome-unknown`` until the key expires, and the
app checks the resource or uses a new key. Only a call that provably never reached the
upstream (connection refused) releases the key for another try.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

import http_sf
import orjson

from bastion.clock import Clock
from bastion.errors import (
    IdempotencyConflict,
    IdempotencyMismatch,
    IdempotencyOutcomeUnknown,
    InvalidInput,
)

HEADER = "idempotency-key"
MAX_KEY_CHARS = 255
# An sf-string holds at most twice its characters (escapes) and its quotes; parameters,
# which the draft does not define, get a little room on top.
_MAX_FIELD_CHARS = 2 * MAX_KEY_CHARS + 2 + 256
# What an unquoted key may hold: printable ASCII without space, quote or backslash.
_UNQUOTED = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}")
_SYNTAX = (
    f"The Idempotency-Key header must be a quoted string of 1-{MAX_KEY_CHARS} printable "
    "characters (RFC 9651 §3.3.3)."
)


class IdempotencyStore(Protocol):
    async def claim(self, key: str, record: bytes, ttl: float) -> bytes | None:
        """Store ``record`` if the key is free; otherwise return the record there."""
        ...

    async def complete(self, key: str, record: bytes, ttl: float) -> None: ...

    async def release(self, key: str, record: bytes) -> None:
        """Delete the key if it still holds ``record``."""
        ...


@dataclass(frozen=True)
class Stored:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Claim:
    """A key this request owns: complete it with the answer, or release it."""

    key: str
    running: bytes
    fingerprint: str


def parse_key(value: str | None, *, accept_unquoted: bool = False) -> str | None:
    """The key in an ``Idempotency-Key`` field, or None without one; else a 400.

    Draft §2.1 makes the field an Item whose value is a String, so it is parsed as a
    Structured Field (RFC 9651 §4.2): escapes are undone and a missing quote is an error.
    Parameters, which the draft does not define, are not part of the key. A value without
    quotes is a Token or not a Structured Field at all (a UUID starting with a digit): it
    is refused with the quoted form to send, unless the route accepts unquoted keys.
    """
    if value is None:
        return None
    text = value.strip()
    if not text.startswith('"'):
        if _UNQUOTED.fullmatch(text) is None:
            raise InvalidInput(_SYNTAX)
        if accept_unquoted:
            return text
        raise InvalidInput(f"{_SYNTAX} Send it as Idempotency-Key: {http_sf.ser(text)}")
    if len(text) > _MAX_FIELD_CHARS:
        raise InvalidInput(_SYNTAX)
    try:
        item = http_sf.parse(text.encode("ascii"), tltype="item")
    except (http_sf.StructuredFieldError, UnicodeEncodeError):
        raise InvalidInput(_SYNTAX) from None
    key = item[0] if isinstance(item, tuple) else None  # (bare item, parameters)
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidInput(_SYNTAX)
    return key


def fingerprint(method: str, route: str, principal: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), route.encode(), principal.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class Idempotency:
    def __init__(self, store: IdempotencyStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def begin(
        self,
        key: str,
        *,
        route: str,
        principal: str,
        fingerprint: str,
        ttl: float,
        lease: float = float("inf"),
    ) -> Claim | Stored:
        """Own the key (a ``Claim``), or get the stored answer to replay; else 409/422."""
        scoped = "idem:" + hashlib.sha256(f"{route}\x00{principal}\x00{key}".encode()).hexdigest()
        running = orjson.dumps({"state": "running", "fp": fingerprint, "at": self._clock.now()})
        existing = await self._store.claim(scoped, running, ttl)
        if existing is None:
            return Claim(scoped, running, fingerprint)
        record: dict[str, Any] = orjson.loads(existing)
        if record.get("fp") != fingerprint:
            raise IdempotencyMismatch("This Idempotency-Key was used with a different request.")
        if record.get("state") == "done":
            return Stored(
                int(record["status"]),
                [(base64.b64decode(k), base64.b64decode(v)) for k, v in record["headers"]],
                base64.b64decode(record["body"]),
            )
        stale = record.get("state") == "running" and (
            self._clock.now() - float(record.get("at", 0)) > lease
        )
        if record.get("state") == "unknown" or stale:
            # Running for longer than any call can take: the process that owned it died.
            raise IdempotencyOutcomeUnknown(
                "The first request with this Idempotency-Key may or may not have been "
                "processed. Check the resource, or use a new key."
            )
        raise IdempotencyConflict(
            "A request with this Idempotency-Key is still being processed.",
            headers={"retry-after": "1"},
        )

    async def complete(self, claim: Claim, answer: Stored, ttl: float) -> None:
        record = {
            "state": "done",
            "fp": claim.fingerprint,
            "status": answer.status,
            "headers": [
                [base64.b64encode(k).decode(), base64.b64encode(v).decode()]
                for k, v in answer.headers
            ],
            "body": base64.b64encode(answer.body).decode(),
        }
        await self._store.complete(claim.key, orjson.dumps(record), ttl)

    async def unknown(self, claim: Claim, ttl: float) -> None:
        """The upstream may have acted (timeout, cut connection): never run this key again."""
        record = {"state": "unknown", "fp": claim.fingerprint, "at": self._clock.now()}
        await self._store.complete(claim.key, orjson.dumps(record), ttl)

    async def release(self, claim: Claim) -> None:
        """The request provably never reached the upstream: the key may be tried again."""
        await self._store.release(claim.key, claim.running)
