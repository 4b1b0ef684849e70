"""Object ids in one spelling, before anything compares, records or forwards them.

An upstream that reads ``01`` as ``1``, or ``A0EE...`` as ``a0ee...``, would otherwise
act on an object whose owner the gateway looked up under another spelling (OWASP API1,
BOLA). So every id that takes part in an object-level rule, and every path parameter
with a declared type, is brought to its canonical form first; the registry, the claim
comparison and the upstream path all see that form only.

Forms, from the parameter's JSON Schema (or an OpenAPI parameter):

- ``integer`` (``type: integer``): ASCII digits with an optional sign, written back in
  decimal without ``+`` and without leading zeros;
- ``uuid`` (``type: string, format: uuid``): any spelling the usual parsers accept
  (hyphens or none, braces, ``urn:uuid:``, any case), written lower-case with hyphens
  (RFC 9562 §4: "output as lower case ... case insensitive on input");
- ``string`` (any other ``type: string``): as sent, its schema decides what is valid;
- ``auto`` (no type declared): ASCII digits are read as an integer and a hyphenated,
  braced or ``urn:uuid:`` UUID as a UUID; a value some parser would read as a number
  although it is not plain ASCII digits (``0_1``, Arabic-Indic or fullwidth digits) is
  refused; anything else is kept as sent.

In every form, an id is refused when it is empty, longer than ``MAX_ID_LENGTH``, or
has surrounding white space or control characters. ``canonical`` answers ``None`` for
a value that is not an id of its form.

The ownership registry goes one step further (``registry_key``): text ids are folded
(Unicode NFKC, then case-folded, and a bare 32-digit hex UUID hyphenated), because
upstreams often compare text case-insensitively (MySQL's and SQL Server's default
collations, ``COLLATE NOCASE``). Two users can then never own ``WVW123`` and
``wvw123``; the upstream still receives the id as sent.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

_INTEGER = re.compile(r"[+-]?[0-9]+")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Text some parser (Python's int(), JavaScript's Number() after NFKC) reads as a number.
_NUMBER_LIKE = re.compile(r"[+-]?[0-9][0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The ownership registry's column width; longer ids are never recorded or forwarded.
MAX_ID_LENGTH = 256
# Longer integers are not ids any upstream stores, and int() on huge text costs time.
MAX_INTEGER_DIGITS = 40


class IdForm(Enum):
    INTEGER = "integer"
    UUID = "uuid"
    STRING = "string"
    AUTO = "auto"


# Ids recur request after request (a caller's own id on every call): a bounded cache
# spares the Unicode folding below, and an attacker cycling ids only makes it miss.
@functools.lru_cache(maxsize=4096)
def canonical(value: str, form: IdForm) -> str | None:
    """The one spelling of ``value`` as an id of ``form``, or ``None``."""
    if not value or len(value) > MAX_ID_LENGTH or value != value.strip():
        return None
    if _CONTROL.search(value):
        return None
    if form is IdForm.STRING:
        return value
    if form is IdForm.INTEGER:
        return _integer(value)
    if form is IdForm.UUID:
        return _uuid(value)
    if _INTEGER.fullmatch(value):
        return _integer(value)
    if _number_like(value):
        return None
    if _UUID.fullmatch(value) or value[:1] == "{" or value[:9].lower() == "urn:uuid:":
        return _uuid(value)
    return value


def registry_key(value: str, form: IdForm) -> str:
    """The key a canonical id has in the ownership registry (see the module docstring)."""
    if form in (IdForm.INTEGER, IdForm.UUID):
        return value
    if form is IdForm.AUTO and _HEX32.fullmatch(value):
        return _uuid(value) or value
    return unicodedata.normalize("NFKC", value).casefold()


def _number_like(value: str) -> bool:
    folded = unicodedata.normalize("NFKC", value)
    digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in folded)
    return bool(_NUMBER_LIKE.fullmatch(digits))


def canonical_json(value: Any, form: IdForm) -> str | None:
    """An id found in a JSON document: a string, or an integer (never a boolean, a
    fraction or a structure that would stringify into a match)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if form is IdForm.UUID else str(value)
    if isinstance(value, str):
        return canonical(value, form)
    return None


def json_value(text: str, form: IdForm) -> str | int:
    """How a canonical id is written into a JSON body: a number for integer ids."""
    return int(text) if form is IdForm.INTEGER else text


def _integer(value: str) -> str | None:
    if len(value) > MAX_INTEGER_DIGITS + 1 or not _INTEGER.fullmatch(value):
        return None
    return str(int(value))


def _uuid(value: str) -> str | None:
    text = value
    if text[:9].lower() == "urn:uuid:":
        text = text[9:]
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if text.startswith("-") or text.endswith("-") or "--" in text:
        return None
    digits = text.replace("-", "")
    if not _HEX32.fullmatch(digits):
        return None
    low = digits.lower()
    return f"{low[:8]}-{low[8:12]}-{low[12:16]}-{low[16:20]}-{low[20:]}"


def form_of(schema: object) -> IdForm:
    """The form a JSON Schema (or OpenAPI 3.0 schema) gives a value."""
    if not isinstance(schema, Mapping):
        return IdForm.AUTO
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "integer":
        return IdForm.INTEGER
    if kind == "string":
        return IdForm.UUID if schema.get("format") == "uuid" else IdForm.STRING
    return IdForm.AUTO


def schema_at(
    schema: object, pointer: str, resolve: Callable[[str], object] | None = None
) -> object:
    """The subschema describing the value at ``pointer`` (RFC 6901), following
    ``properties``, ``items``, ``allOf`` and local ``$ref``; ``None`` when not declared."""
    node: object = schema
    tokens = [] if pointer == "" else pointer[1:].split("/")
    for raw in tokens:
        token = raw.replace("~1", "/").replace("~0", "~")
        node = _child(dereferenced(node, resolve), token, resolve)
        if node is None:
            return None
    return dereferenced(node, resolve)


def dereferenced(node: object, resolve: Callable[[str], object] | None) -> object:
    """``node`` with its ``$ref`` chain followed (``None`` when a reference is unknown)."""
    for _ in range(16):  # a chain longer than this is a loop
        if not isinstance(node, Mapping) or not isinstance(node.get("$ref"), str):
            return node
        if resolve is None:
            return None
        node = resolve(node["$ref"])
    return None


def _child(node: object, token: str, resolve: Callable[[str], object] | None) -> object:
    if not isinstance(node, Mapping):
        return None
    properties = node.get("properties")
    if isinstance(properties, Mapping) and token in properties:
        return properties[token]
    if token.isdigit() and isinstance(node.get("items"), Mapping):
        return node["items"]
    for branch in node.get("allOf") or ():
        found = _child(dereferenced(branch, resolve), token, resolve)
        if found is not None:
            return found
    return None
