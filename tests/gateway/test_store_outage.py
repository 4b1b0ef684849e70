"""The gateway with PostgreSQL and Redis going away: it fails closed (503) and recovers.

A TCP proxy stands between Bastion and each real server; cutting it is, for Bastion, the
server going down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via

CONFIG = """
issuer = "http://127.0.0.1:8000"
[hot_state]
key_prefix = "{prefix}:"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
methods = ["GET"]
path = "/users/{{user_id}}/notes"
upstream = "api"
auth = "bastion"
objects = {{ param_claims = {{ user_id = "sub" }} }}
[[gateway.routes]]
methods = ["GET"]
path = "/notes/{{note_id}}"
upstream = "api"
auth = "bastion"
objects = {{ owned = "note" }}
[[gateway.routes]]
methods = ["POST"]
path = "/notes"
upstream = "api"
auth = "bastion"
objects = {{ records = "note" }}
"""


@pytest.fixture
def gw(
    tmp_path: Path,
    proxies: tuple[TcpProxy, TcpProxy],
    postgres_url: str,
    redis_url: str,
    environ: dict[str, str],
    now: FixedClock,
) -> Iterator[tuple[GatewayHarness, Recorder]]:
    database, hot = proxies
    recorder = Recorder()
    env = {
        **environ,
        "BASTION_DATABASE_URL": via(postgres_url, database),
        "BASTION_REDIS_URL": via(redis_url, hot),
    }
    # The stores sit behind TCP proxies (the sockets are the point); the upstream does not.
    upstreams = InProcess()
    body = CONFIG.format(url=upstreams.serve(recorder), prefix=unique_name("gw"))
    with gateway_app(
        tmp_path, body, env, clock=now, raise_server_exceptions=False, transport=upstreams
    ) as h:
        yield h, recorder


def test_redis_outage_fails_closed(
    gw: tuple[GatewayHarness, Recorder], proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    harness, recorder = gw
    _, hot = proxies
    token = harness.mint("alice")
    assert (
        harness.client.get("/api/users/alice/notes", headers=harness.bearer(token)).status_code
        == 200
    )
    seen = len(recorder.seen)

    hot.stop()
    # The revocation denylist cannot be read: a revoked token must not slip through.
    down = harness.client.get("/api/users/alice/notes", headers=harness.bearer(token))
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert len(recorder.seen) == seen

    hot.start()
    for _ in range(50):
        answer = harness.client.get("/api/users/alice/notes", headers=harness.bearer(token))
        if answer.status_code == 200:
            break
    assert answer.status_code == 200


def test_database_outage_fails_closed_for_the_registry_only(
    gw: tuple[GatewayHarness, Recorder], proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    harness, recorder = gw
    database, _ = proxies
    token = harness.mint("alice")
    recorder.answers["/notes"] = Answer(status=201, body={"id": 9})
    assert (
        harness.client.post("/api/notes", json={}, headers=harness.bearer(token)).status_code == 201
    )
    assert (
        harness.client.get("/api/users/alice/notes", headers=harness.bearer(token)).status_code
        == 200
    )

    database.stop()
    # The registry has to be asked about an id it has not seen: 503, not a guess.
    unknown = harness.client.get("/api/notes/10", headers=harness.bearer(token))
    assert unknown.status_code == 503
    # Known owners are cached (ownership never changes), and routes that need no
    # database keep working: the verified token and the internal token are cached.
    assert harness.client.get("/api/notes/9", headers=harness.bearer(token)).status_code == 200
    assert (
        harness.client.get("/api/users/alice/notes", headers=harness.bearer(token)).status_code
        == 200
    )
    database.start()
