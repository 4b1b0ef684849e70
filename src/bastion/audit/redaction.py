"""Redaction: secrets, tokens, codes, passwords, cookies never reach a log line.

Two nets, because either alone misses things:

* by name: any mapping key, header name or ``name=value`` / ``"name": value`` pair in
  text (query strings, fragments, form bodies, JSON, exception messages) whose
  normalised name is sensitive has its value replaced, whatever the value looks like;
* by shape: strings that look like credentials wherever they appear: ``Bearer``,
  ``Basic``, ``DPoP`` values, JWT/JWE compact serialisations, PEM private keys,
  passwords in URL userinfo, every value of a ``Cookie``/``Set-Cookie`` header.

Text is percent-decoded before scanning, so an encoded ``code%3D...`` is seen too.
A harmless name never shields what follows it: after ``url=`` the scan continues
inside the value, so ``url=https://app/cb?code=X`` still loses its code.

It never raises on hostile input: cycles, deep nesting, odd key types, bytes and huge
integers are all turned into something safe to serialise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"
MAX_DEPTH = 32
MAX_STRING = 4096

# Names compared after lower-casing and removing "-", "_", "." and spaces, so that
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
        "passphrase",
        "passwordhash",
        "pin",
        "secret",
        "clientsecret",
        "secretkey",
        "awssecretaccesskey",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "idtokenhint",
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
        "otpcode",
        "mfacode",
        "verificationcode",
        "recoverycode",
        "resetcode",
        "backupcode",
        "apikey",
        "xapikey",
        "privatekey",
        "masterkey",
        "clientassertion",
        "assertion",
        "samlresponse",
        "session",
        "sessionid",
        "sid",
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
_SENSITIVE_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passphrase",
    "apikey",
    "privatekey",
    "secretkey",
    "cookie",
    "otp",
    "otpcode",
    "mfacode",
    "verificationcode",
    "recoverycode",
    "authcode",
    "sessionid",
    "credential",
    "credentials",
)

_SCHEME = re.compile(r"\b(Bearer|Basic|DPoP|Digest|Negotiate|Token)\s+[^\s,;\"']+", re.IGNORECASE)
_JOSE = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}")
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@\s:]*):(?P<pw>[^/@\s]*)@")
_COOKIE_LINE = re.compile(r"(?P<head>\b(?:set-)?cookie\"?\s*[:=]\s*)[^\r\n]*", re.IGNORECASE)
# A name, an optional closing quote (JSON, possibly backslash-escaped), a separator, and
# an optional opening quote. The value is found by hand after the match (see _pairs).
_NAME_SEP = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_.\-\[\]]{0,63})(?P<sep>\\?[\"']?\s*(?:=>|[=:])\s*)"
    r"(?P<quote>\\?[\"'])?"
)
_UNQUOTED_END = re.compile(r"[\s&;,\"'}#<>)\]]")
# orjson (and most JSON consumers) stop at 64-bit integers; larger ones become text.
_INT_RANGE = range(-(2**63), 2**64)


def is_sensitive(name: str) -> bool:
    """True for a name whose value is a credential, in any common spelling.

    A bracketed form name such as ``user[password]`` is judged by each of its parts.
    """
    for part in re.split(r"[\[\]]+", name):
        folded = re.sub(r"[-_.\s]", "", part).lower()
        if folded and (folded in _SENSITIVE_NAMES or folded.endswith(_SENSITIVE_SUFFIXES)):
            return True
    return False


def redact_text(text: str) -> str:
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…[truncated]"
    if "%" in text:
        for _ in range(3):  # nested encodings, bounded
            decoded = unquote(text)
            if decoded == text:
                break
            text = decoded
    text = _PEM.sub(REDACTED, text)
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)
    text = _COOKIE_LINE.sub(lambda m: f"{m.group('head')}{REDACTED}", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JOSE.sub(REDACTED, text)
    return _pairs(text)


def _pairs(text: str) -> str:
    """Replace the value after every sensitive ``name=`` / ``"name":`` in ``text``.

    Scanning resumes right after each separator, never after a value, so a harmless
    pair cannot swallow a sensitive one that follows or is nested in its value.
    """
    out: list[str] = []
    position = 0
    while match := _NAME_SEP.search(text, position):
        if not is_sensitive(match.group("name")):
            out.append(text[position : match.end("sep")])
            position = match.end("sep")
            continue
        out.append(text[position : match.end()])
        value_start = match.end()
        quote = match.group("quote")
        if text.startswith(REDACTED, value_start):  # already redacted: stay idempotent
            value_end = value_start + len(REDACTED)
        elif quote:
            close = text.find(quote, value_start)
            value_end = len(text) if close < 0 else close
        else:
            end = _UNQUOTED_END.search(text, value_start)
            value_end = len(text) if end is None else end.start()
        out.append(REDACTED)
        position = value_end
    out.append(text[position:])
    return "".join(out)


def _name_of(key: object) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes | bytearray):
        return bytes(key).decode("utf-8", "replace")
    return _safe_repr(key)


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
            name = _name_of(key)
            out[redact_text(name)] = (
                REDACTED if is_sensitive(name) else redact(item, _depth + 1, seen)
            )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        # A (name, value) pair, as in ASGI header lists: judge the value by the name.
        if (
            len(items) == 2
            and isinstance(items[0], str | bytes)
            and is_sensitive(_name_of(items[0]))
        ):
            return [redact(items[0], _depth + 1, seen), REDACTED]
        return [redact(item, _depth + 1, seen) for item in items]
    return redact_text(_safe_repr(value))


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a hostile __repr__ must not break logging
        return f"<unprintable {type(value).__name__}>"
