"""Stores that answer, but wrongly: a missing database, the wrong protocol on the port.

Readiness must say "unavailable" (503), never fail with a 500, and requests that need
the store get 503 problem+json.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bastion import wiring
from bastion.config import Settings, load_settings
from bastion.runtime import Runtime
from bastion.web.app import build_app
from tests.support.services import POSTGRES_URL, REDIS_URL


def store_routes(runtime: Runtime) -> list[Route]:
    async def uses_database(_request: Request) -> Response:
        await runtime.database.ping()
        return Response("ok")

    async def uses_hot_state(_request: Request) -> Response:
        await runtime.hot.incr("faults")
        return Response("ok")

    return [Route("/db", uses_database), Route("/hot", uses_hot_state)]


def serve(settings: Settings) -> TestClient:
    # No schema check and no key ring: the stores are broken from the start on purpose.
    app = build_app(
        settings,
        lambda: wiring.open_runtime(settings, require_schema=False, key_ring="none"),
        extra_routes=store_routes,
    )
    return TestClient(app, raise_server_exceptions=False)


def port_of(url: str) -> int:
    return urlsplit(url).port or 0


@pytest.fixture
def wrong_stores(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[TestClient]:
    """Redis URL pointing at PostgreSQL's port, and a database that does not exist."""
    missing_db = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    settings = load_settings(
        None,
        {
            "BASTION_DATABASE_URL": missing_db,
            "BASTION_REDIS_URL": f"redis://127.0.0.1:{port_of(POSTGRES_URL)}/0",
        },
    ).model_copy(update={"data_dir": tmp_path})
    with serve(settings) as client:
        yield client


def test_readiness_names_both_and_answers_503(wrong_stores: TestClient) -> None:
    response = wrong_stores.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "hot_state": "unavailable"}


@pytest.mark.parametrize("path", ["/db", "/hot"])
def test_requests_needing_a_broken_store_get_503(wrong_stores: TestClient, path: str) -> None:
    response = wrong_stores.get(path)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "no_such_database" not in response.text


def test_database_url_pointing_at_redis(tmp_path: Path, redis_url: str) -> None:
    settings = load_settings(
        None,
        {
            "BASTION_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port_of(REDIS_URL)}/test",
        },
    ).model_copy(
        update={
            "data_dir": tmp_path,
            "database": load_settings(None, {}).database.model_copy(
                update={"connect_timeout": 2.0}
            ),
        }
    )
    with serve(settings) as client:
        assert client.get("/readyz").json()["checks"]["database"] == "unavailable"
        assert client.get("/db").status_code == 503
