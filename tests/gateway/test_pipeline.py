"""The gateway pipeline end to end: a recording upstream behind Bastion (served in
process; one test serves both on real sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from bastion.accounts.levels import ACR_MFA, ACR_PASSWORD
from bastion.clock import FixedClock
from bastion.gateway.pipeline import MATCH_CACHE_PATH_BYTES, MATCH_CACHE_SIZE
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support import schema
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder
from tests.support.services import free_port
from tests.support.upstream import serve_in_thread

CONFIG = """
issuer = "http://127.0.0.1:8000"
[gateway]
prefix = "/api"

[[gateway.upstreams]]
name = "orders"
url = "{url}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "3s"
credential = {{ type = "token_exchange", audience = "https://orders.internal" }}

[[gateway.upstreams]]
name = "legacy"
url = "{url}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "3s"
credential = {{ type = "static", header = "x-api-key", env = "LEGACY_KEY" }}

[[gateway.upstreams]]
name = "down"
url = "http://127.0.0.1:{closed}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "2s"

[[gateway.routes]]
name = "list-orders"
methods = ["GET"]
path = "/orders"
upstream = "orders"
upstream_path = "/v2/orders"
auth = "bastion"
scopes = ["orders:read"]
clients = ["mobile"]
objects = {{ param_claims = {{ owner = "sub" }} }}

[[gateway.routes]]
name = "read-order"
methods = ["GET"]
path = "/orders/{{order_id}}"
upstream = "orders"
auth = "bastion"
any_scopes = ["orders:read", "orders:admin"]
objects = {{ response_owner = "/owner" }}
response = {{ allow = ["/id", "/owner", "/items/*/sku"] }}

[[gateway.routes]]
name = "update-order"
methods = ["PATCH"]
path = "/orders/{{order_id}}"
upstream = "orders"
auth = "bastion"
scopes = ["orders:write"]
objects = {{ lookup = "/orders/{{order_id}}/owner", lookup_owner = "/owner" }}
max_body_bytes = 2048
[gateway.routes.input]
max_depth = 4
[gateway.routes.input.body]
type = "object"
properties = {{ note = {{ type = "string", maxLength = 20 }}, qty = {{ type = "integer" }} }}

[[gateway.routes]]
name = "pay"
methods = ["POST"]
path = "/payments"
upstream = "orders"
auth = "bastion"
scopes = ["orders:write"]
acr = "{mfa}"
max_auth_age = "5m"

[[gateway.routes]]
name = "catalogue"
methods = ["GET"]
path = "/catalogue/{{item}}"
upstream = "legacy"
auth = "public"
cors = {{ origins = ["https://shop.example"], expose = ["x-request-id"] }}

[[gateway.routes]]
name = "unreachable"
methods = ["GET"]
path = "/down"
upstream = "down"
auth = "public"

[[gateway.upstreams]]
name = "tiny"
url = "{url}"
connect_timeout = "1s"
read_timeout = "1s"
total_timeout = "3s"
max_response_bytes = 1024
credential = {{ type = "none" }}

[[gateway.routes]]
methods = ["GET"]
path = "/tiny/streamed"
upstream = "tiny"
upstream_path = "/catalogue/big"
auth = "public"

[[gateway.routes]]
methods = ["GET"]
path = "/tiny/shaped"
upstream = "tiny"
upstream_path = "/catalogue/big"
auth = "public"
response = {{ allow = ["/a"] }}

[[gateway.routes]]
name = "crash"
methods = ["GET"]
path = "/crash"
upstream = "legacy"
auth = "public"
"""

READ = ("orders:read",)


@pytest.fixture
def gw(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(recorder), closed=free_port(), mfa=ACR_MFA)
    env = {**environ, "LEGACY_KEY": "legacy-key-0123456789"}
    with gateway_app(tmp_path, body, env, clock=now, transport=upstreams) as harness:
        yield harness


def _internal_claims(gw: GatewayHarness, authorization: str) -> dict[str, object]:
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    keys = KeySet.import_key_set(gw.runtime.keys.jwks())  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["ES256", "Ed25519"])
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


# --- deny by default -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/unknown"),
        ("DELETE", "/api/orders/1"),  # declared path, undeclared method
        ("GET", "/api"),
        ("GET", "/api/orders/"),  # trailing slash is another path
        ("HEAD", "/api/orders"),
        ("GET", "/api//orders"),
    ],
)
def test_undeclared_routes_do_not_exist(gw: GatewayHarness, method: str, path: str) -> None:
    token = gw.mint(scope=READ)
    answer = gw.client.request(method, path, headers=gw.bearer(token))
    assert answer.status_code == 404
    assert gw.events("gateway.request.refused")[-1]["details"]["reason"] == "no route"


# --- authentication (RFC 6750) -----------------------------------------------------------


def test_missing_and_malformed_credentials(gw: GatewayHarness) -> None:
    missing = gw.client.get("/api/orders?owner=alice")
    assert missing.status_code == 401
    # RFC 6750 §3.1: no error code when the request had no credentials at all; RFC 9449
    # §7.2: a resource taking both schemes offers both.
    assert missing.headers["www-authenticate"].startswith('Bearer realm="bastion", DPoP algs="')
    assert missing.headers["content-type"] == "application/problem+json"
    basic = gw.client.get("/api/orders?owner=alice", headers={"authorization": "Basic YTpi"})
    assert basic.status_code == 401
    assert 'error="invalid_request"' in basic.headers["www-authenticate"]


def test_token_in_query_string_is_refused(gw: GatewayHarness) -> None:
    """RFC 6750 §5.3: bearer tokens do not belong in URLs."""
    token = gw.mint(scope=READ)
    answer = gw.client.get(f"/api/orders?owner=alice&access_token={token}")
    assert answer.status_code == 400
    assert token not in answer.text
    assert not gw.events("gateway.write")


def test_token_for_another_audience_is_refused(gw: GatewayHarness) -> None:
    """RFC 9068 §4: the audience must be this resource server's."""
    token = gw.mint(scope=READ, audience=("https://elsewhere.example",))
    answer = gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token))
    assert answer.status_code == 401


def test_verified_tokens_are_cached_but_revocation_wins(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    token = gw.mint(scope=READ)
    for _ in range(3):
        ok = gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token))
        assert ok.status_code == 200
    assert len(gw.runtime.gateway.services.authenticator._cache) == 1  # type: ignore[union-attr]
    claims = _internal_claims(gw, recorder.last.headers["authorization"])
    gw.call(gw.runtime.auth.access.deny, [(claims["jti"], 0.0)], "test")  # internal: no effect
    gw.call(gw.runtime.auth.access.deny, [(_jti(token), gw.runtime.clock.now() + 60)], "test")
    assert gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token)).status_code == 401


def _jti(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return str(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


# --- function-level authorization ----------------------------------------------------------


def test_scopes_and_clients(gw: GatewayHarness) -> None:
    no_scope = gw.client.get("/api/orders?owner=alice", headers=gw.bearer(gw.mint()))
    assert no_scope.status_code == 403
    # RFC 6750 §3.1: insufficient_scope names the scope needed.
    assert no_scope.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="orders:read"'
    )
    other_app = gw.mint(scope=READ, client_id="partner")
    answer = gw.client.get("/api/orders?owner=alice", headers=gw.bearer(other_app))
    assert answer.status_code == 403
    any_of = gw.mint(scope=("orders:admin",))
    assert gw.client.get("/api/orders/7", headers=gw.bearer(any_of)).status_code != 403
    refusal = gw.events("gateway.request.refused")[0]
    assert refusal["policy"] == "list-orders"
    assert refusal["actor"] == "user:alice"
    assert refusal["details"]["reason"] == "scope"


def test_step_up_challenge(gw: GatewayHarness, now: FixedClock) -> None:
    """RFC 9470 §3: too weak or too old an authentication gets a challenge to step up."""
    weak = gw.mint(scope=("orders:write",), acr=ACR_PASSWORD, auth_time=now.now())
    answer = gw.client.post("/api/payments", json={}, headers=gw.bearer(weak))
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert f'acr_values="{ACR_MFA}"' in challenge
    assert 'max_age="300"' in challenge

    stale = gw.mint(scope=("orders:write",), acr=ACR_MFA, auth_time=now.now() - 301)
    assert gw.client.post("/api/payments", json={}, headers=gw.bearer(stale)).status_code == 401
    fresh = gw.mint(scope=("orders:write",), acr=ACR_MFA, auth_time=now.now() - 10)
    assert gw.client.post("/api/payments", json={}, headers=gw.bearer(fresh)).status_code == 200


# --- object-level authorization -------------------------------------------------------------


def test_query_parameter_bound_to_subject(gw: GatewayHarness) -> None:
    token = gw.mint("alice", scope=READ)
    assert gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token)).status_code == 200
    for query in ("owner=bob", "", "owner=alice&owner=bob", "owner=ALICE"):
        answer = gw.client.get(f"/api/orders?{query}", headers=gw.bearer(token))
        assert answer.status_code == 404, query
    refused = gw.events("gateway.request.refused")[-1]
    assert refused["details"]["reason"] == "parameter does not match the caller"


def test_response_owner_withholds_other_users_objects(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    token = gw.mint("alice", scope=READ)
    recorder.answers["/orders/1"] = Answer(body={"id": 1, "owner": "alice", "card": "4111"})
    recorder.answers["/orders/2"] = Answer(body={"id": 2, "owner": "bob", "card": "5500"})
    mine = gw.client.get("/api/orders/1", headers=gw.bearer(token))
    assert mine.status_code == 200
    assert mine.json() == {"id": 1, "owner": "alice"}  # "card" is not in the allowlist
    theirs = gw.client.get("/api/orders/2", headers=gw.bearer(token))
    assert theirs.status_code == 404
    assert "5500" not in theirs.text
    refusal = gw.events("gateway.request.refused")[-1]
    assert refusal["target"] == "2"
    assert "5500" not in orjson.dumps(refusal).decode()


def test_ownership_look_up(gw: GatewayHarness, recorder: Recorder) -> None:
    token = gw.mint("alice", scope=("orders:write",))
    recorder.answers["/orders/5/owner"] = Answer(body={"owner": "bob"})
    recorder.answers["/orders/6/owner"] = Answer(body={"owner": "alice"})
    recorder.answers["/orders/7/owner"] = Answer(status=404, body={})
    body = {"note": "x"}
    assert gw.client.patch("/api/orders/5", json=body, headers=gw.bearer(token)).status_code == 404
    assert recorder.last.method == "GET"  # the PATCH never reached the upstream
    assert gw.client.patch("/api/orders/7", json=body, headers=gw.bearer(token)).status_code == 404
    ok = gw.client.patch("/api/orders/6", json=body, headers=gw.bearer(token))
    assert ok.status_code == 200
    assert recorder.last.method == "PATCH"
    write = gw.events("gateway.write")[-1]
    assert write["target"] == "6"
    assert write["policy"] == "update-order"
    assert write["actor"] == "user:alice"
    assert "note" not in orjson.dumps(write).decode()


# --- input validation -----------------------------------------------------------------------


@pytest.fixture
def writer(gw: GatewayHarness, recorder: Recorder) -> dict[str, str]:
    recorder.answers["/orders/6/owner"] = Answer(body={"owner": "alice"})
    return gw.bearer(gw.mint("alice", scope=("orders:write",)))


def test_validation_errors_point_without_echoing(
    gw: GatewayHarness, writer: dict[str, str]
) -> None:
    hostile = "<script>alert(1)</script>"
    answer = gw.client.patch(
        "/api/orders/6", json={"note": hostile, "qty": "qqzzy", hostile: 1}, headers=writer
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert hostile not in answer.text
    assert "qqzzy" not in answer.text
    errors = answer.json()["errors"]
    assert {"pointer": "/qty", "detail": "must be of type integer"} in errors
    assert {"pointer": "/note", "detail": "must have at most this many characters: 20"} in errors
    # The invented key is not repeated: the pointer names its parent.
    assert {"pointer": "", "detail": "is not an allowed property"} in errors


def test_body_limits(gw: GatewayHarness, writer: dict[str, str]) -> None:
    wrong_type = gw.client.patch(
        "/api/orders/6", content=b"note=x", headers={**writer, "content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    not_json = gw.client.patch(
        "/api/orders/6", content=b"{", headers={**writer, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    deep = gw.client.patch("/api/orders/6", json={"note": [[[[["x"]]]]]}, headers=writer)
    assert deep.status_code == 400
    assert "nested deeper" in deep.json()["detail"]
    large = gw.client.patch("/api/orders/6", json={"note": "x" * 4000}, headers=writer)
    assert large.status_code == 413


# --- upstream credentials ---------------------------------------------------------------------


def test_app_token_is_exchanged_for_an_internal_token(
    gw: GatewayHarness, recorder: Recorder, now: FixedClock
) -> None:
    """RFC 8693 §2.2 and §4.1: audience, narrowed scopes, act naming the app."""
    token = gw.mint("alice", scope=("orders:read", "orders:write", "profile"))
    answer = gw.client.get(
        "/api/orders?owner=alice",
        headers={
            **gw.bearer(token),
            "cookie": "session=abc",
            "x-forwarded-for": "6.6.6.6",
            "x-custom": "dropped",
            "accept-language": "fr",
        },
    )
    assert answer.status_code == 200
    seen = recorder.last
    assert seen.raw_path == b"/v2/orders"
    assert seen.query == b"owner=alice"
    assert token not in str(seen.headers)
    assert "cookie" not in seen.headers
    assert "x-custom" not in seen.headers
    assert seen.headers["accept-language"] == "fr"
    assert seen.headers["x-forwarded-for"] != "6.6.6.6"
    assert seen.headers["x-request-id"] == answer.headers["x-request-id"]
    claims = _internal_claims(gw, seen.headers["authorization"])
    assert claims["aud"] == "https://orders.internal"
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "bastion-gateway"
    assert claims["act"] == {"sub": "mobile", "client_id": "mobile"}
    assert claims["scope"] == "orders:read"
    assert int(claims["exp"]) - int(claims["iat"]) <= 60  # type: ignore[call-overload]

    # Cached per subject: the next request carries the same internal token ...
    gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token))
    assert recorder.last.headers["authorization"] == seen.headers["authorization"]
    # ... until it is close to its end.
    now.advance(55)
    gw.client.get("/api/orders?owner=alice", headers=gw.bearer(token))
    assert recorder.last.headers["authorization"] != seen.headers["authorization"]


def test_static_credential_and_public_route(gw: GatewayHarness, recorder: Recorder) -> None:
    answer = gw.client.get("/api/catalogue/lamp")
    assert answer.status_code == 200
    assert recorder.last.headers["x-api-key"] == "legacy-key-0123456789"
    assert "authorization" not in recorder.last.headers


# --- the upstream's answer ---------------------------------------------------------------------


def test_revealing_headers_are_removed(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.default = Answer(
        headers=[
            ("connection", "x-internal-route"),
            ("x-internal-route", "db-3"),
            ("keep-alive", "timeout=5"),
            ("location", "http://10.0.0.7:8080/catalogue/lamp"),
            ("x-powered-by", "PHP/5.4"),
            ("x-aspnet-version", "4.0"),
            ("set-cookie", "track=1"),
            ("x-debug-token", "abc"),
            ("etag", '"v1"'),
        ]
    )
    answer = gw.client.get("/api/catalogue/lamp")
    for name in (
        "x-powered-by",
        "x-aspnet-version",
        "set-cookie",
        "x-debug-token",
        "server",
        "x-internal-route",  # named in Connection: hop-by-hop (RFC 9110 §7.6.1)
        "keep-alive",
        "location",  # absolute: it would name the upstream's host
    ):
        assert name not in answer.headers, name
    assert answer.headers["etag"] == '"v1"'


def test_upstream_failures_are_generic(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.answers["/crash"] = Answer(
        status=500, body={"trace": "Traceback: db.py line 42 password=hunter2"}
    )
    crash = gw.client.get("/api/crash")
    assert crash.status_code == 502
    assert "hunter2" not in crash.text
    assert "Traceback" not in crash.text
    assert crash.json()["correlation_id"] == crash.headers["x-request-id"]

    down = gw.client.get("/api/down")
    assert down.status_code == 502
    assert "127.0.0.1" not in down.text

    recorder.answers["/catalogue/slow"] = Answer(delay=2.0)
    slow = gw.client.get("/api/catalogue/slow")
    assert slow.status_code == 504


# --- CORS ---------------------------------------------------------------------------------------


def test_cors_only_where_declared(gw: GatewayHarness) -> None:
    allowed = gw.client.get("/api/catalogue/lamp", headers={"origin": "https://shop.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert allowed.headers["access-control-expose-headers"] == "x-request-id"
    other = gw.client.get("/api/catalogue/lamp", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    token = gw.mint(scope=READ)
    undeclared = gw.client.get(
        "/api/orders?owner=alice", headers={**gw.bearer(token), "origin": "https://shop.example"}
    )
    assert "access-control-allow-origin" not in undeclared.headers

    preflight = gw.client.options(
        "/api/catalogue/lamp",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "GET"
    for origin, path in (
        ("https://evil.example", "/api/catalogue/lamp"),
        ("https://shop.example", "/api/orders"),
    ):
        refused = gw.client.options(
            path, headers={"origin": origin, "access-control-request-method": "GET"}
        )
        assert refused.status_code == 404
        assert "access-control-allow-origin" not in refused.headers


# --- no open proxy, no path tricks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/catalogue/%2e%2e",
        "/api/catalogue/..%2Fadmin",
        "/api/catalogue/a%2Fb",
        "/api/catalogue/a%5Cb",
        "/api/catalogue/%00",
        "/api/catalogue/%ff",
        "/api/catalogue/..",
    ],
)
def test_encoded_traversal_is_refused(gw: GatewayHarness, recorder: Recorder, path: str) -> None:
    before = len(recorder.seen)
    answer = gw.client.get(path)
    assert answer.status_code == 404
    assert len(recorder.seen) == before


def test_parameters_are_re_encoded(gw: GatewayHarness, recorder: Recorder) -> None:
    answer = gw.client.get("/api/catalogue/a%20b%3Fx=1%23y")
    assert answer.status_code == 200
    assert recorder.last.raw_path == b"/catalogue/a%20b%3Fx%3D1%23y"


def test_absolute_form_and_host_tricks_cannot_choose_the_upstream(
    tmp_path: Path, recorder: Recorder, environ: dict[str, str]
) -> None:
    """RFC 9112 §3.2.2: an absolute-form target or a Host header must not pick the host."""
    import asyncio
    import socket

    from bastion import wiring
    from bastion.config import load_settings
    from bastion.web.app import build_app
    from tests.conftest import write_config

    with serve_in_thread(recorder) as url:
        body = CONFIG.format(url=url, closed=free_port(), mfa=ACR_MFA)
        env = {**environ, "LEGACY_KEY": "legacy-key-0123456789"}
        settings = load_settings(write_config(tmp_path, body), env)
        asyncio.run(schema.migrate(settings))
        app = build_app(settings, lambda: wiring.open_runtime(settings, environ=env))
        with serve_in_thread(app, lifespan="on") as bastion_url:
            port = int(bastion_url.rsplit(":", 1)[1])
            requests = [
                b"GET http://169.254.169.254/api/catalogue/lamp HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /api/catalogue/lamp HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
                b"GET //169.254.169.254/api/catalogue/lamp HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /api/catalogue/@169.254.169.254 HTTP/1.1\r\nHost: x\r\n\r\n",
            ]
            for raw in requests:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(raw)
                    status = sock.recv(65536).split(b"\r\n", 1)[0]
                assert status.split()[1] in (b"200", b"400", b"404"), raw
            # Whatever was answered, every request that reached an upstream reached ours.
            assert all(s.raw_path.startswith(b"/catalogue/") for s in recorder.seen)
            direct = httpx.get(f"{bastion_url}/api/catalogue/lamp")
            assert direct.status_code == 200


def test_query_bytes_are_passed_encoded(gw: GatewayHarness, recorder: Recorder) -> None:
    """RFC 3986 §3.4: whatever the app sent, the upstream gets a well-formed query."""
    answer = gw.client.get("/api/catalogue/lamp?q=caf%C3%A9&tag=a+b&x=%2F")
    assert answer.status_code == 200
    assert recorder.last.query == b"q=caf%C3%A9&tag=a+b&x=%2F"


def test_oversized_answers_are_refused(gw: GatewayHarness, recorder: Recorder) -> None:
    big = orjson.dumps({"a": "x" * 2000})
    recorder.answers["/catalogue/big"] = Answer(
        raw=big, headers=[("content-length", str(len(big)))]
    )
    assert gw.client.get("/api/tiny/shaped").status_code == 502
    assert gw.client.get("/api/tiny/streamed").status_code == 502
    small = orjson.dumps({"a": 1, "b": 2})
    recorder.answers["/catalogue/big"] = Answer(raw=small)
    assert gw.client.get("/api/tiny/shaped").json() == {"a": 1}
    assert gw.client.get("/api/tiny/streamed").json() == {"a": 1, "b": 2}


def test_internal_token_follows_the_sign_in_level(
    gw: GatewayHarness, recorder: Recorder, now: FixedClock
) -> None:
    """A password-level token must not ride on an internal token minted for MFA."""
    strong = gw.mint("alice", scope=READ, acr=ACR_MFA, auth_time=now.now())
    weak = gw.mint("alice", scope=READ, acr=ACR_PASSWORD, auth_time=now.now() - 86_400)
    gw.client.get("/api/orders?owner=alice", headers=gw.bearer(strong))
    first = _internal_claims(gw, recorder.last.headers["authorization"])
    gw.client.get("/api/orders?owner=alice", headers=gw.bearer(weak))
    second = _internal_claims(gw, recorder.last.headers["authorization"])
    assert first["acr"] == ACR_MFA
    assert second["acr"] == ACR_PASSWORD
    assert second["auth_time"] == int(now.now() - 86_400)


def test_semicolons_cannot_smuggle_parameters(gw: GatewayHarness, recorder: Recorder) -> None:
    token = gw.mint("alice", scope=READ)
    answer = gw.client.get("/api/orders?owner=alice&tag=x;owner=bob", headers=gw.bearer(token))
    assert answer.status_code == 200
    assert recorder.last.query == b"owner=alice&tag=x%3Bowner=bob"


def test_upstream_rejecting_our_credential_is_a_gateway_failure(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    recorder.answers["/catalogue/locked"] = Answer(
        status=401, headers=[("www-authenticate", 'Bearer realm="internal"')]
    )
    answer = gw.client.get("/api/catalogue/locked")
    assert answer.status_code == 502
    assert "internal" not in answer.headers.get("www-authenticate", "")


def test_locations_stay_relative(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.default = Answer(
        headers=[
            ("content-location", "https://10.0.0.7/catalogue/lamp"),
            ("location", "//internal:8443/x"),
            ("date", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ]
    )
    answer = gw.client.get("/api/catalogue/lamp")
    assert answer.status_code == 200
    assert "content-location" not in answer.headers
    assert "location" not in answer.headers
    assert "2001" not in answer.headers.get("date", "")
    recorder.default = Answer(headers=[("location", "/catalogue/lamp2")])
    assert gw.client.get("/api/catalogue/lamp").headers["location"] == "/catalogue/lamp2"


def test_empty_and_scalar_answers_on_shaped_routes(gw: GatewayHarness, recorder: Recorder) -> None:
    recorder.answers["/catalogue/big"] = Answer(status=204, raw=b"")
    empty = gw.client.get("/api/tiny/shaped")
    assert empty.status_code == 204
    assert empty.content == b""
    recorder.answers["/catalogue/big"] = Answer(
        raw=b'"internal-build-42"', headers=[("etag", '"a"')]
    )
    scalar = gw.client.get("/api/tiny/shaped")
    assert scalar.json() is None
    assert "etag" not in scalar.headers  # it described the unshaped body


def test_the_validated_body_is_what_goes_upstream(
    gw: GatewayHarness, writer: dict[str, str], recorder: Recorder
) -> None:
    """RFC 8259 §4: duplicate names are read differently by different parsers."""
    raw = b'{"note": "ok", "note": "' + b"x" * 50 + b'"}'
    answer = gw.client.patch(
        "/api/orders/6", content=raw, headers={**writer, "content-type": "application/json"}
    )
    assert answer.status_code == 400  # the last value wins here, and it is too long
    raw = b'{"note": "' + b"x" * 50 + b'", "note": "ok"}'
    answer = gw.client.patch(
        "/api/orders/6", content=raw, headers={**writer, "content-type": "application/json"}
    )
    assert answer.status_code == 200
    assert recorder.last.body == b'{"note":"ok"}'


def test_declared_oversized_bodies_are_refused_and_audited(
    gw: GatewayHarness, writer: dict[str, str]
) -> None:
    answer = gw.client.patch(
        "/api/orders/6",
        content=b"{}",
        headers={**writer, "content-type": "application/json", "content-length": "999999999"},
    )
    assert answer.status_code == 413
    assert gw.events("gateway.request.refused")[-1]["details"]["reason"] == "BodyTooLarge"


def test_cors_fields_appear_once_on_refusals_too(gw: GatewayHarness, recorder: Recorder) -> None:
    """Fetch §3.2.5: a duplicated Access-Control-Allow-Origin fails the CORS check."""
    origin = {"origin": "https://shop.example"}
    recorder.answers["/catalogue/broken"] = Answer(status=500)
    for path in ("/api/catalogue/lamp", "/api/catalogue/broken"):
        answer = gw.client.get(path, headers=origin)
        values = answer.headers.get_list("access-control-allow-origin")
        assert values == ["https://shop.example"], path


def test_recent_path_matches_are_kept_bounded_and_change_nothing(
    gw: GatewayHarness, recorder: Recorder
) -> None:
    """``Gateway._matched``: a path asked for again is matched from a bounded cache; the
    parameters are each request's own, a refused path is never kept, and a long path is
    matched in full."""
    gateway = gw.runtime.gateway
    assert gateway is not None
    matched = gateway._matched
    assert matched.cache_info().maxsize == MATCH_CACHE_SIZE
    matched.cache_clear()
    for _ in range(3):
        answer = gw.client.get("/api/catalogue/a%20b%3Fx=1%23y")
        assert answer.status_code == 200
        assert recorder.last.raw_path == b"/catalogue/a%20b%3Fx%3D1%23y"
    assert (matched.cache_info().hits, matched.cache_info().misses) == (2, 1)
    found = matched("GET", b"/api/catalogue/a%20b%3Fx=1%23y")
    assert found is not None
    route, pairs = found
    assert route.label == "catalogue"
    assert dict(pairs) == {"item": "a b?x=1#y"}
    # A refused path raises each time and is never kept.
    for _ in range(2):
        assert gw.client.get("/api/catalogue/a%2Fb").status_code == 404
    assert matched.cache_info().currsize == 1
    # A path longer than what is kept is matched in full, with the same outcome.
    long = "/api/catalogue/" + "x" * MATCH_CACHE_PATH_BYTES
    assert gw.client.get(long).status_code == 200
    assert recorder.last.raw_path == b"/catalogue/" + b"x" * MATCH_CACHE_PATH_BYTES
    assert matched.cache_info().currsize == 1
