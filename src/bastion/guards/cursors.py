"""Opaque, signed pagination cursors.

A cursor carries where the next page starts (an upstream offset or the upstream's own
next-page token), for which route and caller it was issued, and until when. It is
base64url of a small JSON document followed by an HMAC-SHA256 tag under a key derived
from the master key, so a client cannot forge one, move it to another route or user,
or change the offset. A bad cursor is one opaque 400.

Each cursor has exactly one spelling: the unpadded base64url text the gateway issued.
Python's decoder skips characters outside the alphabet, accepts padding and the ``+/``
alphabet, and ignores the unused bits of the last character (RFC 4648 §3.3 and §3.5 say
to refuse all of these), so what was decoded is encoded again and must match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from bastion.errors import InvalidInput

VERSION = 1
TAG_BYTES = 16
MAX_CURSOR_CHARS = 2048


@dataclass(frozen=True)
class Position:
    offset: int | None = None
    token: str | None = None


class Cursors:
    def __init__(self, key: bytes, lifetime: float) -> None:
        if len(key) < 32:
            raise ValueError("the cursor key must be at least 32 bytes")
        self._key = key
        self._lifetime = lifetime

    def issue(self, position: Position, *, scope: str, now: float) -> str:
        body: dict[str, Any] = {"v": VERSION, "s": scope, "e": int(now + self._lifetime)}
        if position.offset is not None:
            body["o"] = position.offset
        if position.token is not None:
            body["t"] = position.token
        payload = orjson.dumps(body)
        tag = hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]
        return _encode(payload + tag).decode("ascii")

    def open(self, cursor: str, *, scope: str, now: float) -> Position:
        """The position in a cursor this gateway issued for ``scope``, or a 400."""
        try:
            if len(cursor) > MAX_CURSOR_CHARS:
                raise ValueError("too long")
            text = cursor.encode("ascii")
            raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
            if not hmac.compare_digest(_encode(raw), text):
                raise ValueError("not the canonical encoding")
            payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:TAG_BYTES]
            if len(raw) <= TAG_BYTES or not hmac.compare_digest(tag, expected):
                raise ValueError("bad tag")
            body = orjson.loads(payload)
            if body.get("v") != VERSION or body.get("s") != scope or now > body.get("e", 0):
                raise ValueError("wrong scope, version or expired")
            offset, token = body.get("o"), body.get("t")
            if offset is not None and (not isinstance(offset, int) or offset < 0):
                raise ValueError("bad offset")
            if token is not None and not isinstance(token, str):
                raise ValueError("bad token")
        except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            raise InvalidInput("The cursor is invalid or has expired.") from None
        return Position(offset, token)


def _encode(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")
