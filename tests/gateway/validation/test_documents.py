"""Schemas as real services ship them: OpenAPI 3.0 in YAML, split across files, and
schema files for body, query and path (OWASP API3: unknown properties still refused
in every file a reference reaches)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.clock import FixedClock
from bastion.errors import InvalidInput
from bastion.gateway.documents import bundled, load_document
from bastion.gateway.identifiers import IdForm
from bastion.gateway.settings import InputSettings
from bastion.gateway.validation import InputRules
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.recorder import Answer, Recorder

SPEC_30 = """
openapi: 3.0.3
info: {title: notes, version: "1"}
paths:
  /notes/{noteId}:
    parameters:
      - $ref: "#/components/parameters/NoteId"
    put:
      operationId: replaceNote
      requestBody:
        content:
          application/json:
            schema:
              $ref: "schemas/note.yaml#/Note"
      responses:
        "200":
          description: the note
          content:
            application/json:
              schema: {$ref: "schemas/note.yaml#/Note"}
  /notes:
    get:
      operationId: listNotes
      parameters:
        - name: since
          in: query
          schema: {type: string, format: date}
        - name: limit
          in: query
          schema: {type: integer, minimum: 0, exclusiveMinimum: true, maximum: 50}
      responses:
        "200": {description: notes}
components:
  parameters:
    NoteId:
      name: noteId
      in: path
      required: true
      schema: {type: integer}
"""

NOTE_SCHEMAS = """
Note:
  type: object
  required: [title]
  properties:
    title: {type: string, maxLength: 20}
    due: {type: string, nullable: true, format: date}
    author:
      $ref: "#/Person"
      description: ignored beside a $ref in OpenAPI 3.0
    created: {type: string, enum: [2024-01-01]}
Person:
  type: object
  properties:
    name: {type: string}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "note.yaml").write_text(NOTE_SCHEMAS, encoding="utf-8")
    path = tmp_path / "openapi.yaml"
    path.write_text(SPEC_30, encoding="utf-8")
    return path


def _errors(rules: InputRules, body: bytes) -> list[dict[str, str]]:
    with pytest.raises(InvalidInput) as caught:
        rules.check_body("application/json", body)
    errors: list[dict[str, str]] = caught.value.extensions["errors"]
    return errors


def test_openapi_30_yaml_split_across_files(spec: Path) -> None:
    rules = InputRules.compile(InputSettings(openapi=spec, operation="replaceNote"))
    rules.check_body("application/json", b'{"title": "a", "due": null, "author": {"name": "x"}}')
    # nullable: true (3.0) is type [string, null] (3.1); YAML's dates stay strings.
    rules.check_body("application/json", b'{"title": "a", "due": "2025-02-03"}')
    rules.check_body("application/json", b'{"title": "a", "created": "2024-01-01"}')
    # Unknown properties are refused in schemas reached through another file, too.
    assert {"pointer": "/role", "detail": "is not an allowed property"} in _errors(
        rules, b'{"title": "a", "role": "admin"}'
    )
    assert any(
        e["pointer"] == "/author/admin"
        for e in _errors(rules, b'{"title": "a", "author": {"admin": true}}')
    )
    assert _errors(rules, b'{"title": "' + b"x" * 21 + b'"}')
    # The path parameter comes from a shared parameter: an integer id, canonicalised.
    assert rules.param_form("path", "noteId") is IdForm.INTEGER
    assert rules.answer_declares("/title")
    assert not rules.answer_declares("/id")


def test_openapi_30_exclusive_bounds(spec: Path) -> None:
    """OpenAPI 3.0 says ``exclusiveMinimum: true`` beside ``minimum``; 2020-12 says the
    bound itself. Left as it was, 0 would pass."""
    rules = InputRules.compile(InputSettings(openapi=spec, operation="listNotes"))
    rules.check_params({}, {"limit": "1", "since": "2025-01-01"})
    with pytest.raises(InvalidInput):
        rules.check_params({}, {"limit": "0"})
    with pytest.raises(InvalidInput):
        rules.check_params({}, {"limit": "51"})


def test_schema_files_for_body_query_and_path(tmp_path: Path) -> None:
    (tmp_path / "body.yaml").write_text(
        "type: object\nproperties:\n  owner: {$ref: 'common.json#/$defs/id'}\n", encoding="utf-8"
    )
    (tmp_path / "common.json").write_text(
        '{"$defs": {"id": {"type": "string", "format": "uuid"}}}', encoding="utf-8"
    )
    (tmp_path / "query.json").write_text(
        '{"type": "object", "properties": {"q": {"type": "string", "maxLength": 3}}}',
        encoding="utf-8",
    )
    (tmp_path / "path.yml").write_text(
        "type: object\nproperties: {note_id: {type: integer}}\n", encoding="utf-8"
    )
    rules = InputRules.compile(
        InputSettings(
            body_file=tmp_path / "body.yaml",
            query_file=tmp_path / "query.json",
            path_file=tmp_path / "path.yml",
        )
    )
    assert rules.body_form("/owner") is IdForm.UUID
    assert rules.param_form("path", "note_id") is IdForm.INTEGER
    with pytest.raises(InvalidInput):
        rules.check_params({"note_id": "x"}, {})
    with pytest.raises(InvalidInput):
        rules.check_params({}, {"q": "long", "extra": "1"})
    assert _errors(rules, b'{"owner": "not-a-uuid"}')
    assert _errors(rules, b'{"other": 1}')


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "swagger: '2.0'\npaths: {}\n", "Swagger 2.0"),
        ("a.yaml", "paths: {}\n", "not an OpenAPI 3.0 or 3.1"),
        ("a.yaml", "openapi: 3.0.0\nx: {$ref: 'https://example.com/s.json'}\n", "local files"),
        ("a.yaml", "openapi: 3.0.0\nx: {$ref: 'missing.yaml'}\n", "not a readable"),
        ("a.yaml", "openapi: 3.0.0\nx: !!binary aGk=\n", "not JSON data"),
        ("a.yaml", "openapi: 3.0.0\n1: x\n", "keys must be strings"),
        ("a.yaml", "openapi: 3.0.0\nx: .nan\n", "finite"),
        ("a.yaml", "openapi: [unclosed\n", "not a readable"),
    ],
)
def test_documents_that_are_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        InputRules.compile(InputSettings(openapi=path, operation="op"))


def test_bundling_keeps_references_inside_each_file(tmp_path: Path) -> None:
    """A file's own "#/..." references keep pointing into that file once bundled, and
    a cycle of files is brought in once."""
    (tmp_path / "a.json").write_text(
        '{"properties": {"b": {"$ref": "b.json"}}, "$defs": {"x": {"type": "string"}}}',
        encoding="utf-8",
    )
    (tmp_path / "b.json").write_text(
        '{"properties": {"a": {"$ref": "a.json"}, "y": {"$ref": "#/$defs/y"}},'
        ' "$defs": {"y": {"type": "integer"}}}',
        encoding="utf-8",
    )
    document: Any = bundled(tmp_path / "a.json", "$defs")
    assert document["properties"]["b"] == {"$ref": "#/$defs/file1"}
    b = document["$defs"]["file1"]
    assert b["properties"]["a"] == {"$ref": "#"}
    assert b["properties"]["y"] == {"$ref": "#/$defs/file1/$defs/y"}
    assert load_document(tmp_path / "a.json")["$defs"]["x"] == {"type": "string"}


CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "notes"
url = "{url}"
[[gateway.routes]]
name = "replace-note"
methods = ["PUT"]
path = "/notes/{{noteId}}"
upstream = "notes"
auth = "bastion"
objects = {{ records = "note", id_from = "path:noteId" }}
input = {{ openapi = "openapi.yaml", operation = "replaceNote" }}
"""


@pytest.fixture
def gw(
    tmp_path: Path, spec: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, textwrap.dedent(CONFIG), recorder, environ, now) as harness:
        yield harness


def test_a_route_on_an_openapi_30_yaml_operation(gw: GatewayHarness, recorder: Recorder) -> None:
    """The path in bastion.toml is relative to the file; ids from the 3.0 parameter's
    integer type are canonical before the registry sees them."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.default = Answer(body={"title": "a"})
    assert gw.client.put("/api/notes/7", json={"title": "a"}, headers=alice).status_code == 200
    assert gw.client.put("/api/notes/007", json={"title": "b"}, headers=bob).status_code == 404
    answer = gw.client.put("/api/notes/8", json={"title": "a", "role": "admin"}, headers=bob)
    assert answer.status_code == 400
    assert len(recorder.seen) == 1


@pytest.mark.parametrize(
    "schema",
    [
        # An allOf inside an allOf branch, a oneOf inside an allOf branch, an allOf in then.
        {"allOf": [{"allOf": [{"properties": {"meta": {"properties": {"a": {}}}}}]}]},
        {"allOf": [{"oneOf": [{"properties": {"meta": {"properties": {"a": {}}}}}]}]},
        {
            "if": {"required": ["x"]},
            "then": {"allOf": [{"properties": {"meta": {"properties": {"a": {}}}}}]},
        },
        {"dependentSchemas": {"x": {"properties": {"meta": {"properties": {"a": {}}}}}}},
        {"properties": {"x": {}}, "unevaluatedProperties": {"properties": {"a": {}}}},
    ],
)
def test_nested_objects_in_composed_schemas_are_closed(schema: dict[str, Any]) -> None:
    """OWASP API3: "admin" deep inside a composition is refused like anywhere else."""
    document = {"type": "object", "properties": {"x": {}}, **schema}
    rules = InputRules.compile(InputSettings(body=document))
    assert _errors(rules, b'{"x": 1, "meta": {"a": 1, "admin": true}}')


def test_percent_encoded_reference_targets_are_closed(tmp_path: Path) -> None:
    (tmp_path / "defs.yaml").write_text(
        "My Note:\n  type: object\n  properties: {title: {type: string}}\n", encoding="utf-8"
    )
    (tmp_path / "body.json").write_text('{"$ref": "defs.yaml#/My%20Note"}', encoding="utf-8")
    rules = InputRules.compile(InputSettings(body_file=tmp_path / "body.json"))
    rules.check_body("application/json", b'{"title": "a"}')
    assert _errors(rules, b'{"title": "a", "admin": true}')


def test_yaml_is_read_as_yaml_1_2(tmp_path: Path) -> None:
    """The Norway problem: YAML 1.1 reads NO as false and 010 as eight."""
    path = tmp_path / "s.yaml"
    path.write_text("enum: [NO, SE, on]\nmaxLength: 010\nconst: 2024-01-01\n", encoding="utf-8")
    assert load_document(path) == {
        "enum": ["NO", "SE", "on"],
        "maxLength": 10,
        "const": "2024-01-01",
    }
