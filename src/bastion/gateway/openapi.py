"""OpenAPI documents as the source of a route's input schemas: an operation's request
body, path and query parameters, and its 2xx answers (OpenAPI 3.0 and 3.1; 3.0 schemas
read in 3.1's dialect, ``documents``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.gateway.documents import (
    BUNDLE_OPENAPI,
    bundled,
    openapi_version,
    upgrade_openapi_30,
)
from bastion.gateway.settings import is_json_media_type

# The URI the document is registered under, so schemas can point into it.
OPENAPI = "urn:bastion:openapi"


def load_openapi(path: Path) -> Any:
    document = bundled(path, BUNDLE_OPENAPI)
    if openapi_version(document) == "3.0":
        upgrade_openapi_30(document)
    return document


def _find_operation(document: Any, operation_id: str) -> tuple[str, str, dict[str, Any]]:
    """Path, method and operation object of an ``operationId``, or ``ValueError``."""
    for path, item in (document.get("paths") or {}).items():
        for method, operation in item.items() if isinstance(item, dict) else ():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return path, method, operation
    raise ValueError(f"no operation {operation_id!r} in the OpenAPI document")


def operation_schemas(
    document: Any, operation_id: str
) -> tuple[Any | None, Any | None, Any | None]:
    """Body, query and path schemas of an OpenAPI operation, by ``operationId``."""
    path, method, operation = _find_operation(document, operation_id)
    item = document["paths"][path]
    base = f"{OPENAPI}#/paths/{escape(path)}/{method}"
    body = None
    content = (operation.get("requestBody") or {}).get("content") or {}
    json_types = [t for t in content if is_json_media_type(t.split(";")[0].strip())]
    if content and not json_types:
        raise ValueError(f"operation {operation_id!r} takes no JSON body to validate")
    if json_types:
        pointer = f"{base}/requestBody/content/{escape(json_types[0])}/schema"
        body = {"$ref": pointer}
    params = [*item.get("parameters", []), *operation.get("parameters", [])]
    return (
        body,
        _params_schema(document, params, "query"),
        _params_schema(document, params, "path"),
    )


def answer_schemas(document: Any, operation_id: str) -> tuple[Any, ...]:
    """The JSON schemas of an operation's 2xx answers."""
    _, _, operation = _find_operation(document, operation_id)
    found = []
    for status, answer in (operation.get("responses") or {}).items():
        if isinstance(answer, dict) and "$ref" in answer:
            answer = resolve_local(document, answer["$ref"])
        if not str(status).startswith("2") or not isinstance(answer, dict):
            continue
        for media, described in (answer.get("content") or {}).items():
            if is_json_media_type(media.split(";")[0].strip()) and isinstance(described, dict):
                found.append(described.get("schema"))
    return tuple(found)


def _params_schema(document: Any, params: list[Any], where: str) -> Any | None:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        if isinstance(param, dict) and "$ref" in param:
            param = resolve_local(document, param["$ref"])
        if not isinstance(param, dict) or param.get("in") != where:
            continue
        schema = param.get("schema", {})
        # Inline a top-level reference so text values can be coerced to its type.
        while isinstance(schema, dict) and str(schema.get("$ref", "")).startswith("#/"):
            schema = resolve_local(document, schema["$ref"])
        properties[param["name"]] = schema
        if param.get("required"):
            required.append(param["name"])
    if not properties:
        return None
    combined: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if where == "query":
        combined["additionalProperties"] = False
    return _absolute_refs(combined)


def _absolute_refs(schema: Any) -> Any:
    """Local ``$ref``s of a parameter point into the OpenAPI document it came from."""
    if isinstance(schema, dict):
        return {
            k: f"{OPENAPI}{v}"
            if k == "$ref" and isinstance(v, str) and v.startswith("#")
            else _absolute_refs(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute_refs(v) for v in schema]
    return schema


def resolve_local(document: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported in parameters: {ref}")
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def escape(token: str) -> str:
    """A JSON pointer token (RFC 6901 §3)."""
    return token.replace("~", "~0").replace("/", "~1")
