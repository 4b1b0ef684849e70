"""The HTTP shell: security headers, problem+json errors, health, readiness, JWKS, body limits."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bastion import wiring
from bastion.config import Settings
from bastion.errors import StoreUnavailable
from bastion.web.app import build_app

INTERNAL = "/srv/secret/path.py line 42: password=hunter2"


async def explode(_request: Request) -> Response:
    raise RuntimeError(INTERNAL)


async def store_down(_request: Request) -> Response:
    raise StoreUnavailable("database", INTERNAL)


async def echo_length(request: Request) -> Response:
    return Response(str(len(await request.body())))


def client_for(settings: Settings, base_url: str = "http://testserver") -> TestClient:
    app = build_app(
        settings,
        lambda: wiring.open_runtime(settings),
        extra_routes=lambda _runtime: [
            Route("/explode", explode),
            Route("/store-down", store_down),
            Route("/echo", echo_length, methods=["POST"]),
        ],
    )
    return TestClient(app, base_url=base_url, raise_server_exceptions=False)


@pytest.fixture
def client(migrated_settings: Settings) -> Iterator[TestClient]:
    with client_for(migrated_settings) as test_client:
        yield test_client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """RFC 9457 §3: type, title, status; ours always adds the correlation id."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    assert body["correlation_id"] == response.headers["x-request-id"]
    return body


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_security_headers_on_every_response(client: TestClient) -> None:
    for response in (client.get("/healthz"), client.get("/nope"), client.get("/explode")):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "server" not in headers
        assert "strict-transport-security" not in headers, "HSTS over plain HTTP is meaningless"


def test_hsts_over_tls(migrated_settings: Settings) -> None:
    """RFC 6797 §7.2: HSTS is sent over secure transport only."""
    with client_for(migrated_settings, base_url="https://testserver") as tls_client:
        hsts = tls_client.get("/healthz").headers["strict-transport-security"]
    assert hsts == "max-age=31536000; includeSubDomains"


def test_hsts_behind_a_declared_tls_proxy(migrated_settings: Settings) -> None:
    server = migrated_settings.server.model_copy(
        update={"trusted_proxies": (ipaddress.ip_network("10.0.0.0/8"),)}
    )
    behind_proxy = migrated_settings.model_copy(update={"server": server})
    app = build_app(behind_proxy, lambda: wiring.open_runtime(behind_proxy))
    with TestClient(app, client=("10.1.2.3", 40000)) as proxied:
        assert "strict-transport-security" in proxied.get("/healthz").headers


def test_unknown_path_is_a_problem(client: TestClient) -> None:
    body = assert_problem(client.get("/../../etc/passwd"), 404)
    assert "passwd" not in str(body)


def test_wrong_method_is_a_problem_with_allow(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


def test_unhandled_error_reveals_nothing(client: TestClient) -> None:
    response = client.get("/explode")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "correlation id" in body["detail"]


def test_store_unavailable_is_503_with_retry_after(client: TestClient) -> None:
    response = client.get("/store-down")
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert body["type"] == "urn:bastion:problem:store-unavailable"
    assert "hunter2" not in response.text


def test_declared_body_over_limit_is_413(client: TestClient, migrated_settings: Settings) -> None:
    limit = migrated_settings.server.max_body_bytes
    response = client.post("/echo", content=b"x" * (limit + 1))
    assert_problem(response, 413)
    assert client.post("/echo", content=b"x" * limit).text == str(limit)


def test_streamed_body_over_limit_is_413(client: TestClient, migrated_settings: Settings) -> None:
    """A chunked body has no Content-Length; the limit is enforced while reading."""
    limit = migrated_settings.server.max_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1024 + 2):
            yield b"y" * 1024

    assert_problem(client.post("/echo", content=chunks()), 413)


def test_malformed_content_length_is_400(client: TestClient) -> None:
    response = client.post("/echo", content=b"x", headers={"content-length": "abc"})
    assert_problem(response, 400)


def test_correlation_ids_are_unique(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_readyz_when_stores_answer(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "hot_state": "ok"}}


def test_jwks_publishes_public_keys_only(client: TestClient) -> None:
    """RFC 7517 §5: a JWK Set; §8.5 media type; no private members (RFC 7518 §6.2.2.1)."""
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert len(keys) == 1
    for jwk in keys:
        assert {"d", "p", "q", "dp", "dq", "qi", "k"}.isdisjoint(jwk)
        assert {"kid", "kty", "alg", "use", "crv", "x"} <= set(jwk)
    assert "PRIVATE" not in response.text
