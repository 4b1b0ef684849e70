"""Guards on gateway routes, end to end: rate limits, idempotency keys, retries, the
circuit breaker, stale fallbacks and pagination, against a recording upstream."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.recorder import Answer, Recorder, Seen

CONFIG = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "{url}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "2s"
retries = {{ attempts = 2, base = "10ms", cap = "200ms", budget_floor = 100 }}
breaker = {{ consecutive_failures = 3, open_for = "10s", min_requests = 100 }}

[[gateway.routes]]
name = "search"
methods = ["GET"]
path = "/search"
upstream = "api"
auth = "bastion"
[[gateway.routes.limits]]
name = "per-user"
by = ["user"]
rate = 3
window = "1m"
[[gateway.routes.limits]]
name = "abuse"
by = ["ip"]
rate = 100
window = "1m"
visible = false
[[gateway.routes.limits]]
name = "tiered"
by = ["tier"]
tier_claim = "client_id"
rate = 100
window = "1m"
tiers = {{ partner = 1000 }}

[[gateway.routes]]
name = "burst"
methods = ["GET"]
path = "/burst"
upstream = "api"
auth = "bastion"
limits = [{{ name = "flood", by = ["ip"], rate = 2, window = "1m", visible = false }}]

[[gateway.routes]]
name = "pay"
methods = ["POST"]
path = "/payments"
upstream = "api"
auth = "bastion"
idempotency = {{ required = true, ttl = "1h" }}
[gateway.routes.input.body]
type = "object"
properties = {{ amount = {{ type = "integer" }} }}

[[gateway.routes]]
name = "transfer"
methods = ["POST"]
path = "/accounts/{{account_id}}/transfers"
upstream = "api"
auth = "bastion"
idempotency = {{}}
objects = {{ lookup = "/accounts/{{account_id}}/owner" }}
[gateway.routes.input.body]
type = "object"

[[gateway.routes]]
name = "doc"
methods = ["POST"]
path = "/docs"
upstream = "api"
auth = "bastion"
idempotency = {{}}
objects = {{ response_owner = "/owner" }}
[gateway.routes.input.body]
type = "object"

[[gateway.routes]]
name = "note"
methods = ["POST"]
path = "/notes"
upstream = "api"
auth = "bastion"
idempotency = {{}}
[gateway.routes.input.body]
type = "object"

[[gateway.routes]]
name = "legacy-note"
methods = ["POST"]
path = "/legacy/notes"
upstream = "api"
auth = "bastion"
idempotency = {{ accept_unquoted = true }}

[[gateway.routes]]
name = "item"
methods = ["GET"]
path = "/items/{{item_id}}"
upstream = "api"
auth = "bastion"
fallback = "stale"
stale_for = "5m"

[[gateway.routes]]
name = "list"
methods = ["GET"]
path = "/things"
upstream = "api"
auth = "bastion"
pagination = {{ max_page_size = 5, default_page_size = 2, items = "/items" }}
response = {{ allow = ["/items/*/id"] }}
"""


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    with behind_recorder(tmp_path, CONFIG, recorder, environ, now) as harness:
        yield harness


# --- rate limits (draft-ietf-httpapi-ratelimit-headers-10) ------------------------------


def test_per_user_quota_with_headers(gw: GatewayHarness) -> None:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    seen = []
    for _ in range(3):
        answer = gw.client.get("/api/search", headers=alice)
        assert answer.status_code == 200
        seen.append(answer.headers["ratelimit"])
    # §4: remaining counts down; the hidden "abuse" limit is never advertised.
    assert [re.search(r'"per-user";r=(\d+)', v).group(1) for v in seen] == ["2", "1", "0"]  # type: ignore[union-attr]
    assert "abuse" not in answer.headers["ratelimit-policy"]
    assert '"per-user";q=3;w=60' in answer.headers["ratelimit-policy"]
    refused = gw.client.get("/api/search", headers=alice)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    problem = refused.json()
    assert problem["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert problem["violated-policies"] == ["per-user"]
    # Another user has a quota of their own.
    assert gw.client.get("/api/search", headers=bob).status_code == 200
    event = gw.events("guards.rate_limited")[-1]
    assert event["policy"] == "per-user"
    assert event["actor"] == "user:alice"


def test_tiers_from_a_claim(gw: GatewayHarness) -> None:
    partner = gw.bearer(gw.mint("p", client_id="partner"))
    answer = gw.client.get("/api/search", headers=partner)
    assert '"tiered";q=1000;w=60' in answer.headers["ratelimit-policy"]
    other = gw.client.get("/api/search", headers=gw.bearer(gw.mint("o", client_id="mobile")))
    assert '"tiered";q=100;w=60' in other.headers["ratelimit-policy"]


def test_abuse_threshold_before_authentication(gw: GatewayHarness, recorder: Recorder) -> None:
    """An IP limit runs before the token is checked: forged tokens spend it too."""
    for _ in range(2):
        gw.client.get("/api/burst", headers={"authorization": "Bearer forged"})
    refused = gw.client.get("/api/burst", headers=gw.bearer(gw.mint()))
    assert refused.status_code == 429
    assert "ratelimit" not in refused.headers
    assert "violated-policies" not in refused.json()
    assert refused.json()["type"].endswith("#abnormal-usage-detected")
    assert recorder.count(b"/burst") == 0


# --- idempotency keys (draft-ietf-httpapi-idempotency-key-header-07) --------------------


def test_replay_mismatch_and_required_key(gw: GatewayHarness, recorder: Recorder) -> None:
    token = gw.bearer(gw.mint("alice"))
    recorder.answers["/payments"] = Answer(status=201, body={"payment": 1})
    keyed = {**token, "idempotency-key": '"pay-1"'}
    first = gw.client.post("/api/payments", json={"amount": 5}, headers=keyed)
    assert first.status_code == 201
    assert recorder.last.headers["idempotency-key"] == '"pay-1"'
    again = gw.client.post("/api/payments", json={"amount": 5}, headers=keyed)
    assert again.status_code == 201
    assert again.json() == {"payment": 1}
    assert again.headers["idempotent-replayed"] == "true"
    assert recorder.count(b"/payments") == 1
    # §2.7: same key, different payload.
    other = gw.client.post("/api/payments", json={"amount": 6}, headers=keyed)
    assert other.status_code == 422
    # §2.4: the route requires the key.
    missing = gw.client.post("/api/payments", json={"amount": 5}, headers=token)
    assert missing.status_code == 400
    assert recorder.count(b"/payments") == 1


def test_key_syntax_end_to_end(gw: GatewayHarness, recorder: Recorder) -> None:
    """Draft-07 §2.1, RFC 9651 §3.3.3: a quoted key with a space or an escaped quote is a
    key; an unquoted one is refused with the form to send, unless the route accepts it."""
    token = gw.bearer(gw.mint("alice"))
    recorder.answers["/notes"] = Answer(status=201, body={"id": 1})
    for key in ('"order 42"', '"say \\"hi\\""'):
        answer = gw.client.post("/api/notes", json={}, headers={**token, "idempotency-key": key})
        assert answer.status_code == 201, answer.text
    for bad in ('"abc', "abc", "8e03978e-40d5-43e8-bc93-6894a57f9324"):
        refused = gw.client.post("/api/notes", json={}, headers={**token, "idempotency-key": bad})
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/problem+json"
    uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert f'Idempotency-Key: "{uuid}"' in refused.json()["detail"]
    assert recorder.count(b"/notes") == 2
    recorder.answers["/legacy/notes"] = Answer(status=201, body={"id": 2})
    legacy = {**token, "idempotency-key": "abc-1"}
    assert gw.client.post("/api/legacy/notes", json={}, headers=legacy).status_code == 201
    again = gw.client.post("/api/legacy/notes", json={}, headers=legacy)
    assert again.headers["idempotent-replayed"] == "true"
    assert recorder.count(b"/legacy/notes") == 1


def test_concurrent_duplicate_gets_409(gw: GatewayHarness, recorder: Recorder) -> None:
    token = {**gw.bearer(gw.mint("alice")), "idempotency-key": '"dup-1"'}
    recorder.answers["/notes"] = Answer(status=201, body={"id": 1}, delay=0.5)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(
            gw.client.post("/api/notes", json={}, headers=token).status_code
        )
    )
    first.start()
    while recorder.count(b"/notes") == 0:
        threading.Event().wait(0.01)
    duplicate = gw.client.post("/api/notes", json={}, headers=token)
    first.join()
    assert results == [201]
    assert duplicate.status_code == 409
    assert recorder.count(b"/notes") == 1


def test_unknown_outcome_is_never_run_twice(gw: GatewayHarness, recorder: Recorder) -> None:
    """An upstream that times out may have written: the key is never run again."""
    token = {**gw.bearer(gw.mint("alice")), "idempotency-key": '"slow-1"'}
    recorder.answers["/notes"] = Answer(status=201, body={"id": 1}, delay=1.5)
    assert gw.client.post("/api/notes", json={}, headers=token).status_code == 504
    # The gateway's own retries (2 here) carried the key, for the upstream to deduplicate.
    assert recorder.count(b"/notes") == 3
    assert {s.headers["idempotency-key"] for s in recorder.seen} == {'"slow-1"'}
    recorder.answers["/notes"] = Answer(status=201, body={"id": 2})
    retry = gw.client.post("/api/notes", json={}, headers=token)
    assert retry.status_code == 409
    assert retry.json()["type"] == "urn:bastion:problem:idempotency-outcome-unknown"
    assert recorder.count(b"/notes") == 3


# --- retries and the breaker -------------------------------------------------------------


def test_idempotent_requests_are_retried(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.script["/items/1"] = [Answer(status=503), Answer(status=502), Answer(body={"id": 1})]
    answer = gw.client.get("/api/items/1", headers=gw.bearer(gw.mint()))
    assert answer.status_code == 200
    assert recorder.count(b"/items/1") == 3


def test_unkeyed_posts_are_not_retried(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.script["/notes"] = [Answer(status=503), Answer(status=201)]
    answer = gw.client.post("/api/notes", json={}, headers=gw.bearer(gw.mint()))
    assert answer.status_code == 502
    assert recorder.count(b"/notes") == 1


def test_long_retry_after_ends_retries(gw: GatewayHarness, recorder: Recorder) -> None:
    """RFC 9110 §10.2.3: an upstream asking for more than the backoff cap is not hammered."""
    recorder.script["/items/2"] = [
        Answer(status=503, headers=[("retry-after", "120")]),
        Answer(body={"id": 2}),
    ]
    assert gw.client.get("/api/items/2", headers=gw.bearer(gw.mint())).status_code == 502
    assert recorder.count(b"/items/2") == 1


def test_breaker_opens_probes_and_closes(
    gw: GatewayHarness, recorder: Recorder, now: FixedClock
) -> None:
    token = gw.bearer(gw.mint())
    recorder.answers["/items/9"] = Answer(status=500)
    assert gw.client.get("/api/items/9", headers=token).status_code == 502
    assert gw.client.get("/api/items/9", headers=token).status_code == 502
    assert gw.client.get("/api/items/9", headers=token).status_code == 502
    calls = recorder.count(b"/items/9")
    refused = gw.client.get("/api/items/9", headers=token)
    assert refused.status_code == 503
    assert refused.json()["type"] == "urn:bastion:problem:circuit-open"
    assert "try again" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert recorder.count(b"/items/9") == calls
    assert gw.events("gateway.breaker.opened")
    now.advance(11)
    recorder.answers["/items/9"] = Answer(body={"id": 9})
    assert gw.client.get("/api/items/9", headers=token).status_code == 200
    assert gw.client.get("/api/items/9", headers=token).status_code == 200


def test_stale_fallback_per_caller(gw: GatewayHarness, recorder: Recorder) -> None:
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    recorder.answers["/items/5"] = Answer(body={"id": 5, "price": 10})
    assert gw.client.get("/api/items/5", headers=alice).json() == {"id": 5, "price": 10}
    recorder.answers["/items/5"] = Answer(status=500)
    stale = gw.client.get("/api/items/5", headers=alice)
    assert stale.status_code == 200
    assert stale.json() == {"id": 5, "price": 10}
    assert stale.headers["cache-status"] == 'bastion; hit; detail="stale"'
    assert "age" in stale.headers
    # Bob never fetched it: no stale copy of Alice's answer for him.
    assert gw.client.get("/api/items/5", headers=bob).status_code == 502


# --- pagination ---------------------------------------------------------------------------


def _pages(seen: Seen) -> Answer:
    query = parse_qs(seen.query.decode())
    offset, limit = int(query["offset"][0]), int(query["limit"][0])
    items = [{"id": i, "secret": "x"} for i in range(offset, min(offset + limit, 5))]
    return Answer(body={"items": items})


def test_cursor_pagination(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.handler = _pages
    alice, bob = gw.bearer(gw.mint("alice")), gw.bearer(gw.mint("bob"))
    collected: list[int] = []
    url = "/api/things?limit=2"
    links = 0
    while url:
        answer = gw.client.get(url, headers=alice)
        assert answer.status_code == 200
        collected += [item["id"] for item in answer.json()["items"]]
        assert all(set(item) == {"id"} for item in answer.json()["items"])
        link = answer.headers.get("link")
        if link is None:
            break
        links += 1
        match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert match, link
        url = match.group(1)
    assert collected == [0, 1, 2, 3, 4]
    assert links == 2  # pages of 2, 2 and 1: the short page has no next link

    first = gw.client.get("/api/things?limit=2", headers=alice).headers["link"]
    cursor = parse_qs(urlsplit(first[1:-13]).query)["cursor"][0]
    assert gw.client.get(f"/api/things?cursor={cursor}", headers=bob).status_code == 400
    tampered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
    assert gw.client.get(f"/api/things?cursor={tampered}", headers=alice).status_code == 400
    assert gw.client.get(f"/api/things?cursor={cursor}", headers=alice).status_code == 200
    # Another spelling of the same bytes is not the same cursor (RFC 4648 §3.3).
    for mangled in (cursor + "!!", cursor[:6] + "." + cursor[6:], cursor + "===="):
        refused = gw.client.get(f"/api/things?cursor={quote(mangled)}", headers=alice)
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/problem+json"
    assert gw.client.get("/api/things?limit=6", headers=alice).status_code == 400
    assert gw.client.get("/api/things?offset=3", headers=alice).status_code == 400
    assert orjson.loads(recorder.last.query and b"{}") == {}


def test_a_refused_request_does_not_hold_its_key(gw: GatewayHarness, recorder: Recorder) -> None:
    """A request refused before the upstream call leaves no running record behind."""
    headers = {**gw.bearer(gw.mint("alice")), "idempotency-key": '"k-9"'}
    recorder.answers["/accounts/7/owner"] = Answer(body={"owner": "bob"})
    refused = gw.client.post("/api/accounts/7/transfers", json={}, headers=headers)
    assert refused.status_code == 404  # the ownership look-up refused it
    recorder.answers["/accounts/7/owner"] = Answer(body={"owner": "alice"})
    recorder.answers["/accounts/7/transfers"] = Answer(status=201, body={"ok": 1})
    allowed = gw.client.post("/api/accounts/7/transfers", json={}, headers=headers)
    assert allowed.status_code == 201


def test_a_key_is_scoped_to_the_resource(gw: GatewayHarness, recorder: Recorder) -> None:
    """The same key and body sent to two accounts are two writes, not a replay."""
    headers = {**gw.bearer(gw.mint("alice")), "idempotency-key": '"same"'}
    for account in ("1", "2"):
        recorder.answers[f"/accounts/{account}/owner"] = Answer(body={"owner": "alice"})
        recorder.answers[f"/accounts/{account}/transfers"] = Answer(
            status=201, body={"account": account}
        )
        answer = gw.client.post(f"/api/accounts/{account}/transfers", json={}, headers=headers)
        assert answer.json() == {"account": account}
        assert "idempotent-replayed" not in answer.headers
    assert recorder.count(b"/accounts/2/transfers") == 1


def test_an_answer_refused_after_the_call_settles_the_key(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """Anything failing after the upstream was called marks the key unknown, never leaves
    it running for its whole lifetime."""
    headers = {**gw.bearer(gw.mint("alice")), "idempotency-key": '"n-1"'}
    recorder.answers["/docs"] = Answer(status=201, body={"owner": "bob"})
    assert gw.client.post("/api/docs", json={}, headers=headers).status_code == 404
    again = gw.client.post("/api/docs", json={}, headers=headers)
    assert again.status_code == 409
    assert again.json()["type"] == "urn:bastion:problem:idempotency-outcome-unknown"


def test_hostile_page_sizes_are_a_400(gw: GatewayHarness) -> None:
    token = gw.bearer(gw.mint("alice"))
    for limit in ("0" * 5000 + "1", "\u0663", "-1", "1.5"):
        assert gw.client.get(f"/api/things?limit={limit}", headers=token).status_code == 400
