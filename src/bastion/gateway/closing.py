"""Closing schemas against unknown properties (OWASP API3, mass assignment).

``unevaluatedProperties: false`` (JSON Schema 2020-12 §11.3) is added to every object
schema at an instance location that says nothing about extra properties, and to every
schema a local ``$ref`` points at, wherever it sits in the document. Unlike
``additionalProperties`` it sees the properties that ``allOf``, ``$ref``, ``if``/``then``
and the like evaluate, so composition keeps its meaning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from copy import deepcopy
from typing import Any
from urllib.parse import unquote

# Where a subschema describes the value at a location of the instance. Only there is an
# object closed: inside "not", "if" or "contains" closing would change what the branch
# means (a closed "if" fails, and its "then" is skipped).
_CHILD_SCHEMAS = ("additionalProperties", "unevaluatedProperties", "items")
_CHILD_MAPS = ("properties", "patternProperties", "$defs", "definitions")
# Subschemas that are views of the same instance location as their parent.
_BRANCH_LISTS = ("allOf", "anyOf", "oneOf")
_BRANCH_SCHEMAS = ("then", "else")
# A node that only holds a "$ref" is left open: its target is closed where it is defined,
# and closing both would report every property twice when the target fails.
_COMPOSED = ("properties", "allOf", "anyOf", "oneOf", "dependentSchemas")
_OPEN = ("additionalProperties", "unevaluatedProperties")


def strict(schema: Any, allow_unknown: bool) -> Any:
    """A copy of ``schema`` whose objects refuse properties nothing in them evaluates.

    ``unevaluatedProperties: false`` (JSON Schema 2020-12 §11.3) is added to every object
    schema at an instance location that says nothing about extra properties. Unlike
    ``additionalProperties`` it sees the properties that ``allOf``, ``$ref``, ``if``/
    ``then`` and the like evaluate, so composition keeps its meaning.
    """
    if allow_unknown:
        return schema
    copy = deepcopy(schema)
    stack = [copy]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if any(key in node for key in _COMPOSED) and not any(key in node for key in _OPEN):
            node["unevaluatedProperties"] = False
        stack.extend(_children(node))
        # Each branch of a composition is a view of the same instance location: its
        # nested locations are closed, the branch itself is left to the parent.
        stack.extend(_nested_in_branches(node))
    return copy


def _children(node: dict[str, Any]) -> list[Any]:
    """The subschemas of ``node`` that describe deeper instance locations."""
    found: list[Any] = []
    for key in _CHILD_SCHEMAS:
        if isinstance(node.get(key), dict):
            found.append(node[key])
    for key in _CHILD_MAPS:
        if isinstance(node.get(key), dict):
            found.extend(node[key].values())
    if isinstance(node.get("prefixItems"), list):
        found.extend(node["prefixItems"])
    return found


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [b for key in _BRANCH_LISTS for b in node.get(key) or () if isinstance(b, dict)]
    found += [node[key] for key in _BRANCH_SCHEMAS if isinstance(node.get(key), dict)]
    dependent = node.get("dependentSchemas")
    if isinstance(dependent, dict):
        found += [b for b in dependent.values() if isinstance(b, dict)]
    return found


def _nested_in_branches(node: dict[str, Any]) -> list[Any]:
    """Deeper locations described inside the branches of ``node``, however deeply the
    branches are composed themselves (an ``allOf`` inside a ``oneOf`` branch...)."""
    found: list[Any] = []
    pending = _branches(node)
    seen = 0
    while pending and seen < 10_000:
        branch = pending.pop()
        seen += 1
        found.extend(_children(branch))
        pending.extend(_branches(branch))
    return found


def closed(schema: Any, allow_unknown: bool) -> Any:
    """``schema`` closed, with every schema its references point at."""
    if schema is None or allow_unknown:
        return schema
    return close_ref_targets(strict(schema, allow_unknown=False))


def close_ref_targets(document: Any) -> Any:
    """Close every schema a local ``$ref`` points at, wherever it sits in the document
    (a file brought in by ``bundled`` may hold a map of schemas strict() does not walk)."""
    targets = {
        node["$ref"][1:]
        for node in _ref_nodes(document)
        if node["$ref"].startswith("#/") and node["$ref"] != "#/"
    }
    for pointer in sorted(targets, key=len):
        # The fragment is a URI fragment first (RFC 6901 §6): percent-decoded, then ~-escaped.
        tokens = [unquote(t).replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
        *parents, last = tokens
        holder = document
        with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
            for token in parents:
                holder = holder[int(token)] if isinstance(holder, list) else holder[token]
            key: Any = int(last) if isinstance(holder, list) else last
            if isinstance(holder[key], dict):
                holder[key] = strict(holder[key], allow_unknown=False)
    return document


def _ref_nodes(document: Any) -> Iterator[dict[str, Any]]:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def closed_openapi(document: Any, allow_unknown: bool) -> Any:
    """Close the schemas of an OpenAPI document: components, request bodies, and every
    schema a reference points at."""
    if allow_unknown or not isinstance(document, dict):
        return document
    schemas = (document.get("components") or {}).get("schemas")
    if isinstance(schemas, dict):
        for name, schema in schemas.items():
            schemas[name] = strict(schema, allow_unknown=False)
    for item in (document.get("paths") or {}).values():
        for operation in item.values() if isinstance(item, dict) else ():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            content = body.get("content") if isinstance(body, dict) else None
            for media in content.values() if isinstance(content, dict) else ():
                if isinstance(media, dict) and "schema" in media:
                    media["schema"] = strict(media["schema"], allow_unknown=False)
    return close_ref_targets(document)
