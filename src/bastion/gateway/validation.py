"""Input validation: JSON Schema 2020-12 for body, path and query, compiled once per route.

- Unknown properties are refused (OWASP API3, mass assignment): schemas are closed
  (``closing``) unless the route sets ``allow_unknown_properties``; an OpenAPI
  operation's schemas come from ``openapi``.
- The body must have a declared content type (415), parse as JSON and stay within a
  nesting depth and array length (400) before the schema even runs.
- Errors name JSON pointers (RFC 6901) and the rule that failed, never the value sent:
  a hostile value must not come back in the answer. A key the caller invented is named
  only when it is a plain identifier.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bastion.errors import InvalidInput, UnsupportedMediaType
from bastion.gateway.closing import closed, closed_openapi
from bastion.gateway.documents import BUNDLE_SCHEMA, bundled
from bastion.gateway.identifiers import IdForm, dereferenced, form_of, schema_at
from bastion.gateway.openapi import (
    OPENAPI,
    answer_schemas,
    escape,
    load_openapi,
    operation_schemas,
    resolve_local,
)
from bastion.gateway.settings import InputSettings

MAX_ERRORS = 20
MAX_QUERY_FIELDS = 64
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class InputRules:
    body: Draft202012Validator | None
    query: Draft202012Validator | None
    path: Draft202012Validator | None
    content_types: tuple[str, ...]
    max_depth: int
    max_array_items: int
    # The OpenAPI document the schemas come from, if any (to name properties in errors).
    openapi: dict[str, Any] | None = None
    # The operation's 2xx answer schemas (to check where a create's id is found).
    answers: tuple[Any, ...] = ()

    @classmethod
    def compile(cls, settings: InputSettings) -> InputRules:
        """Raises ``ValueError`` for an invalid schema or an unknown OpenAPI operation."""
        registry: Registry[Any] = Registry()
        document = None
        if settings.openapi is not None and settings.operation is not None:
            document = closed_openapi(
                load_openapi(settings.openapi), settings.allow_unknown_properties
            )
            registry = registry.with_resource(
                OPENAPI, Resource.from_contents(document, default_specification=DRAFT202012)
            )
            body, query, path = operation_schemas(document, settings.operation)
        else:
            body, query, path = (
                closed(
                    inline if file is None else bundled(file, BUNDLE_SCHEMA),
                    settings.allow_unknown_properties,
                )
                for inline, file in (
                    (settings.body, settings.body_file),
                    (settings.query, settings.query_file),
                    (settings.path, settings.path_file),
                )
            )
        return cls(
            body=_validator(body, registry),
            query=_validator(query, registry),
            path=_validator(path, registry),
            content_types=tuple(t.lower() for t in settings.content_types),
            max_depth=settings.max_depth,
            max_array_items=settings.max_array_items,
            openapi=document,
            answers=()
            if document is None or settings.operation is None
            else answer_schemas(document, settings.operation),
        )

    def check_body(self, content_type: str | None, raw: bytes) -> Any:
        """The parsed body, or a 415/400 problem.

        A route with input rules but no body schema takes no body: forwarding one
        unchecked would reopen mass assignment.
        """
        if self.body is None:
            if raw:
                raise InvalidInput("This request takes no body.")
            return None
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in self.content_types:
            raise UnsupportedMediaType(f"The body must be one of: {', '.join(self.content_types)}.")
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidInput("The body is not valid JSON.") from None
        if (problem := self._shape_problem(document)) is not None:
            raise InvalidInput(problem)
        _raise_errors(self.body, document, self.openapi)
        return document

    def check_params(self, path: Mapping[str, str], query: Mapping[str, str | list[str]]) -> None:
        if self.path is not None:
            _raise_errors(self.path, _coerced(self.path.schema, path), self.openapi)
        if self.query is not None:
            _raise_errors(self.query, _coerced(self.query.schema, query), self.openapi)

    def param_form(self, where: str, name: str) -> IdForm:
        """The id form a path or query parameter is declared with (``auto`` if none)."""
        validator = self.path if where == "path" else self.query
        if validator is None or not isinstance(validator.schema, dict):
            return IdForm.AUTO
        properties = validator.schema.get("properties")
        declared = properties.get(name) if isinstance(properties, dict) else None
        return form_of(dereferenced(declared, self._resolver(validator.schema)))

    def body_form(self, pointer: str) -> IdForm:
        """The id form the body schema declares at ``pointer`` (``auto`` if none)."""
        if self.body is None:
            return IdForm.AUTO
        return form_of(schema_at(self.body.schema, pointer, self._resolver(self.body.schema)))

    def declares_body(self, pointer: str) -> bool:
        """Whether the body schema describes a value at ``pointer``."""
        if self.body is None:
            return False
        found = schema_at(self.body.schema, pointer, self._resolver(self.body.schema))
        return found is not None

    def answer_declares(self, pointer: str) -> bool:
        """Whether one of the OpenAPI operation's 2xx answers describes ``pointer``
        (true when there is no OpenAPI operation to tell)."""
        if self.openapi is None:
            return True
        resolve = self._resolver(self.openapi)
        return any(schema_at(schema, pointer, resolve) is not None for schema in self.answers)

    def _resolver(self, root: Any) -> Callable[[str], object]:
        # In an OpenAPI document, local references point into the document itself.
        documents = {"": root if self.openapi is None else self.openapi, OPENAPI: self.openapi}

        def resolve(ref: str) -> object:
            base, _, fragment = ref.partition("#")
            document = documents.get(base)
            if document is None or not fragment.startswith("/"):
                return None
            try:
                return resolve_local(document, "#" + fragment)
            except (KeyError, IndexError, TypeError):
                return None

        return resolve

    def _shape_problem(self, document: Any) -> str | None:
        stack: list[tuple[Any, int]] = [(document, 1)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, dict | list):
                if depth > self.max_depth:
                    return f"The body is nested deeper than {self.max_depth} levels."
                if isinstance(node, list) and len(node) > self.max_array_items:
                    return f"An array in the body has more than {self.max_array_items} items."
                children = node.values() if isinstance(node, dict) else node
                stack.extend((child, depth + 1) for child in children)
        return None


def parse_query(query: bytes) -> dict[str, str | list[str]]:
    """Query parameters; a repeated name becomes a list. Malformed input is a 400."""
    try:
        pairs = (
            parse_qsl(
                query.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                errors="strict",
                max_num_fields=MAX_QUERY_FIELDS,
            )
            if query
            else []
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The query string is malformed or has too many parameters.") from None
    values: dict[str, str | list[str]] = {}
    for name, value in pairs:
        current = values.get(name)
        if current is None:
            values[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            values[name] = [current, value]
    return values


def _validator(schema: Any, registry: Registry[Any]) -> Draft202012Validator | None:
    if schema is None:
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _coerced(schema: Any, values: Mapping[str, str | list[str]]) -> dict[str, Any]:
    """Path and query values are text; convert those the schema types as numbers/booleans."""
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    out: dict[str, Any] = {}
    for name, value in values.items():
        declared = properties.get(name) if isinstance(properties, dict) else None
        wanted = declared.get("type") if isinstance(declared, dict) else None
        out[name] = _coerce(value, wanted)
    return out


def _coerce(value: str | list[str], wanted: object) -> Any:
    if isinstance(value, list):
        return [_coerce(v, wanted) for v in value]
    try:
        if wanted == "integer" and re.fullmatch(r"-?[0-9]{1,40}", value):
            return int(value)
        if wanted == "number" and re.fullmatch(r"-?[0-9]{1,30}(\.[0-9]{1,30})?", value):
            return float(value)
    except ValueError:
        return value
    if wanted == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _raise_errors(
    validator: Draft202012Validator, instance: Any, openapi: Mapping[str, Any] | None
) -> None:
    # Local references resolve in the OpenAPI document, or else in the schema itself.
    root = validator.schema if openapi is None else openapi
    documents = {"": root, OPENAPI: openapi}
    errors = list(_describe(validator, instance, documents))
    if errors:
        raise InvalidInput(
            "The request does not match the expected input.", extensions={"errors": errors}
        )


def _describe(
    validator: Draft202012Validator, instance: Any, documents: Mapping[str, Any]
) -> Iterator[dict[str, str]]:
    seen = 0
    for error in validator.iter_errors(instance):
        for pointer, detail in _explain(error, documents):
            yield {"pointer": pointer, "detail": detail}
            seen += 1
            if seen >= MAX_ERRORS:
                return


def _declared(schema: Any, documents: Mapping[str, Any], depth: int) -> set[str]:
    """Property names a schema declares, through composition and local references."""
    if not isinstance(schema, dict) or depth > 16:
        return set()
    names = set(schema.get("properties") or {})
    branches: list[Any] = []
    for key in ("allOf", "anyOf", "oneOf"):
        branches.extend(schema.get(key) or ())
    branches.extend(schema.get(key) for key in ("if", "then", "else"))
    branches.extend((schema.get("dependentSchemas") or {}).values())
    ref = schema.get("$ref")
    if isinstance(ref, str):
        base, _, fragment = ref.partition("#")
        document = documents.get(base)
        if document is not None and fragment.startswith("/"):
            with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
                branches.append(resolve_local(document, "#" + fragment))
    for branch in branches:
        names |= _declared(branch, documents, depth + 1)
    return names


def _explain(error: ValidationError, documents: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    where = _pointer(error.absolute_path)
    keyword, expected = error.validator, error.validator_value
    if keyword == "required" and isinstance(error.instance, dict):
        for name in expected:
            if name not in error.instance:
                yield f"{where}/{escape(str(name))}", "is required"
    elif keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(
        error.instance, dict
    ):
        declared = _declared(error.schema, documents, 0)
        for name in error.instance:
            if name not in declared:
                yield _child(where, name), "is not an allowed property"
    elif keyword == "type":
        yield where, f"must be of type {_listing(expected)}"
    elif keyword in ("enum", "const"):
        yield where, "must be one of the allowed values"
    elif keyword in _LIMITS:
        yield where, f"{_LIMITS[str(keyword)]} {expected}"
    elif keyword == "format":
        yield where, f"must be a valid {expected}"
    else:
        yield where, f"does not satisfy the {keyword!s} rule"


_LIMITS = {
    "minLength": "must have at least this many characters:",
    "maxLength": "must have at most this many characters:",
    "minimum": "must be at least",
    "maximum": "must be at most",
    "exclusiveMinimum": "must be greater than",
    "exclusiveMaximum": "must be less than",
    "minItems": "must have at least this many items:",
    "maxItems": "must have at most this many items:",
    "minProperties": "must have at least this many properties:",
    "maxProperties": "must have at most this many properties:",
    "multipleOf": "must be a multiple of",
}


def _listing(expected: object) -> str:
    return " or ".join(map(str, expected)) if isinstance(expected, list) else str(expected)


def _child(where: str, name: object) -> str:
    # A key the caller made up is echoed only when it is a plain identifier.
    return f"{where}/{name}" if isinstance(name, str) and _SAFE_KEY.match(name) else where


def _pointer(path: Any) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"/{part}"
        elif _SAFE_KEY.match(str(part)):
            out += f"/{escape(str(part))}"
        else:
            break  # stop at the first segment we would not repeat back
    return out
