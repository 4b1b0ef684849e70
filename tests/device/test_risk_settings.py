"""Device risk settings: a route's policy naming an unknown cohort is a configuration
problem, a public route cannot have one, the step-up level must be above password; and
the limiter counts a user's refusals for the ``rate_limited`` signal."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.audit import AuditPipeline
from bastion.clock import FixedClock
from bastion.config import load_settings
from bastion.device.settings import PolicySettings
from bastion.errors import ConfigError, RateLimited
from bastion.gateway.explain import explain_route
from bastion.guards import hits
from bastion.guards.limiter import Facts, RateLimiter
from bastion.guards.settings import LimitSettings
from bastion.store.protocols import HotStore
from bastion.wiring import gateway_problems
from tests.conftest import write_config

ROUTES = """
issuer = "http://127.0.0.1:8000"
[device.cohorts.beta]
clients = ["mobile"]
[[gateway.upstreams]]
name = "api"
url = "http://127.0.0.1:9"
[[gateway.routes]]
methods = ["GET"]
path = "/known"
upstream = "api"
auth = "bastion"
device = {{ cohort = "beta" }}
[[gateway.routes]]
methods = ["GET"]
path = "/unknown"
upstream = "api"
auth = "bastion"
device = {{ cohort = "{cohort}" }}
"""


def test_a_route_policy_naming_an_unknown_cohort_is_a_problem(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    settings = load_settings(write_config(tmp_path, ROUTES.format(cohort="gamma")), environ)
    problems = gateway_problems(settings, environ)
    assert [(p.path, p.message) for p in problems] == [
        ("gateway.routes.1.device.cohort", "no cohort 'gamma' in [device.cohorts]")
    ]
    fine = load_settings(write_config(tmp_path, ROUTES.format(cohort="beta")), environ)
    assert gateway_problems(fine, environ) == []


def test_a_public_route_has_no_device_to_judge(tmp_path: Path, environ: dict[str, str]) -> None:
    body = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "api"
url = "http://127.0.0.1:9"
[[gateway.routes]]
methods = ["GET"]
path = "/open"
upstream = "api"
auth = "public"
device = {}
"""
    with pytest.raises(ConfigError, match="no token to tie to a device"):
        load_settings(write_config(tmp_path, body), environ)


def test_policy_keys_of_the_enforcement_points() -> None:
    policy = PolicySettings.model_validate({"limit_scopes": "openid", "app_unreleased": 80})
    assert policy.limit_scopes == ("openid",)
    assert policy.policy().app_unreleased == 80
    with pytest.raises(ValidationError, match="step_up_acr"):
        PolicySettings(step_up_acr="urn:bastion:acr:password")
    with pytest.raises(ValidationError, match="app_unreleased: negative points"):
        PolicySettings(app_unreleased=-1)


async def test_a_users_rate_limit_refusals_are_counted(hot_store: HotStore) -> None:
    clock = FixedClock(1_800_000_000.0)
    limiter = RateLimiter(hot_store, on_store_failure="local", audit=AuditPipeline([]), clock=clock)
    one = LimitSettings(name="per-user", by=("user",), rate=1, window=60.0)
    alice, anonymous = Facts(user="alice", route="r"), Facts(ip="192.0.2.1", route="r")
    await limiter.check("route", [one], alice)
    for _ in range(3):
        with pytest.raises(RateLimited):
            await limiter.check("route", [one], alice)
    two = [one, LimitSettings(name="by-ip", by=("ip",), rate=1, window=60.0)]
    await limiter.check("route", two[1:], anonymous)
    with pytest.raises(RateLimited):
        await limiter.check("route", two[1:], anonymous)
    with pytest.raises(RateLimited):
        await limiter.check("route", two, alice)
    # Three refusals on the single-limit path and one on the general one; a refusal
    # without a user counts for no one.
    assert await hits.recent(hot_store, "alice") == 4
    assert await hits.recent(hot_store, "bob") == 0


def test_the_risk_step_follows_dpop_and_the_assertion_and_is_only_where_asked(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    settings = load_settings(write_config(tmp_path, ROUTES.format(cohort="beta")), environ)
    gateway = settings.gateway
    judged = explain_route(gateway, settings.server.max_body_bytes, "GET /known")
    names = [name for name, _ in judged.steps]
    assert names.index("dpop") < names.index("device risk") < names.index("authorization")
    assert "device assertion" not in names  # no require_assertion on this route
    asserted = ROUTES.format(cohort="beta").replace(
        'device = { cohort = "beta" }', 'device = { cohort = "beta", require_assertion = true }'
    )
    settings = load_settings(write_config(tmp_path, asserted), environ)
    names = [n for n, _ in explain_route(settings.gateway, 1 << 20, "GET /known").steps]
    assert names.index("device assertion") + 1 == names.index("device risk")
