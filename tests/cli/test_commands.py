"""The CLI as a script would use it: exit codes, --json output, refusals that change nothing."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from bastion.config import DEV_MASTER_KEY_FILENAME, decode_master_key
from tests.conftest import write_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env={"BASTION_CONFIG": "", **(env or {})})


def as_json(result: Result) -> Any:
    return orjson.loads(result.stdout)


def test_check_clean_and_broken(tmp_path: Path, config: Path) -> None:
    assert run(["check", "-c", str(config)]).exit_code == 0
    broken = tmp_path / "broken.toml"
    broken.write_text('[server]\nport = 0\ncolour = "red"\n')
    result = run(["check", "-c", str(broken)])
    assert result.exit_code == 2
    assert "server.port (line 2)" in result.stderr
    assert "server.colour (line 3): unknown key" in result.stderr
    data = as_json(run(["check", "-c", str(broken), "--json"]))
    assert data["ok"] is False
    assert {p["path"] for p in data["problems"]} == {"server.port", "server.colour"}


def test_check_warns_about_a_refresh_grace_window(tmp_path: Path) -> None:
    """RFC 9700 §4.14.2: a grace window is an opt-in trade-off, so it is pointed out."""
    graced = write_config(tmp_path, '[oauth]\nrefresh_grace = "5s"\n')
    result = run(["check", "-c", str(graced)])
    assert result.exit_code == 0
    assert "oauth.refresh_grace" in result.stderr
    assert run(["check", "-c", str(graced), "--strict"]).exit_code == 2


def test_check_warns_in_production_when_public_clients_may_skip_dpop(
    tmp_path: Path, master_key_b64: str
) -> None:
    """RFC 9449: bearer tokens for apps are the weaker choice in production."""
    base = (
        'environment = "production"\nissuer = "https://auth.example.com"\n'
        '[server]\ntrusted_proxies = ["10.0.0.0/8"]\n'
    )
    env = {"BASTION_MASTER_KEY": master_key_b64}
    bearer = write_config(tmp_path, base)
    result = run(["check", "-c", str(bearer)], env)
    assert result.exit_code == 0, result.stderr
    assert "oauth.dpop.require_for_public_clients" in result.stderr
    bound = write_config(tmp_path, base + "[oauth.dpop]\nrequire_for_public_clients = true\n")
    assert "require_for_public_clients" not in run(["check", "-c", str(bound)], env).stderr
    development = write_config(tmp_path, "")
    assert "require_for_public_clients" not in run(["check", "-c", str(development)]).stderr


def test_check_reads_bastion_config_from_environment(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("nonsense = 1\n")
    result = run(["check"], env={"BASTION_CONFIG": str(broken)})
    assert result.exit_code == 2
    assert "nonsense" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run(["check", "-c", str(tmp_path / "absent.toml")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_db_status_and_upgrade(config: Path, master_key_b64: str) -> None:
    env = {"BASTION_MASTER_KEY": master_key_b64}
    assert run(["db", "status", "-c", str(config)], env).exit_code == 3
    upgraded = run(["db", "upgrade", "-c", str(config), "--json"], env)
    assert upgraded.exit_code == 0, upgraded.output
    assert as_json(upgraded)["applied"][0] == "0001"
    assert as_json(run(["db", "upgrade", "-c", str(config), "--json"], env))["applied"] == []
    status = run(["db", "status", "-c", str(config), "--json"], env)
    assert status.exit_code == 0
    assert as_json(status)["up_to_date"] is True


def test_db_upgrade_draws_no_progress_bar_when_stderr_is_not_a_terminal(config: Path) -> None:
    """A log file or CI output got the bar's final frame; the summary line says it all."""
    result = run(["db", "upgrade", "-c", str(config)])
    assert result.exit_code == 0
    assert result.stderr == ""
    database = config.parent / "data" / "bastion.db"
    assert result.stdout.startswith(f"SQLite database {database} is at revision ")


def test_the_development_key_warning_says_its_message_on_its_first_line(config: Path) -> None:
    """Its first line was a bare "WARNING bastion:", which is all a one-line view shows."""
    run(["db", "upgrade", "-c", str(config)])
    result = run(["keys", "rotate", "-c", str(config)])
    assert result.exit_code == 0
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    key_file = config.parent / "data" / DEV_MASTER_KEY_FILENAME
    assert warning.startswith(f"WARNING bastion: DEVELOPMENT MASTER KEY generated at {key_file}")
    assert "BASTION_MASTER_KEY" in warning


def test_key_times_are_iso_8601_in_utc(config: Path, master_key_b64: str) -> None:
    env = {"BASTION_MASTER_KEY": master_key_b64}
    run(["db", "upgrade", "-c", str(config)], env)
    key = as_json(run(["keys", "rotate", "-c", str(config), "--json"], env))
    assert key["created_at"].endswith("Z")
    assert datetime.fromisoformat(key["activates_at"]).tzinfo is not None
    table = run(["keys", "list", "-c", str(config)], env).stdout
    assert table.splitlines()[0].split() == ["KID", "STATE", "ACTIVATES"]
    assert f"{key['kid']}  active  {key['activates_at']}" in table
    wide = run(["keys", "list", "--wide", "-c", str(config)], env).stdout
    assert wide.splitlines()[0].split()[:4] == ["KID", "ALG", "STATE", "SIGNING"]
    assert "PUBLISHED UNTIL" in wide


def test_commands_refuse_an_unmigrated_schema(config: Path, master_key_b64: str) -> None:
    result = run(["keys", "list", "-c", str(config)], {"BASTION_MASTER_KEY": master_key_b64})
    assert result.exit_code == 3
    assert "bastion db upgrade" in result.stderr


def test_key_lifecycle_through_the_cli(config: Path, master_key_b64: str) -> None:
    env = {"BASTION_MASTER_KEY": master_key_b64}
    c = ["-c", str(config), "--json"]
    run(["db", "upgrade", *c], env)
    assert as_json(run(["keys", "list", *c], env)) == {"keys": []}

    first = as_json(run(["keys", "rotate", *c], env))
    assert first["state"] == "active", "an empty ring's first key signs at once"
    second = as_json(run(["keys", "rotate", "--alg", "Ed25519", *c], env))
    assert second["state"] == "next", "a later key is published before it signs"

    listed = as_json(run(["keys", "list", *c], env))["keys"]
    assert [(k["kid"], k["signing"]) for k in listed] == [
        (first["kid"], True),
        (second["kid"], False),
    ]

    missing = run(["keys", "retire", "no-such-kid", *c], env)
    assert missing.exit_code == 5

    retired = as_json(run(["keys", "retire", second["kid"], *c], env))
    assert retired["state"] == "retired"
    only = run(["keys", "retire", first["kid"], *c], env)
    assert only.exit_code == 4
    assert "only active signing key" in only.stdout

    audit = (config.parent / "data" / "audit.jsonl").read_text()
    assert '"action":"keys.rotate"' in audit
    assert '"action":"keys.retire"' in audit


def test_wrong_master_key_is_refused_and_ring_kept(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    run(["db", "upgrade", *c], {"BASTION_MASTER_KEY": master_key_b64})
    run(["keys", "rotate", *c], {"BASTION_MASTER_KEY": master_key_b64})
    database = config.parent / "data" / "bastion.db"
    before = database.read_bytes()
    other = "A" * 43
    result = run(["keys", "rotate", *c], {"BASTION_MASTER_KEY": other})
    assert result.exit_code == 4
    assert "wrong master key" in result.stderr
    assert database.read_bytes() == before


def test_malformed_master_key_is_a_config_error(config: Path) -> None:
    result = run(["keys", "list", "-c", str(config)], {"BASTION_MASTER_KEY": "too-short"})
    assert result.exit_code == 2
    assert "env:BASTION_MASTER_KEY" in result.stderr


def test_development_key_is_generated_once_and_never_replaced(config: Path) -> None:
    c = ["-c", str(config)]
    run(["db", "upgrade", *c])
    assert run(["keys", "rotate", *c]).exit_code == 0
    key_file = config.parent / "data" / DEV_MASTER_KEY_FILENAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run(["keys", "list", *c]).exit_code == 0, "the same key opens the ring again"

    key_file.write_text("corrupted!")
    result = run(["keys", "list", *c])
    assert result.exit_code == 4
    assert "unreadable" in result.stderr
    assert key_file.read_text() == "corrupted!"


def test_new_master_key_file(tmp_path: Path) -> None:
    out = tmp_path / "master.key"
    assert run(["keys", "new-master-key", "--out", str(out)]).exit_code == 0
    assert len(decode_master_key(out.read_text())) == 32
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before = out.read_text()
    again = run(["keys", "new-master-key", "--out", str(out)])
    assert again.exit_code == 1
    assert "refusing to overwrite" in again.output
    assert out.read_text() == before


def test_missing_development_key_with_a_filled_ring_is_refused(config: Path) -> None:
    c = ["-c", str(config)]
    run(["db", "upgrade", *c])
    assert run(["keys", "rotate", *c]).exit_code == 0
    key_file = config.parent / "data" / DEV_MASTER_KEY_FILENAME
    key_file.unlink()
    result = run(["keys", "list", *c])
    assert result.exit_code == 4
    assert "is missing" in result.stderr
    assert not key_file.exists(), "no new key may be made for a ring it cannot open"
