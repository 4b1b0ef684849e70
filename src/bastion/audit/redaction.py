"""Redaction: secrets, tokens, codes, passwords, cookies never reach a log line.

Two nets, because either alone misses things:

* by name: any mapping key, header name or query parameter whose normalised name
  is sensitive has its value replaced, whatever the value looks like;
* by shape: strings that look like credentials wherever they appear (``Bearer``,
  ``Basic``, ``DPoP`` values, JWT/JWE compact serialisations, ``key=value`` pairs
  with a sensitive key inside free text or URLs, PEM private keys).

It never raises on hostile input: cycles, deep nesting, odd key types and bytes are
all turned into something safe to serialise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
MAX_DEPTH = 32
MAX_STRING = 4096

# Names compared after lower-casing and removing "-", "_" and "." so that
# "Refresh-Token", "refresh_token" and "refreshToken" are one name.
_SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "dpop",
        "password",
        "passwd",
        "pwd",
        "newpassword",
        "currentpassword",
        "passphrase",
        "secret",
        "clientsecret",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "subjecttoken",
        "actortoken",
        "logintoken",
        "registrationaccesstoken",
        "initialaccesstoken",
        "code",
        "authorizationcode",
        "usercode",
        "devicecode",
        "codeverifier",
        "otp",
        "totp",
        "recoverycode",
        "apikey",
        "xapikey",
        "privatekey",
        "masterkey",
        "clientassertion",
        "assertion",
        "samlresponse",
        "session",
        "sessionid",
        "csrftoken",
        "xcsrftoken",
        "idempotencykey",
        "requesturi",
        "softwarestatement",
        "credential",
        "credentials",
        "signature",
        "xamzsecuritytoken",
    }
)
_SENSITIVE_SUFFIXES = ("token", "secret", "password", "apikey", "privatekey", "cookie")

_SCHEME = re.compile(r"\b(Bearer|Basic|DPoP|Digest|Negotiate|Token)\s+[^\s,;\"']+", re.IGNORECASE)
_JOSE = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}")
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
_PAIR = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_.\-]{0,63})(?P<sep>[\"']?\s*[=:]\s*)(?P<quote>[\"']?)"
    r"(?P<value>[^\s&;,\"'}]+)"
)

# orjson (and most JSON consumers) stop at 64-bit integers; larger ones become text.
_INT_RANGE = range(-(2**63), 2**64)


def is_sensitive(name: str) -> bool:
    folded = re.sub(r"[-_.\s]", "", name).lower()
    return folded in _SENSITIVE_NAMES or folded.endswith(_SENSITIVE_SUFFIXES)


def redact_text(text: str) -> str:
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…[truncated]"
    text = _PEM.sub(REDACTED, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JOSE.sub(REDACTED, text)

    def pair(match: re.Match[str]) -> str:
        if not is_sensitive(match.group("name")):
            return match.group(0)
        return f"{match.group('name')}{match.group('sep')}{match.group('quote')}{REDACTED}"

    return _PAIR.sub(pair, text)


def redact(value: Any, _depth: int = 0, _seen: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` that is safe to log; containers are rebuilt, never mutated."""
    if _depth > MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if id(value) in _seen:
        return "[cycle]"
    seen = _seen | {id(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else repr(key)
            out[redact_text(name)] = (
                REDACTED if is_sensitive(name) else redact(item, _depth + 1, seen)
            )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        # A (name, value) pair, as in ASGI header lists: judge the value by the name.
        if len(items) == 2 and isinstance(items[0], str | bytes):
            name = items[0].decode("latin-1") if isinstance(items[0], bytes) else items[0]
            if is_sensitive(name):
                return [redact(items[0], _depth + 1, seen), REDACTED]
        return [redact(item, _depth + 1, seen) for item in items]
    return redact_text(_safe_repr(value))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a hostile __repr__ must not break logging
        return f"<unprintable {type(value).__name__}>"
