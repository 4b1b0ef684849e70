"""Redaction: secrets, tokens, codes, passwords, cookies never reach a log line.

Two nets, because either alone misses things:

* by name: any mapping key, header name or ``name=value`` / ``"name": value`` pair in
  text (query strings, fragments, form bodies, JSON, exception messages) whose
  normalised name is sensitive has its value replaced, whatever the value looks like;
* by shape: strings that look like credentials wherever they appear: ``Bearer``,
  ``Basic``, ``DPoP`` values, JWT/JWE compact serialisations, PEM private keys,
  passwords in URL userinfo, every value of a ``Cookie``/``Set-Cookie`` header.

Percent-encoded name and separator characters are decoded before scanning, so an
encoded ``code%3D...`` is seen too; encoded delimiters (``%26``, ``%20``, ...) stay
encoded, so they cannot end a secret value early.
A harmless name never shields what follows it: after ``url=`` the scan continues
inside the value, so ``url=https://app/cb?code=X`` still loses its code.

It never raises on hostile input: cycles, deep nesting, odd key types, bytes and huge
integers are all turned into something safe to serialise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

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
        "cookies",
        "setcookie",
        "dpop",
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "passwordhash",
        "pin",
        "passwordconfirmation",
        "secret",
        "secrets",
        "clientsecret",
        "secretkey",
        "awssecretaccesskey",
        "token",
        "tokens",
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
        "csrf",
        "csrftoken",
        "xcsrftoken",
        "idempotencykey",
        "requesturi",
        "softwarestatement",
        "credential",
        "credentials",
        "signature",
        "xamzsecuritytoken",
        "interaction",
        "ticket",
        "recoveryticket",
        "nonce",
        "basic",
        "bearer",
    }
)
_SENSITIVE_SUFFIXES = (
    "token",
    "tokens",
    "secret",
    "secrets",
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
    "session",
    "credential",
    "credentials",
    "interaction",
)
# Private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_JWK_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})

# RFC 7235 §2.1: scheme names are case-insensitive; the credential is a token68.
_SCHEME = re.compile(
    r"\b(Bearer|Basic|DPoP|Digest|Negotiate)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE
)
_JOSE = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}")
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
# The scheme must start at a boundary: otherwise a long run of letters is retried at every
# position and the match becomes quadratic.
_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)"
    r"[^/@\s?#]+@"
)
# Whole header lines whose value is a credential, whatever its scheme or shape.
_HEADER_LINE = re.compile(
    r"(?P<head>\b(?:set-cookie|cookie|authorization|proxy-authorization)[\"']?\s*[:=]\s*)"
    r"[^\r\n]*",
    re.IGNORECASE,
)
# A name (optionally quoted, as in JSON or Python reprs), a separator, and an optional
# opening quote. The value itself is delimited by hand in _value_end.
_NAME_SEP = re.compile(
    r"(?P<open>\\?[\"'])?(?P<name>[A-Za-z][A-Za-z0-9_.\-\[\]]{0,63})"
    r"(?P<sep>(?:\\?[\"'])?\s*(?:=>|[=:,])\s*)(?P<quote>[bBrRuU]?\\?[\"'])?"
)
_UNQUOTED_END = re.compile(r"[\s&;,\"'}#<>)\]]")
_BRACKETS = {"[": "]", "(": ")", "{": "}", "<": ">"}
# Characters whose percent-encoding is decoded before scanning; delimiters are not.
_DECODABLE = re.compile(
    r"%(25|2[DdEe]|3[0-9AaDdFf]|4[1-9A-Fa-f]|5[0-9Aa]|5[Ff]|6[1-9A-Fa-f]|7[0-9Aa])"
)
# Text made only of these, and without "eyJ", cannot match any pattern above: each needs
# a character outside this set (%, :, =, ",", whitespace, a quote, /, @), except a JOSE
# serialisation, which begins with "eyJ". Most audit values (ids, actions, outcomes,
# hashes) are such text, and skip the scan.
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]*")
# orjson (and most JSON consumers) stop at 64-bit integers; larger ones become text.
_INT_RANGE = range(-(2**63), 2**64)


def is_sensitive(name: str) -> bool:
    """True for a name whose value is a credential, in any common spelling.

    A bracketed form name such as ``user[password]`` is judged by each of its parts.
    Short names (not values) are remembered: the same few keys come back in every record.
    """
    return _sensitive_name(name) if len(name) <= 64 else _judge_name(name)


@functools.lru_cache(maxsize=4096)
def _sensitive_name(name: str) -> bool:
    return _judge_name(name)


def _judge_name(name: str) -> bool:
    for part in re.split(r"[\[\]]+", name):
        folded = re.sub(r"[-_.\s]", "", part).lower().rstrip("0123456789")
        if folded and (folded in _SENSITIVE_NAMES or folded.endswith(_SENSITIVE_SUFFIXES)):
            return True
    return False


def redact_text(text: str, limit: int = MAX_STRING) -> str:
    if len(text) <= limit and _PLAIN.fullmatch(text) and "eyJ" not in text:
        return text
    if text in _CLEAN:
        return text
    redacted = _scan(text, limit)
    if redacted == text and len(text) <= _CLEAN_LENGTH and limit == MAX_STRING:
        # Remembered only when nothing was hidden: the cache holds text that is logged
        # verbatim anyway, never a secret. Client ids, scopes and URLs recur in every record.
        if len(_CLEAN) >= _CLEAN_ENTRIES:
            _CLEAN.clear()
        _CLEAN[text] = None
    return redacted


# Short texts the scan left unchanged (``redact_text``); bounded, cleared when full.
_CLEAN: dict[str, None] = {}
_CLEAN_LENGTH = 256
_CLEAN_ENTRIES = 4096


def _scan(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[:limit] + "…[truncated]"
    for _ in range(8):  # nested encodings, bounded
        decoded = _DECODABLE.sub(lambda m: chr(int(m.group(1), 16)), text)
        if decoded == text:
            break
        text = decoded
    text = _PEM.sub(REDACTED, text)
    text = _USERINFO.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    text = _HEADER_LINE.sub(lambda m: f"{m.group('head')}{REDACTED}", text)
    text = _pairs(text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _JOSE.sub(REDACTED, text)


def _pairs(text: str) -> str:
    """Replace the value after every sensitive ``name=`` / ``"name":`` in ``text``.

    Scanning resumes right after each separator, never after a value, so a harmless
    pair cannot swallow a sensitive one that follows or is nested in its value.
    """
    out: list[str] = []
    position = 0
    while match := _NAME_SEP.search(text, position):
        sep = match.group("sep").strip(" \t\\\"'")
        # A comma separates a name from its value only in a quoted pair: ('password', 'x').
        tuple_pair = sep == "," and match.group("open") is not None
        if not is_sensitive(match.group("name")) or (sep == "," and not tuple_pair):
            out.append(text[position : match.end("sep")])
            position = match.end("sep")
            continue
        out.append(text[position : match.end()])
        value_start = match.end()
        if text.startswith(REDACTED, value_start):  # already redacted: stay idempotent
            value_end = value_start + len(REDACTED)
        else:
            value_end = _value_end(text, value_start, match.group("quote"))
        out.append(REDACTED)
        position = value_end
    out.append(text[position:])
    return "".join(out)


def _value_end(text: str, start: int, quote: str | None) -> int:
    """Where a value that begins at ``start`` ends: its closing quote (escapes honoured),
    its closing bracket, or the first delimiter."""
    if quote:
        mark = quote.lstrip("bBrRuU")
        index = start
        while (found := text.find(mark[-1], index)) >= 0:
            escaped = len(mark) == 1 and _backslashes_before(text, found) % 2 == 1
            if not escaped and text.startswith(mark, found - len(mark) + 1):
                return found - len(mark) + 1
            index = found + 1
        return len(text)
    if start < len(text) and text[start] in _BRACKETS:
        opening, closing, depth = text[start], _BRACKETS[text[start]], 0
        for index in range(start, len(text)):
            depth += (text[index] == opening) - (text[index] == closing)
            if depth == 0:
                return index + 1
        return len(text)
    end = _UNQUOTED_END.search(text, start)
    return len(text) if end is None else end.start()


def _backslashes_before(text: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count


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
        try:
            return redact_text(bytes(value).decode("utf-8", "replace"))
        except ValueError:  # a released memoryview
            return "[unreadable bytes]"
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if id(value) in _seen:
        return "[cycle]"
    seen = _seen | {id(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        try:
            is_jwk = "kty" in value
            for key, item in value.items():
                name = _name_of(key)
                hidden = is_sensitive(name) or (is_jwk and name in _JWK_PRIVATE)
                out[redact_text(name)] = REDACTED if hidden else redact(item, _depth + 1, seen)
        except Exception:  # a mapping that fails while being read
            out["[unreadable]"] = type(value).__name__
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
