"""Rate limiting over real hot state: Redis shared by gateways, Redis cut off mid-run
(local fallback or closed), and the default limits on Bastion's own endpoints."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from bastion.clock import FixedClock
from tests.gateway.conftest import GatewayHarness, gateway_app
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via

ROUTE = """
issuer = "http://127.0.0.1:8000"
[hot_state]
key_prefix = "{prefix}:"
[guards]
rate_limit_store_failure = "{mode}"
[[gateway.upstreams]]
name = "api"
url = "{url}"
breaker = {{ consecutive_failures = 2, open_for = "30s" }}
retries = {{ attempts = 0 }}
[[gateway.routes]]
methods = ["GET"]
path = "/search"
upstream = "api"
auth = "bastion"
limits = [{{ name = "per-user", by = ["user"], rate = 2, window = "1h" }}]
[[gateway.routes]]
methods = ["GET"]
path = "/flaky"
upstream = "api"
auth = "public"
[[gateway.routes]]
methods = ["GET"]
path = "/open"
upstream = "api"
auth = "public"
limits = [{{ name = "per-ip", by = ["ip"], rate = 2, window = "1h" }}]
"""


@pytest.fixture
def upstreams() -> InProcess:
    """One in-process upstream that every gateway of a test reaches (Redis is the point)."""
    return InProcess()


@pytest.fixture
def upstream(upstreams: InProcess) -> tuple[str, Recorder]:
    recorder = Recorder()
    return upstreams.serve(recorder), recorder


def _harness(
    tmp_path: Path,
    name: str,
    upstreams: InProcess,
    url: str,
    env: dict[str, str],
    prefix: str,
    mode: str = "local",
) -> AbstractContextManager[GatewayHarness]:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    body = ROUTE.format(url=url, prefix=prefix, mode=mode)
    return gateway_app(directory, body, env, clock=FixedClock(1_800_000_000), transport=upstreams)


def test_two_gateways_share_counters_and_breakers(
    tmp_path: Path,
    upstreams: InProcess,
    upstream: tuple[str, Recorder],
    environ: dict[str, str],
    redis_url: str,
    postgres_url: str,
) -> None:
    url, recorder = upstream
    env = {**environ, "BASTION_REDIS_URL": redis_url, "BASTION_DATABASE_URL": postgres_url}
    prefix = unique_name("shared")
    with (
        _harness(tmp_path, "a", upstreams, url, env, prefix) as one,
        _harness(tmp_path, "b", upstreams, url, env, prefix) as two,
    ):
        token = one.bearer(one.mint("alice"))
        assert one.client.get("/api/search", headers=token).status_code == 200
        assert two.client.get("/api/search", headers=token).status_code == 200
        # The third request is refused wherever it lands: one shared counter.
        assert one.client.get("/api/search", headers=token).status_code == 429
        assert two.client.get("/api/search", headers=token).status_code == 429

        recorder.answers["/flaky"] = Answer(status=500)
        assert one.client.get("/api/flaky").status_code == 502
        assert one.client.get("/api/flaky").status_code == 502
        seen = recorder.count(b"/flaky")
        # The first gateway opened the breaker; the second adopts it at its next look
        # (at most a second later) without trying the upstream itself.
        clock = two.runtime.clock
        assert isinstance(clock, FixedClock)
        clock.advance(1.1)
        assert two.client.get("/api/flaky").status_code == 503
        assert recorder.count(b"/flaky") == seen


@pytest.mark.parametrize(("mode", "status"), [("local", 200), ("closed", 503)])
def test_redis_cut_off_mid_run(
    tmp_path: Path,
    upstreams: InProcess,
    upstream: tuple[str, Recorder],
    environ: dict[str, str],
    proxies: tuple[TcpProxy, TcpProxy],
    redis_url: str,
    mode: str,
    status: int,
) -> None:
    """ "local" keeps limiting in this process; "closed" refuses (503). Either way the
    change is audited once."""
    url, _recorder = upstream
    _, hot = proxies
    env = {**environ, "BASTION_REDIS_URL": via(redis_url, hot)}
    with _harness(tmp_path, "c", upstreams, url, env, unique_name("cut"), mode) as gw:
        assert gw.client.get("/api/open").status_code == 200
        hot.stop()
        answers = [gw.client.get("/api/open").status_code for _ in range(3)]
        if mode == "local":
            # A fresh local counter: the burst of 2 again, then refusals.
            assert answers == [200, 200, 429]
        else:
            assert answers == [status] * 3
        hot.start()
    events = gw.events("guards.ratelimit.degraded")
    assert len(events) == 1
    assert events[0]["details"]["mode"] == mode


def test_default_limits_on_the_token_endpoint(
    tmp_path: Path, upstreams: InProcess, upstream: tuple[str, Recorder], environ: dict[str, str]
) -> None:
    url, _ = upstream
    body = ROUTE.format(url=url, prefix="t", mode="local") + (
        '[[guards.endpoints.token]]\nname = "token"\nrate = 3\nwindow = "1m"\n'
    )
    clock = FixedClock(1_800_000_000)
    with gateway_app(tmp_path, body, environ, clock=clock, transport=upstreams) as gw:
        answers = [gw.client.post("/token", data={"grant_type": "x"}) for _ in range(4)]
        # Refused for a missing client (RFC 6749 §5.2), but counted all the same.
        assert [a.status_code for a in answers[:3]] == [401, 401, 401]
        assert answers[0].headers["ratelimit-policy"] == '"token";q=3;w=60'
        refused = answers[3]
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["violated-policies"] == ["token"]
        assert int(refused.headers["retry-after"]) >= 1
