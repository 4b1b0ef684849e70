"""PostgreSQL or Redis going away while serving: 503 problem+json, then recovery by itself.

A TCP proxy stands between Bastion and the real server; cutting it is, for Bastion, the
server going down (connections reset, new connections refused).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bastion import wiring
from bastion.config import Settings, load_settings
from bastion.runtime import Runtime
from bastion.web.app import build_app
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via

RECOVERY_SECONDS = 15.0


def store_routes(runtime: Runtime) -> list[Route]:
    async def uses_hot_state(_request: Request) -> Response:
        count = await runtime.hot.incr("outage-test", ttl=60)
        return Response(str(count))

    async def uses_database(_request: Request) -> Response:
        await runtime.keys.load()  # reads the signing_keys table
        return Response("ok")

    return [Route("/count", uses_hot_state, methods=["POST"]), Route("/keys", uses_database)]


@pytest.fixture
def outage_client(
    proxies: tuple[TcpProxy, TcpProxy],
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    master_key_b64: str,
) -> Iterator[TestClient]:
    db_proxy, hot_proxy = proxies
    settings: Settings = load_settings(
        None,
        {
            "BASTION_MASTER_KEY": master_key_b64,
            "BASTION_DATABASE_URL": via(postgres_url, db_proxy),
            "BASTION_REDIS_URL": via(redis_url, hot_proxy),
        },
    )
    hot_state = settings.hot_state.model_copy(update={"key_prefix": f"{unique_name('t')}:"})
    settings = settings.model_copy(update={"data_dir": tmp_path, "hot_state": hot_state})

    asyncio.run(wiring.migrate(settings))
    app = build_app(
        settings,
        lambda: wiring.open_runtime(settings),
        extra_routes=store_routes,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def wait_until_ready(client: TestClient) -> dict[str, str]:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        response = client.get("/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            checks: dict[str, str] = response.json()["checks"]
            return checks
        time.sleep(0.2)


def test_database_outage_and_recovery(
    outage_client: TestClient, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    db_proxy, _ = proxies
    assert outage_client.get("/readyz").status_code == 200

    db_proxy.stop()
    response = outage_client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"] == {"database": "unavailable", "hot_state": "ok"}
    assert body["detail"] == "Unavailable: database."
    needs_database = outage_client.get("/keys")
    assert needs_database.status_code == 503
    assert needs_database.json()["type"] == "urn:bastion:problem:store-unavailable"
    # Fail static: the key ring in memory still serves the JWKS.
    assert outage_client.get("/jwks.json").status_code == 200

    db_proxy.start()
    assert wait_until_ready(outage_client) == {"database": "ok", "hot_state": "ok"}
    assert outage_client.get("/keys").status_code == 200


def test_redis_outage_and_recovery(
    outage_client: TestClient, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    _, hot_proxy = proxies
    assert outage_client.post("/count").text == "1"

    hot_proxy.stop()
    readiness = outage_client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["checks"] == {"database": "ok", "hot_state": "unavailable"}
    needs_redis = outage_client.post("/count")
    assert needs_redis.status_code == 503
    assert needs_redis.headers["content-type"] == "application/problem+json"
    assert needs_redis.json()["type"] == "urn:bastion:problem:store-unavailable"

    hot_proxy.start()
    assert wait_until_ready(outage_client) == {"database": "ok", "hot_state": "ok"}
    assert outage_client.post("/count").text == "2", "the counter survived in Redis"
