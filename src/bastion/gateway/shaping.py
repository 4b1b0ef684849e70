"""What of an upstream's answer reaches the app (OWASP API3, excessive data exposure).

A route's ``response.allow`` lists JSON pointers (RFC 6901) of the fields the app may
see; ``*`` as a whole token stands for every array item or object member. Everything
else is dropped, so a field the upstream adds tomorrow stays inside by default.
Headers that name the upstream's technology are removed from every answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# RFC 9110 §7.6.1 and the legacy connection-specific fields: never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Fingerprints of the upstream's stack, and fields that belong to Bastion's own origin.
REVEALING = frozenset(
    {
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "x-runtime",
        "x-version",
        "x-generator",
        "x-backend-server",
        "x-served-by",
        "via",
        "x-debug-token",
        "x-debug-token-link",
        "set-cookie",
        # The body is re-framed (and decoded) by the gateway, which also dates its answer.
        "content-length",
        "content-encoding",
        "date",
        # The gateway's own correlation id is the one the app sees.
        "x-request-id",
        # A challenge from the upstream is about the gateway's credential, not the app's.
        "www-authenticate",
        "strict-transport-security",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
    }
)
# Validators of the upstream's bytes: wrong once the body is shaped.
BODY_BOUND = frozenset({"etag", "content-digest", "repr-digest", "digest", "content-md5"})
# Headers whose absolute URLs would name the upstream's host.
LOCATIONS = frozenset({b"location", b"content-location"})
WILDCARD = "*"


# The same names as bytes, as upstream headers arrive: checked per answer, so no name is
# decoded to be compared.
_DROPPED = frozenset(name.encode() for name in HOP_BY_HOP | REVEALING)
_DROPPED_RESHAPED = _DROPPED | {name.encode() for name in BODY_BOUND}


# What a browser strips from a URL before parsing it (WHATWG URL: leading and trailing C0
# controls and space; tab and newlines anywhere).
_URL_EDGES = bytes(range(0x21))
_URL_DROPPED = b"\t\n\r"


def leaves_origin(value: bytes) -> bool:
    """Whether a Location-like value, read as a browser reads it, names another origin:
    a scheme (``https:``, ``javascript:``) or a scheme-relative ``//host``.

    Browsers take a backslash for a slash in http(s) URLs, so ``/\\evil.example`` and
    ``https:\\\\evil.example`` leave the origin too.
    """
    text = value.strip(_URL_EDGES).translate(None, _URL_DROPPED).replace(b"\\", b"/")
    if text.startswith(b"//"):
        return True
    end = len(text)
    for stop in (b"/", b"?", b"#"):
        found = text.find(stop)
        if found != -1:
            end = min(end, found)
    return b":" in text[:end]


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], *, reshaped: bool = False
) -> list[tuple[bytes, bytes]]:
    """The upstream's headers (raw bytes, so any octet passes through unchanged) minus
    hop-by-hop, revealing and origin-bound ones, and absolute locations."""
    dropped = _DROPPED_RESHAPED if reshaped else _DROPPED
    kept = []
    connection: list[bytes] = []
    for name, value in headers:
        name = name.lower()
        if name in dropped or name.startswith(b"x-debug"):
            if name == b"connection":
                connection.append(value)
            continue
        if name in LOCATIONS and leaves_origin(value):
            continue  # relative locations stay; absolute or scheme-relative ones go
        kept.append((name, value))
    if connection:
        # Fields the upstream named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
        named = {
            token.strip().decode("latin-1")
            for value in connection
            for token in value.lower().split(b",")
        }
        kept = [(name, value) for name, value in kept if name.decode("latin-1") not in named]
    return kept


def compile_allowlist(pointers: Iterable[str]) -> dict[str, Any]:
    """A tree of allowed tokens; a leaf (``{}`` marked True) keeps the whole value."""
    tree: dict[str, Any] = {}
    for pointer in pointers:
        node = tree
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        if not tokens:
            return {WILDCARD: True, "": True}  # "" keeps the whole document
        for token in tokens[:-1]:
            child = node.setdefault(token, {})
            if child is True:
                break
            node = child
        else:
            node[tokens[-1]] = True
    return tree


def shape(document: Any, allowed: dict[str, Any]) -> Any:
    """Keep only the allowed parts of ``document``; a bare scalar becomes null."""
    if allowed.get("") is True:
        return document
    if not isinstance(document, dict | list):
        return None
    return _shape(document, allowed)


def _shape(node: Any, allowed: Any) -> Any:
    if allowed is True:
        return node
    assert isinstance(allowed, dict)
    # A scalar where the allowlist expects structure is withheld, not passed whole.
    wildcard = allowed.get(WILDCARD)
    if isinstance(node, dict):
        shaped = {}
        for key, value in node.items():
            rule = allowed.get(key, wildcard)
            if rule is True:
                shaped[key] = value
            elif rule is not None and isinstance(value, dict | list):
                shaped[key] = _shape(value, rule)
        return shaped
    if isinstance(node, list):
        items = []
        for index, value in enumerate(node):
            rule = (
                wildcard
                if len(allowed) == 1 and wildcard is not None
                else (allowed.get(str(index), wildcard))
            )
            if rule is True:
                items.append(value)
            elif rule is not None and isinstance(value, dict | list):
                items.append(_shape(value, rule))
        return items
    return node


def pointer_value(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 pointer, or None when the path does not exist."""
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
