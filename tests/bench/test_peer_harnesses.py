"""The peer benchmarks (``bench/peers``) still fit the Bastion they run: their configuration
templates render to files Bastion loads, their scripts parse, and the store helper refuses
to drop a database that is not a benchmark's. Nothing is installed or started here."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bastion import wiring

PEERS = Path(__file__).resolve().parents[2] / "bench" / "peers"


def load_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gateway_suite(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The gateway driver, imported as the suite runs it (standard library only), with
    a one- and a two-worker count so that the B*x2 cases exist."""
    monkeypatch.setenv("BASTION_WORKERS", "1,2")
    monkeypatch.setattr(sys, "path", list(sys.path))
    return load_script("peers_gateway_suite", PEERS / "gateway" / "lib" / "suite.py")


def test_gateway_bastion_configs_load(
    gateway_suite: ModuleType, tmp_path: Path, master_key_b64: str
) -> None:
    gateway_suite.BASTION.update(dir=tmp_path, secret="bench-secret", starts=0)
    prefixes = set()
    for case in ("B1", "B1N", "B2", "B1x2", "B2x2"):
        assert case in gateway_suite.CASES
        path = gateway_suite.bastion_config(case, gateway_suite.HIGH_LIMIT)
        assert "@" not in re.sub(r"#.*", "", path.read_text())
        settings = wiring.load(path, {"BASTION_MASTER_KEY": master_key_b64})
        base, workers = gateway_suite.bastion_case(case)
        assert workers == (2 if "x" in case else 1)
        assert settings.server.port == gateway_suite.PORTS[base]
        assert settings.gateway.token_cache_size == (0 if base == "B1N" else 10000)
        assert {route.name for route in settings.gateway.routes} == {"b1", "b2"}
        prefixes.add(settings.hot_state.key_prefix)
    assert len(prefixes) == 5  # one Redis key prefix per server start


def test_gateway_cases_expand_per_worker_count(gateway_suite: ModuleType) -> None:
    assert gateway_suite.bastion_case("B1N") == ("B1N", 1)
    assert gateway_suite.bastion_case("B2x2") == ("B2", 2)
    assert gateway_suite.CASES["B2x2"]["prefix"] == gateway_suite.CASES["B2"]["prefix"]
    assert "B1x2" not in gateway_suite.DEFAULT_CASES.split(",")


def test_oauth_bastion_config_loads(tmp_path: Path, master_key_b64: str) -> None:
    template = PEERS / "oauth" / "bastion_as" / "bastion.toml.in"
    run_sh = (PEERS / "oauth" / "run.sh").read_text()
    values = {
        "PORT": "3105",
        "DATA_DIR": str(tmp_path / "data"),
        "RS_SECRET_SHA256": hashlib.sha256(b"bench-rs-secret-0123456789abcdef").hexdigest(),
        "KEY_PREFIX": "bench:run:bastion:refresh:",
    }
    rendered_by_run_sh = set(re.findall(r'-e "s#@(\w+)@#', run_sh))
    assert set(re.findall(r"@(\w+)@", template.read_text())) <= rendered_by_run_sh
    assert rendered_by_run_sh == set(values)
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    path = tmp_path / "bastion.toml"
    path.write_text(text)
    settings = wiring.load(path, {"BASTION_MASTER_KEY": master_key_b64})
    assert {c.client_id for c in settings.oauth.clients} == {"bench-native", "bench-rs"}
    # The other peers have no request-rate limits on these endpoints.
    assert not settings.guards.endpoints.token


@pytest.mark.parametrize("script", ["gateway/run.sh", "oauth/run.sh"])
def test_run_scripts_parse(script: str) -> None:
    result = subprocess.run(
        ["bash", "-n", str(PEERS / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_stores_drop_only_a_benchmark_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    stores = load_script("peers_stores", PEERS / "common" / "stores.py")
    assert stores.database_name(stores.DEFAULT_PG_URL) == "bastion_bench"
    for url in ("postgresql://postgres@127.0.0.1/test", "postgresql://h/x;drop", "postgresql://h/"):
        with pytest.raises(SystemExit):
            stores.database_name(url)
