"""Creates whose answer carries no id (``{"status": "success"}``), and body fields bound to
the caller (OWASP API1, BOLA): the id to record comes from the path or the body, a
create that records nothing fails loudly, and "create my profile" cannot name another
user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bastion.clock import FixedClock
from bastion.config import load_settings
from bastion.errors import ConfigError
from bastion.wiring import gateway_problems
from tests.conftest import write_config
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.recorder import Answer, Recorder

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
name = "create-vehicle"
methods = ["POST"]
path = "/vehicles"
upstream = "api"
auth = "bastion"
objects = {{ records = "vehicle", id_from = "body:/vin" }}
[gateway.routes.input.body]
type = "object"
required = ["vin"]
properties = {{ vin = {{ type = "string", maxLength = 17 }}, model = {{ type = "string" }} }}
[[gateway.routes]]
name = "read-vehicle"
methods = ["GET"]
path = "/vehicles/{{vin}}"
upstream = "api"
auth = "bastion"
objects = {{ owned = "vehicle" }}
[gateway.routes.input.path]
type = "object"
properties = {{ vin = {{ type = "string", maxLength = 17 }} }}
[[gateway.routes]]
name = "put-post"
methods = ["PUT"]
path = "/posts/{{post_id}}"
upstream = "api"
auth = "bastion"
objects = {{ records = "post", id_from = "path:post_id" }}
[gateway.routes.input.path]
type = "object"
properties = {{ post_id = {{ type = "string" }} }}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "delete-post"
methods = ["DELETE"]
path = "/posts/{{post_id}}"
upstream = "api"
auth = "bastion"
objects = {{ owned = "post" }}
[[gateway.routes]]
name = "create-comment"
methods = ["POST"]
path = "/comments"
upstream = "api"
auth = "bastion"
objects = {{ records = "comment" }}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "create-profile"
methods = ["POST"]
path = "/profiles"
upstream = "api"
auth = "bastion"
objects = {{ body_claims = {{ "/username" = "sub" }} }}
[gateway.routes.input.body]
type = "object"
properties = {{ username = {{ type = "string" }}, bio = {{ type = "string" }} }}
[[gateway.routes]]
name = "create-order"
methods = ["POST"]
path = "/orders"
upstream = "api"
auth = "bastion"
objects = {{ body_claims = {{ "/customer" = "sub" }}, body_claims_mode = "set" }}
[gateway.routes.input.body]
type = "object"
properties = {{ item = {{ type = "string" }} }}
"""


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, CONFIG, recorder, environ, now) as harness:
        yield harness


def test_id_from_the_body(gw: GatewayHarness, recorder: Recorder) -> None:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/vehicles"] = Answer(status=201, body={"status": "success"})
    created = gw.client.post("/api/vehicles", json={"vin": "WVW123"}, headers=alice)
    assert created.status_code == 201
    assert gw.events("gateway.write")[-1]["target"] == "WVW123"
    # Bob cannot create the same vehicle again (it would overwrite Alice's), nor read it.
    seen = len(recorder.seen)
    assert gw.client.post("/api/vehicles", json={"vin": "WVW123"}, headers=bob).status_code == 404
    assert gw.client.get("/api/vehicles/WVW123", headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    recorder.answers["/vehicles/WVW123"] = Answer(body={"vin": "WVW123"})
    assert gw.client.get("/api/vehicles/WVW123", headers=alice).status_code == 200


def test_body_without_the_id_is_refused_before_the_write(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    alice = gw.bearer(gw.mint("alice"))
    answer = gw.client.post("/api/vehicles", json={"model": "x"}, headers=alice)
    assert answer.status_code == 400
    assert recorder.seen == []


def test_id_from_the_path_of_a_put_create(gw: GatewayHarness, recorder: Recorder) -> None:
    """The answer names no id at all; the path does."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/posts/p1"] = Answer(status=204, raw=b"")
    assert gw.client.put("/api/posts/p1", json={}, headers=alice).status_code == 204
    assert gw.client.put("/api/posts/p1", json={}, headers=bob).status_code == 404
    assert gw.client.delete("/api/posts/p1", headers=bob).status_code == 404
    assert gw.client.delete("/api/posts/p1", headers=alice).status_code == 204


def test_create_that_records_nothing_is_an_error(gw: GatewayHarness, recorder: Recorder) -> None:
    """The id was expected in the answer and is not there: the object would exist with
    no owner, so the app hears 502 and the audit trail says why (not a log warning)."""
    alice = gw.bearer(gw.mint("alice"))
    for body in ({"status": "success"}, {"id": None}, {"id": True}, {"id": {"n": 1}}):
        recorder.answers["/comments"] = Answer(status=201, body=body)
        answer = gw.client.post("/api/comments", json={}, headers=alice)
        assert answer.status_code == 502, body
        assert answer.headers["content-type"] == "application/problem+json"
    events = gw.events("gateway.ownership.unrecorded")
    assert len(events) == 4
    assert events[-1]["outcome"] == "failure"
    assert events[-1]["policy"] == "create-comment"


def test_body_field_bound_to_the_caller(gw: GatewayHarness, recorder: Recorder) -> None:
    alice = gw.bearer(gw.mint("alice"))
    for body in ({"username": "bob"}, {"bio": "no name"}):
        assert gw.client.post("/api/profiles", json=body, headers=alice).status_code == 404
    refused = gw.events("gateway.request.refused")[-1]
    assert refused["details"]["reason"] == "body field does not match the caller"
    # Not a string: the schema refuses it before the binding is compared.
    sent = {"username": ["alice"]}
    assert gw.client.post("/api/profiles", json=sent, headers=alice).status_code == 400
    assert recorder.seen == []
    assert gw.client.post("/api/profiles", json={"username": "alice"}, headers=alice).is_success
    assert orjson.loads(recorder.last.body) == {"username": "alice"}


def test_body_field_set_by_the_gateway(gw: GatewayHarness, recorder: Recorder) -> None:
    """Mode "set": whatever the app sends (or omits), the upstream reads the caller."""
    alice = gw.bearer(gw.mint("alice"))
    assert gw.client.post("/api/orders", json={"item": "tea"}, headers=alice).is_success
    assert orjson.loads(recorder.last.body) == {"item": "tea", "customer": "alice"}
    # "customer" is not in the schema: the app cannot send it, only the gateway sets it.
    sent = {"item": "tea", "customer": "bob"}
    assert gw.client.post("/api/orders", json=sent, headers=alice).status_code == 400


def _problems(tmp_path: Path, routes: str, environ: dict[str, str]) -> list[str]:
    body = f"""
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "http://127.0.0.1:9"
{routes}
"""
    settings = load_settings(write_config(tmp_path, body), environ)
    return [p.message for p in gateway_problems(settings, environ)]


def test_check_flags_an_id_source_that_cannot_be_found(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    routes = """
[[gateway.routes]]
methods = ["POST"]
path = "/a"
upstream = "api"
auth = "bastion"
objects = { records = "a", id_from = "body:/id" }
[gateway.routes.input.body]
type = "object"
properties = { name = { type = "string" } }
"""
    assert any("declares nothing at /id" in p for p in _problems(tmp_path, routes, environ))
    with pytest.raises(ConfigError, match="not a path parameter"):
        _problems(tmp_path, routes.replace("body:/id", "path:id"), environ)


def test_check_flags_one_kind_spelled_two_ways(tmp_path: Path, environ: dict[str, str]) -> None:
    routes = """
[[gateway.routes]]
methods = ["GET"]
path = "/a/{a_id}"
upstream = "api"
auth = "bastion"
objects = { owned = "a" }
input.path = { type = "object", properties = { a_id = { type = "integer" } } }
[[gateway.routes]]
methods = ["DELETE"]
path = "/a/{a_id}"
upstream = "api"
auth = "bastion"
objects = { owned = "a" }
input.path = { type = "object", properties = { a_id = { type = "string" } } }
"""
    problems = _problems(tmp_path, routes, environ)
    assert any("declare its ids as integer, string" in p for p in problems)


NESTED = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
name = "create-folder"
methods = ["POST"]
path = "/folders"
upstream = "api"
auth = "bastion"
objects = {{ records = "folder" }}
[[gateway.routes]]
name = "read-folder"
methods = ["GET"]
path = "/folders/{{folder_id}}"
upstream = "api"
auth = "bastion"
objects = {{ owned = "folder" }}
[gateway.routes.input.path]
type = "object"
properties = {{ folder_id = {{ type = "integer" }} }}
[[gateway.routes]]
name = "create-note-in-folder"
methods = ["POST"]
path = "/folders/{{folder_id}}/notes"
upstream = "api"
auth = "bastion"
objects = {{ owned = "folder", id_param = "folder_id", records = "fnote", id_from = "body:/id" }}
[gateway.routes.input.path]
type = "object"
properties = {{ folder_id = {{ type = "integer" }} }}
[gateway.routes.input.body]
type = "object"
properties = {{ id = {{ type = "integer" }} }}
[[gateway.routes]]
name = "delete-note-in-folder"
methods = ["DELETE"]
path = "/folders/{{folder_id}}/notes/{{note_id}}"
upstream = "api"
auth = "bastion"
objects = {{ owned = "folder", id_param = "folder_id" }}
[gateway.routes.input.path]
type = "object"
properties = {{ folder_id = {{ type = "integer" }}, note_id = {{ type = "integer" }} }}
"""


@pytest.fixture
def nested(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, NESTED, recorder, environ, now) as harness:
        yield harness


def _folders(gw: GatewayHarness, recorder: Recorder) -> tuple[dict[str, str], dict[str, str]]:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    for headers, folder in ((alice, 1), (bob, 2)):
        recorder.answers["/folders"] = Answer(status=201, body={"id": folder})
        assert gw.client.post("/api/folders", headers=headers).status_code == 201
    return alice, bob


def test_a_child_create_checks_the_parent_not_the_child(
    nested: GatewayHarness, recorder: Recorder
) -> None:
    """owned = folder (the parent in the path) and records = note (the child's id in the
    body) are two ids: Bob cannot create a note in Alice's folder by naming a child id
    that happens to equal his own folder's."""
    alice, bob = _folders(nested, recorder)
    seen = len(recorder.seen)
    for body in ({"id": 2}, {"id": 50}):
        assert nested.client.post("/api/folders/1/notes", json=body, headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    recorder.answers["/folders/1/notes"] = Answer(status=201, body={"status": "success"})
    answer = nested.client.post("/api/folders/1/notes", json={"id": 50}, headers=alice)
    assert answer.status_code == 201
    assert nested.events("gateway.write")[-1]["target"] == "50"


def test_deleting_a_child_keeps_the_parent(nested: GatewayHarness, recorder: Recorder) -> None:
    alice, _ = _folders(nested, recorder)
    recorder.answers["/folders/1/notes/9"] = Answer(status=204, raw=b"")
    assert nested.client.delete("/api/folders/1/notes/9", headers=alice).status_code == 204
    recorder.answers["/folders/1"] = Answer(body={"id": 1})
    assert nested.client.get("/api/folders/1", headers=alice).status_code == 200


def test_bound_body_is_forwarded_as_the_json_it_was_checked_as(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """The upstream must parse what the gateway parsed: a body sent as a form, or with a
    charset the gateway did not decode with, is refused or forwarded as plain JSON."""
    alice = gw.bearer(gw.mint("alice"))
    smuggled = b'{"username":"alice","bio":"&username=bob&admin=1"}'
    form = {**alice, "content-type": "application/x-www-form-urlencoded"}
    assert gw.client.post("/api/profiles", content=smuggled, headers=form).status_code == 415
    utf16 = {**alice, "content-type": "application/json; charset=utf-16"}
    assert gw.client.post("/api/profiles", content=smuggled, headers=utf16).is_success
    assert recorder.last.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("objects", "input_table", "message"),
    [
        (
            '{ records = "a", id_from = "path:a_id" }',
            "",
            "declare their type",
        ),
        (
            '{ records = "a" }',
            'input.body = { type = "object", properties = { id = { type = "integer" } } }',
            'id_from = "body:/id"',
        ),
    ],
)
def test_creates_whose_ids_cannot_be_trusted_are_refused(
    tmp_path: Path, environ: dict[str, str], objects: str, input_table: str, message: str
) -> None:
    """An id the app chooses needs a declared type; an id the answer names must not be
    one the app may send too (it would choose whose object the upstream writes)."""
    routes = (
        f'[[gateway.routes]]\nmethods = ["PUT"]\npath = "/a/{{a_id}}"\nupstream = "api"\n'
        f'auth = "bastion"\nobjects = {objects}\n{input_table}\n'
    )
    assert any(message in p for p in _problems(tmp_path, routes, environ))


def test_body_rules_need_an_input_schema(tmp_path: Path, environ: dict[str, str]) -> None:
    routes = (
        '[[gateway.routes]]\nmethods = ["POST"]\npath = "/p"\nupstream = "api"\n'
        'auth = "bastion"\nobjects = { body_claims = { "/username" = "sub" } }\n'
    )
    with pytest.raises(ConfigError, match="need an input schema"):
        _problems(tmp_path, routes, environ)
