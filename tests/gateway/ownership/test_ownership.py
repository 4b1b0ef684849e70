"""The ownership registry (OWASP API1, BOLA): creates record owners, conflicts and reused
ids fail closed, deletes forget, conditional requests cannot probe other users' objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.recorder import Answer, Recorder

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "docs"
url = "{url}"
[[gateway.routes]]
name = "create"
methods = ["POST"]
path = "/docs"
upstream = "docs"
auth = "bastion"
objects = {{ records = "doc" }}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "put"
methods = ["PUT"]
path = "/docs/{{doc_id}}"
upstream = "docs"
auth = "bastion"
objects = {{ records = "doc" }}
[gateway.routes.input.path]
type = "object"
properties = {{ doc_id = {{ type = "string" }} }}
[gateway.routes.input.body]
type = "object"
properties = {{ text = {{ type = "string" }} }}
[[gateway.routes]]
name = "read"
methods = ["GET"]
path = "/docs/{{doc_id}}"
upstream = "docs"
auth = "bastion"
objects = {{ owned = "doc", response_owner = "/owner" }}
[[gateway.routes]]
name = "delete"
methods = ["DELETE"]
path = "/docs/{{doc_id}}"
upstream = "docs"
auth = "bastion"
objects = {{ owned = "doc" }}
[[gateway.routes]]
name = "patch"
methods = ["PATCH"]
path = "/docs/{{doc_id}}"
upstream = "docs"
auth = "bastion"
objects = {{ lookup = "/docs/{{doc_id}}/owner" }}
[gateway.routes.input.body]
type = "object"
"""


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, CONFIG, recorder, environ, now) as harness:
        yield harness


def test_put_create_cannot_take_over_an_owned_id(gw: GatewayHarness, recorder: Recorder) -> None:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/docs/n1"] = Answer(status=201, body={"id": "n1", "owner": "alice"})
    assert gw.client.put("/api/docs/n1", json={"text": "a"}, headers=alice).status_code == 201
    seen = len(recorder.seen)
    # Bob's PUT on Alice's id never reaches the upstream.
    assert gw.client.put("/api/docs/n1", json={"text": "b"}, headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    # Alice updates her own.
    assert gw.client.put("/api/docs/n1", json={"text": "c"}, headers=alice).status_code == 201


def test_conflicting_create_is_withheld(gw: GatewayHarness, recorder: Recorder) -> None:
    """An upstream that hands out an id the registry gives to another user: 502, not a
    shared object (the first owner keeps it)."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/docs"] = Answer(status=201, body={"id": 7, "owner": "alice"})
    assert gw.client.post("/api/docs", json={}, headers=alice).status_code == 201
    recorder.answers["/docs"] = Answer(status=201, body={"id": 7, "secret": "bob's"})
    answer = gw.client.post("/api/docs", json={}, headers=bob)
    assert answer.status_code == 502
    assert "bob's" not in answer.text
    recorder.answers["/docs/7"] = Answer(body={"id": 7, "owner": "alice"})
    assert gw.client.get("/api/docs/7", headers=alice).status_code == 200
    assert gw.client.get("/api/docs/7", headers=bob).status_code == 404


def test_delete_forgets_so_reused_ids_do_not_leak(
    gw: GatewayHarness, recorder: Recorder, now: FixedClock
) -> None:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/docs"] = Answer(status=201, body={"id": 3})
    assert gw.client.post("/api/docs", json={}, headers=alice).status_code == 201
    recorder.answers["/docs/3"] = Answer(status=204, raw=b"")
    assert gw.client.delete("/api/docs/3", headers=bob).status_code == 404
    assert gw.client.delete("/api/docs/3", headers=alice).status_code == 204
    assert gw.events("gateway.write")[-1]["target"] == "3"
    # The upstream reuses id 3 for Bob's next document.
    recorder.answers["/docs"] = Answer(status=201, body={"id": 3})
    assert gw.client.post("/api/docs", json={}, headers=bob).status_code == 201
    recorder.answers["/docs/3"] = Answer(body={"id": 3, "owner": "bob"})
    assert gw.client.get("/api/docs/3", headers=alice).status_code == 404
    assert gw.client.get("/api/docs/3", headers=bob).status_code == 200


def test_conditional_requests_cannot_probe(gw: GatewayHarness, recorder: Recorder) -> None:
    """RFC 9110 §13: a 304 or 412 would answer for an object before its owner is known."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/docs"] = Answer(status=201, body={"id": 5})
    gw.client.post("/api/docs", json={}, headers=alice)
    recorder.answers["/docs/5"] = Answer(body={"id": 5, "owner": "alice"})
    gw.client.get("/api/docs/5", headers={**alice, "if-none-match": "*", "if-match": '"x"'})
    assert "if-none-match" not in recorder.last.headers
    assert "if-match" not in recorder.last.headers
    assert gw.client.head("/api/docs/5", headers=bob).status_code == 404


@pytest.mark.parametrize("owner", [None, "", True, {"id": "alice"}, "None"])
def test_look_up_owner_must_be_an_id(gw: GatewayHarness, recorder: Recorder, owner: object) -> None:
    none_user = gw.bearer(gw.mint("None"))
    recorder.answers["/docs/9/owner"] = Answer(body={"owner": owner} if owner != "None" else {})
    seen = len(recorder.seen)
    assert gw.client.patch("/api/docs/9", json={}, headers=none_user).status_code == 404
    assert len(recorder.seen) == seen + 1  # the look-up only
