"""Input rules: JSON Schema 2020-12, OpenAPI 3.1 operations, limits, safe error messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import InvalidInput, UnsupportedMediaType
from bastion.gateway.closing import strict
from bastion.gateway.settings import InputSettings
from bastion.gateway.validation import InputRules, parse_query

SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "maxLength": 5},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"n": {}}}},
    },
}


def _errors(rules: InputRules, body: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        rules.check_body("application/json", orjson.dumps(body))
    return list(caught.value.extensions.get("errors", []))


def test_strict_refuses_unknown_properties_at_every_level() -> None:
    rules = InputRules.compile(InputSettings(body=SCHEMA))
    assert rules.check_body("application/json; charset=utf-8", b'{"title": "a"}') == {"title": "a"}
    errors = _errors(rules, {"title": "a", "admin": True, "tags": [{"n": 1, "x": 2}]})
    assert {"pointer": "/admin", "detail": "is not an allowed property"} in errors
    assert {"pointer": "/tags/0/x", "detail": "is not an allowed property"} in errors


def test_explicit_additional_properties_are_respected() -> None:
    schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": True}
    assert strict(schema, allow_unknown=False) == schema
    loose = InputRules.compile(InputSettings(body=SCHEMA, allow_unknown_properties=True))
    assert loose.check_body("application/json", b'{"title": "a", "extra": 1}')


def test_missing_and_wrong_fields_are_pointed_at() -> None:
    rules = InputRules.compile(InputSettings(body=SCHEMA))
    assert _errors(rules, {}) == [{"pointer": "/title", "detail": "is required"}]
    assert _errors(rules, {"title": 5}) == [
        {"pointer": "/title", "detail": "must be of type string"}
    ]


def test_limits_before_the_schema() -> None:
    rules = InputRules.compile(InputSettings(body={"type": "array"}, max_array_items=3))
    with pytest.raises(InvalidInput, match="more than 3 items"):
        rules.check_body("application/json", b"[1,2,3,4]")
    deep = InputRules.compile(InputSettings(body={}, max_depth=2))
    with pytest.raises(InvalidInput, match="nested deeper"):
        deep.check_body("application/json", b'{"a": {"b": {}}}')
    with pytest.raises(UnsupportedMediaType):
        rules.check_body("application/x-www-form-urlencoded", b"a=b")
    with pytest.raises(UnsupportedMediaType):
        rules.check_body(None, b"[]")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        rules.check_body("application/json", b"")


def test_query_and_path_values_are_coerced_to_schema_types() -> None:
    rules = InputRules.compile(
        InputSettings(
            query={
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "maximum": 50},
                    "all": {"type": "boolean"},
                },
            },
            path={"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}},
        )
    )
    rules.check_params({"id": "3"}, {"limit": "10", "all": "true"})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "0"}, {})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "x"}, {})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "1"}, {"limit": "51"})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "1"}, {"unknown": "1"})


def test_openapi_operation(tmp_path: Path) -> None:
    document = {
        "openapi": "3.1.0",
        "paths": {
            "/notes/{id}": {
                "parameters": [{"$ref": "#/components/parameters/Id"}],
                "put": {
                    "operationId": "replaceNote",
                    "parameters": [{"name": "dry", "in": "query", "schema": {"type": "boolean"}}],
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Note"}}
                        }
                    },
                },
            }
        },
        "components": {
            "parameters": {
                "Id": {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"$ref": "#/components/schemas/Id"},
                }
            },
            "schemas": {
                "Id": {"type": "integer"},
                "Note": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}},
                },
            },
        },
    }
    path = tmp_path / "openapi.json"
    path.write_bytes(orjson.dumps(document))
    rules = InputRules.compile(InputSettings(openapi=path, operation="replaceNote"))
    assert rules.check_body("application/json", b'{"text": "hi"}') == {"text": "hi"}
    assert _errors(rules, {"text": "hi", "owner": "x"}) == [
        {"pointer": "/owner", "detail": "is not an allowed property"}
    ]
    rules.check_params({"id": "4"}, {"dry": "true"})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "four"}, {})
    with pytest.raises(InvalidInput):
        rules.check_params({"id": "4"}, {"other": "1"})
    with pytest.raises(ValueError, match="no operation"):
        InputRules.compile(InputSettings(openapi=path, operation="nope"))


def test_invalid_schema_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        InputRules.compile(InputSettings(body={"type": "not-a-type"}))


def test_query_parsing() -> None:
    assert parse_query(b"a=1&a=2&b=") == {"a": ["1", "2"], "b": ""}
    with pytest.raises(InvalidInput):
        parse_query(b"&".join(b"k%d=v" % i for i in range(100)))
    with pytest.raises(InvalidInput):
        parse_query(b"a=%ff")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_errors_never_echo_the_input(document: Any) -> None:
    """Fuzz invariant: validation either accepts or raises InvalidInput whose answer
    repeats no string value from the input (keys only when plain identifiers)."""
    rules = InputRules.compile(InputSettings(body=SCHEMA, max_depth=4))
    try:
        rules.check_body("application/json", orjson.dumps(document))
    except InvalidInput as exc:
        answer = orjson.dumps({"detail": exc.detail, **exc.extensions}).decode()
        for value in _strings(document):
            if len(value) >= 4 and not value.isalnum():
                assert value not in answer


def _strings(node: Any) -> list[str]:
    """String values, and keys that are not plain identifiers (those may be named)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        unsafe = [k for k in node if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", k)]
        return unsafe + [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def test_closing_objects_keeps_conditional_rules() -> None:
    """JSON Schema 2020-12 §10.2.2: closing the "if" branch would make it fail and skip
    its "then" (an admin request without approval would pass)."""
    schema = {
        "type": "object",
        "properties": {"kind": {}, "note": {}, "approval": {}},
        "if": {"properties": {"kind": {"const": "admin"}}},
        "then": {"required": ["approval"]},
    }
    rules = InputRules.compile(InputSettings(body=schema))
    assert _errors(rules, {"kind": "admin", "note": "x"}) == [
        {"pointer": "/approval", "detail": "is required"}
    ]
    assert rules.check_body("application/json", b'{"kind": "admin", "approval": 1}')
    assert _errors(rules, {"kind": "user", "extra": 1}) == [
        {"pointer": "/extra", "detail": "is not an allowed property"}
    ]


def test_composition_is_closed_as_a_whole() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"properties": {"b": {"type": "object", "properties": {"c": {}}}}},
        ]
    }
    rules = InputRules.compile(InputSettings(body=schema))
    assert rules.check_body("application/json", b'{"a": 1, "b": {"c": 2}}')
    assert _errors(rules, {"a": 1, "z": 0}) == [
        {"pointer": "/z", "detail": "is not an allowed property"}
    ]
    assert _errors(rules, {"b": {"c": 1, "d": 2}}) == [
        {"pointer": "/b/d", "detail": "is not an allowed property"}
    ]


def test_rules_without_a_body_schema_take_no_body() -> None:
    rules = InputRules.compile(InputSettings(query={"type": "object", "properties": {}}))
    assert rules.check_body("application/json", b"") is None
    with pytest.raises(InvalidInput, match="takes no body"):
        rules.check_body("text/x-anything", b'{"admin": true}')


def test_openapi_json_media_types(tmp_path: Path) -> None:
    """RFC 6839 §3.1: +json types are JSON; a body of another type cannot be validated."""
    patch = {
        "openapi": "3.1.0",
        "paths": {
            "/me": {
                "patch": {
                    "operationId": "patchMe",
                    "requestBody": {
                        "content": {
                            "application/merge-patch+json": {
                                "schema": {"type": "object", "properties": {"name": {}}}
                            }
                        }
                    },
                },
                "put": {
                    "operationId": "upload",
                    "requestBody": {"content": {"image/png": {}}},
                },
            }
        },
    }
    path = tmp_path / "openapi.json"
    path.write_bytes(orjson.dumps(patch))
    rules = InputRules.compile(
        InputSettings(
            openapi=path,
            operation="patchMe",
            content_types=("application/merge-patch+json",),
        )
    )
    with pytest.raises(InvalidInput):
        rules.check_body("application/merge-patch+json", b'{"name": "x", "admin": true}')
    with pytest.raises(UnsupportedMediaType):
        rules.check_body("text/plain", b'{"name": "x"}')
    with pytest.raises(ValueError, match="no JSON body"):
        InputRules.compile(InputSettings(openapi=path, operation="upload"))
    with pytest.raises(ValueError, match="JSON media types"):
        InputSettings(body={}, content_types=("text/plain",))


def test_formats_are_enforced_and_digits_are_ascii() -> None:
    rules = InputRules.compile(
        InputSettings(
            body={"type": "object", "properties": {"email": {"format": "email"}}},
            path={"type": "object", "properties": {"id": {"type": "integer"}}},
        )
    )
    assert _errors(rules, {"email": "not-an-address"}) == [
        {"pointer": "/email", "detail": "must be a valid email"}
    ]
    for digits in ("\u0663", "\uff11\uff12", "1_000"):
        with pytest.raises(InvalidInput):
            rules.check_params({"id": digits}, {})
