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
