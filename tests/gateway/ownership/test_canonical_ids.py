"""BOLA through another spelling of an id (OWASP API1): ``PUT /notes/01`` must not reach
note 1 of another user because the registry looked up "01" and the upstream read 1.

Every strategy compares, records and forwards ids in one canonical form
(bastion.gateway.identifiers); RFC 9562 §4 for UUIDs (case-insensitive on input).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.recorder import Answer, Recorder

UPPER = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
LOWER = UPPER.lower()

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "notes"
url = "{url}"
[[gateway.routes]]
name = "create-note"
methods = ["POST"]
path = "/notes"
upstream = "notes"
auth = "bastion"
objects = {{ records = "note" }}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "upsert-note"
methods = ["PUT"]
path = "/notes/{{note_id}}"
upstream = "notes"
auth = "bastion"
# Create or replace: an id nobody owns yet may be created by its first writer.
objects = {{ records = "note" }}
[gateway.routes.input.path]
type = "object"
properties = {{ note_id = {{ type = "integer", minimum = 1 }} }}
[gateway.routes.input.body]
type = "object"
properties = {{ text = {{ type = "string" }} }}
[[gateway.routes]]
name = "put-doc"
methods = ["PUT"]
path = "/docs/{{doc_id}}"
upstream = "notes"
auth = "bastion"
objects = {{ records = "doc", id_from = "path:doc_id" }}
[gateway.routes.input.path]
type = "object"
properties = {{ doc_id = {{ type = "string", format = "uuid" }} }}
[gateway.routes.input.body]
type = "object"
properties = {{ text = {{ type = "string" }} }}
[[gateway.routes]]
name = "read-doc"
methods = ["GET"]
path = "/docs/{{doc_id}}"
upstream = "notes"
auth = "bastion"
objects = {{ owned = "doc" }}
[[gateway.routes]]
name = "create-item"
methods = ["POST"]
path = "/items"
upstream = "notes"
auth = "bastion"
objects = {{ records = "item" }}
[[gateway.routes]]
name = "delete-item"
methods = ["DELETE"]
path = "/items/{{item_id}}"
upstream = "notes"
auth = "bastion"
objects = {{ owned = "item" }}
[[gateway.routes]]
name = "org-notes"
methods = ["GET"]
path = "/org-notes"
upstream = "notes"
auth = "bastion"
objects = {{ param_claims = {{ org = "sub" }} }}
[gateway.routes.input.query]
type = "object"
properties = {{ org = {{ type = "integer" }} }}
"""


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, CONFIG, recorder, environ, now) as harness:
        yield harness


def test_leading_zero_cannot_reach_another_users_note(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """The reported attack: "01" had no owner, so the upsert was forwarded and the
    upstream overwrote note 1 (the answer was withheld only after the write)."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/notes"] = Answer(status=201, body={"id": 1})
    assert gw.client.post("/api/notes", json={}, headers=alice).status_code == 201
    seen = len(recorder.seen)
    for spelling in ("01", "001", "+1", "%2B1", "0001"):
        answer = gw.client.put(f"/api/notes/{spelling}", json={"text": "x"}, headers=bob)
        assert answer.status_code == 404, spelling
    assert len(recorder.seen) == seen  # nothing reached the upstream
    # The owner may use any spelling; the upstream only ever sees the canonical one.
    recorder.answers["/notes/1"] = Answer(body={"id": 1})
    recorder.answers["/notes/01"] = Answer(body={"id": 1})
    assert gw.client.put("/api/notes/01", json={"text": "y"}, headers=alice).status_code == 200
    assert recorder.last.raw_path == b"/notes/1"
    assert gw.events("gateway.write")[-1]["target"] == "1"


def test_non_integer_note_id_is_refused_not_forwarded(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    alice = gw.bearer(gw.mint("alice"))
    for spelling in ("1.0", "%201", "1%20", "0x1", "1e0"):
        answer = gw.client.put(f"/api/notes/{spelling}", json={"text": "x"}, headers=alice)
        assert answer.status_code == 404, spelling
    assert recorder.seen == []


def test_uuid_case_cannot_take_over_a_client_chosen_id(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """PUT-create with the id in the path (id_from = "path:doc_id"): the registry holds
    the lower-case form, so an upper-case PUT by someone else is an overwrite, refused."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers[f"/docs/{LOWER}"] = Answer(status=200, body={"status": "success"})
    assert gw.client.put(f"/api/docs/{LOWER}", json={"text": "a"}, headers=alice).status_code == 200
    seen = len(recorder.seen)
    for spelling in (UPPER, UPPER.replace("-", ""), "%7B" + LOWER + "%7D"):
        answer = gw.client.put(f"/api/docs/{spelling}", json={"text": "b"}, headers=bob)
        assert answer.status_code == 404, spelling
        assert gw.client.get(f"/api/docs/{spelling}", headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    recorder.answers[f"/docs/{LOWER}"] = Answer(body={"text": "a"})
    assert gw.client.get(f"/api/docs/{UPPER}", headers=alice).status_code == 200
    assert recorder.last.raw_path == f"/docs/{LOWER}".encode()


def test_untyped_ids_are_canonical_too(gw: GatewayHarness, recorder: Recorder) -> None:
    """No type declared for item_id: digits are still read as one integer, and white
    space around an id is never an id."""
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/items"] = Answer(status=201, body={"id": "7"})
    assert gw.client.post("/api/items", headers=alice).status_code == 201
    seen = len(recorder.seen)
    for spelling in ("07", "+7", "%207", "7%20"):
        assert gw.client.delete(f"/api/items/{spelling}", headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    recorder.answers["/items/7"] = Answer(status=204, raw=b"")
    assert gw.client.delete("/api/items/007", headers=alice).status_code == 204
    assert recorder.last.raw_path == b"/items/7"


def test_query_id_bound_to_a_claim_must_be_canonical(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """The query is forwarded as sent: "042" is refused, not compared as 42 and then
    read by the upstream in its own way."""
    caller = gw.bearer(gw.mint("42"))
    for query in ("org=042", "org=%2B42", "org=43", "org=42&org=43", ""):
        answer = gw.client.get(f"/api/org-notes?{query}", headers=caller)
        assert answer.status_code in (400, 404), query
    assert recorder.seen == []
    assert gw.client.get("/api/org-notes?org=42", headers=caller).status_code == 200


UNTYPED = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "notes"
url = "{url}"
[[gateway.routes]]
name = "create"
methods = ["POST"]
path = "/things"
upstream = "notes"
auth = "bastion"
objects = {{ records = "thing" }}
[[gateway.routes]]
name = "read"
methods = ["GET"]
path = "/things/{{thing_id}}"
upstream = "notes"
auth = "bastion"
objects = {{ owned = "thing" }}
[[gateway.routes]]
name = "put-vehicle"
methods = ["PUT"]
path = "/vehicles/{{vin}}"
upstream = "notes"
auth = "bastion"
objects = {{ records = "vehicle", id_from = "path:vin" }}
[gateway.routes.input.path]
type = "object"
properties = {{ vin = {{ type = "string", maxLength = 300 }} }}
[gateway.routes.input.body]
type = "object"
[[gateway.routes]]
name = "profile"
methods = ["GET"]
path = "/profiles/{{u}}"
upstream = "notes"
auth = "bastion"
objects = {{ param_claims = {{ u = "sub" }} }}
"""


@pytest.fixture
def untyped(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, UNTYPED, recorder, environ, now) as harness:
        yield harness


@pytest.mark.parametrize(
    "spelling",
    [
        "0_1",  # Python's int() reads 1
        "%EF%BC%91",  # FULLWIDTH DIGIT ONE
        "%D9%A1",  # ARABIC-INDIC DIGIT ONE
        "%F0%9D%9F%8F",  # MATHEMATICAL BOLD DIGIT ONE
        "%2B1",
        "1%00",
    ],
)
def test_untyped_id_spelled_as_another_number_is_refused(
    untyped: GatewayHarness, recorder: Recorder, spelling: str
) -> None:
    """Spellings a lenient parser reads as 1 never reach the upstream as something the
    registry saw differently (nor are they recorded for the caller)."""
    alice = untyped.bearer(untyped.mint("alice"))
    recorder.answers["/things"] = Answer(status=201, body={"id": 1})
    assert untyped.client.post("/api/things", headers=alice).status_code == 201
    bob = untyped.bearer(untyped.mint("bob"))
    seen = len(recorder.seen)
    assert untyped.client.get(f"/api/things/{spelling}", headers=bob).status_code == 404
    assert len(recorder.seen) == seen


def test_untyped_uuid_spellings_share_one_owner(
    untyped: GatewayHarness, recorder: Recorder
) -> None:
    alice, bob = untyped.bearer(untyped.mint("alice")), untyped.bearer(untyped.mint("bob"))
    recorder.answers["/things"] = Answer(status=201, body={"id": LOWER})
    assert untyped.client.post("/api/things", headers=alice).status_code == 201
    seen = len(recorder.seen)
    for spelling in (UPPER, "%7B" + LOWER + "%7D", "urn:uuid:" + LOWER, LOWER.replace("-", "")):
        assert untyped.client.get(f"/api/things/{spelling}", headers=bob).status_code == 404
    assert len(recorder.seen) == seen
    recorder.answers[f"/things/{LOWER}"] = Answer(body={"id": LOWER})
    assert untyped.client.get(f"/api/things/{UPPER}", headers=alice).status_code == 200


def test_string_ids_collide_across_case(untyped: GatewayHarness, recorder: Recorder) -> None:
    """An upstream comparing text case-insensitively (MySQL's default collation) reads
    WVW123 and wvw123 as one vehicle: the registry does too."""
    alice, bob = untyped.bearer(untyped.mint("alice")), untyped.bearer(untyped.mint("bob"))
    assert untyped.client.put("/api/vehicles/WVW123", json={}, headers=alice).status_code == 200
    seen = len(recorder.seen)
    for spelling in ("wvw123", "Wvw123", "%EF%BC%B7VW123", "WVW123%20"):
        answer = untyped.client.put(f"/api/vehicles/{spelling}", json={}, headers=bob)
        assert answer.status_code == 404, spelling
    assert len(recorder.seen) == seen
    # Ids longer than the registry holds are never forwarded.
    long = "A" * 257
    assert untyped.client.put(f"/api/vehicles/{long}", json={}, headers=bob).status_code == 404
    assert len(recorder.seen) == seen


def test_claims_are_compared_as_they_are(untyped: GatewayHarness, recorder: Recorder) -> None:
    """Subjects "007" and "7" are two users: the parameter is canonical ("007" becomes
    "7"), the claim never is, so "007" cannot reach user 7's profile."""
    seven, double_o = untyped.bearer(untyped.mint("7")), untyped.bearer(untyped.mint("007"))
    assert untyped.client.get("/api/profiles/007", headers=double_o).status_code == 404
    assert untyped.client.get("/api/profiles/7", headers=double_o).status_code == 404
    assert recorder.seen == []
    assert untyped.client.get("/api/profiles/007", headers=seven).status_code == 200
    assert recorder.last.raw_path == b"/profiles/7"


def test_concurrent_creates_of_one_id_reach_the_upstream_once(
    untyped: GatewayHarness, recorder: Recorder
) -> None:
    """The id is recorded before the write: of two creates racing for it, the second is
    refused before it is forwarded (it used to pass the check while the first was
    still running, and overwrite it)."""
    recorder.answers["/vehicles/VIN9"] = Answer(delay=0.3)
    alice, bob = untyped.bearer(untyped.mint("alice")), untyped.bearer(untyped.mint("bob"))

    async def race() -> list[int]:
        import asyncio

        import httpx

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=untyped.client.app), base_url=untyped.settings.issuer
        ) as client:
            first = asyncio.ensure_future(client.put("/api/vehicles/VIN9", json={}, headers=alice))
            await asyncio.sleep(0.1)
            second = await client.put("/api/vehicles/VIN9", json={}, headers=bob)
            return [(await first).status_code, second.status_code]

    assert untyped.call(race) == [200, 404]
    assert recorder.count(b"/vehicles/VIN9") == 1


def test_a_refused_create_frees_its_id(untyped: GatewayHarness, recorder: Recorder) -> None:
    alice, bob = untyped.bearer(untyped.mint("alice")), untyped.bearer(untyped.mint("bob"))
    recorder.answers["/vehicles/VIN7"] = Answer(status=422, body={"error": "bad vin"})
    assert untyped.client.put("/api/vehicles/VIN7", json={}, headers=alice).status_code == 422
    recorder.answers["/vehicles/VIN7"] = Answer()
    assert untyped.client.put("/api/vehicles/VIN7", json={}, headers=bob).status_code == 200
