"""OpenAPI 3.1 documents for Bastion's own JSON APIs, made from the models they use.

An API declares each operation once (``Operation``): the pydantic model its handler
validates the request body with, and every answer it gives with the model of that
answer's body. The handlers validate and answer through the same models, and the
document is generated from the declarations, so the two cannot drift apart; the test
suite runs schemathesis against a served app to hold both to it.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic generates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.web.problems import PROBLEM_JSON

OPENAPI_VERSION = "3.1.1"
_PATH_PARAMETER = re.compile(r"\{([a-z_]+)\}")


class Problem(BaseModel):
    """RFC 9457 problem details; ``correlation_id`` names the request in Bastion's logs."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    detail: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """One status an operation answers with; ``model`` describes its body, if any."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    # Header name -> description, for headers the client needs (WWW-Authenticate, ...).
    headers: Mapping[str, str] = field(default_factory=dict)


def problem(description: str, headers: Mapping[str, str] | None = None) -> Answer:
    """An answer whose body is problem details."""
    return Answer(description, Problem, PROBLEM_JSON, headers or {})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    answers: Mapping[int, Answer]
    body: type[BaseModel] | None = None
    description: str = ""
    # Security schemes of which any one authorizes the call; ``anonymous`` adds the
    # empty requirement (the call may also be made without them).
    security: Sequence[str] = ()
    anonymous: bool = False
    parameters: Mapping[str, str] = field(default_factory=dict)  # path parameter -> text
    # The query parameters, as the fields of a model of simple types (the handler
    # validates the query string with it).
    query: type[BaseModel] | None = None


@dataclass(frozen=True)
class Api:
    title: str
    version: str
    description: str
    operations: Sequence[Operation]
    security_schemes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


References = Mapping[tuple[Any, JsonSchemaMode], Any]


def _schemas(operations: Sequence[Operation]) -> tuple[References, dict[str, Any]]:
    """References to each model's schema, and the schemas themselves (components)."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
    for operation in operations:
        if operation.body is not None:
            wanted[(operation.body, "validation")] = None
        for answer in operation.answers.values():
            if answer.model is not None:
                wanted[(answer.model, "serialization")] = None
    references, top = models_json_schema(list(wanted), ref_template="#/components/schemas/{model}")
    return references, dict(top.get("$defs", {}))


def _operation(operation: Operation, references: References) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in sorted(operation.answers.items()):
        response: dict[str, Any] = {"description": answer.description}
        if answer.model is not None:
            schema = references[(answer.model, "serialization")]
            response["content"] = {answer.media_type: {"schema": schema}}
        if answer.headers:
            response["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in answer.headers.items()
            }
        responses[str(status)] = response
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "responses": responses,
    }
    if operation.description:
        document["description"] = operation.description
    names = _PATH_PARAMETER.findall(operation.path)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": operation.parameters.get(name, ""),
            "schema": {"type": "string"},
        }
        for name in names
    ]
    if operation.query is not None:
        parameters += _query_parameters(operation.query)
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        schema = references[(operation.body, "validation")]
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    if operation.security:
        document["security"] = [{name: []} for name in operation.security] + (
            [{}] if operation.anonymous else []
        )
    return document


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    properties = model.model_json_schema()["properties"]
    parameters = []
    for name, info in model.model_fields.items():
        schema = {k: v for k, v in properties[name].items() if k not in ("title", "description")}
        # A query parameter is absent or a string, never null: ``X | None`` is just X.
        variants = [v for v in schema.pop("anyOf", []) if v != {"type": "null"}]
        if len(variants) == 1:
            schema |= variants[0]
        elif variants:
            schema["anyOf"] = variants
        if schema.get("default", 0) is None:
            del schema["default"]
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": info.is_required(),
                "description": info.description or "",
                "schema": schema,
            }
        )
    return parameters


def document(api: Api, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``api`` served at ``server_url``."""
    references, schemas = _schemas(api.operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in api.operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, references
        )
    components: dict[str, Any] = {"schemas": schemas}
    if api.security_schemes:
        components["securitySchemes"] = {k: dict(v) for k, v in api.security_schemes.items()}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": api.title, "version": api.version, "description": api.description},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": components,
    }


async def _serve(body: bytes, _request: Request) -> Response:
    return Response(
        body, media_type="application/json", headers={"cache-control": "public, max-age=300"}
    )


def document_route(path: str, api: Api, server_url: str) -> Route:
    """A route serving the document of ``api``; it is made once, when routes are built."""
    body = orjson.dumps(document(api, server_url))
    return Route(path, partial(_serve, body), methods=["GET"])


BEARER = {"type": "http", "scheme": "bearer"}
