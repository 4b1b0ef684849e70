"""Which configuration a command used, said on stderr; commands that only look create nothing.

A read-only command pointed at the wrong place used to leave an empty SQLite database,
a data directory and an audit file behind, and then report an "empty schema" without
saying which database it had looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from bastion.config import DEV_MASTER_KEY_FILENAME
from tests.conftest import write_config

READ_ONLY = [
    ["users", "list"],
    ["users", "show", "dana"],
    ["keys", "list"],
    ["clients", "list"],
    ["clients", "show", "an-app"],
    ["db", "status"],
    ["db", "prune"],
]


def run(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, args, input=stdin, env={"BASTION_CONFIG": "", **(env or {})})


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


def config_line(result: Result) -> str:
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("config: ")]
    return line


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A config file whose database is an SQLite file in a directory that does not exist."""
    missing = tmp_path / "elsewhere" / "bastion.db"
    return write_config(tmp_path, f'[database]\nurl = "sqlite:///{missing}"\n')


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_nothing_and_name_the_database(
    nowhere: Path, args: list[str]
) -> None:
    before = files_in(nowhere.parent)
    result = run([*args, "-c", str(nowhere)])
    assert result.exit_code == 3, result.output
    assert files_in(nowhere.parent) == before, "no database, data directory or audit file"
    missing = nowhere.parent / "elsewhere" / "bastion.db"
    text = result.stdout + result.stderr
    assert f"SQLite database {missing} does not exist" in text
    assert "bastion db upgrade" in text
    assert "BASTION_CONFIG" in result.stderr
    assert "BASTION_DATABASE_URL" in result.stderr


def test_an_unmigrated_database_is_named_and_left_as_it_was(
    tmp_path: Path, master_key_b64: str
) -> None:
    """An existing but empty database: the error says which one and how to point elsewhere."""
    config = write_config(tmp_path)
    database = tmp_path / "data" / "bastion.db"
    database.parent.mkdir()
    database.touch()
    before = files_in(tmp_path)
    result = run(["users", "list", "-c", str(config), "--json"])
    assert result.exit_code == 3
    answer = orjson.loads(result.stdout)
    assert answer["message"].startswith(f"SQLite database {database} has no schema")
    assert "BASTION_DATABASE_URL" in answer["hint"]
    assert files_in(tmp_path) == before
    assert not (tmp_path / "data" / DEV_MASTER_KEY_FILENAME).exists()


def test_db_status_reads_as_a_sentence(nowhere: Path, tmp_path: Path) -> None:
    missing = run(["db", "status", "-c", str(nowhere)])
    assert missing.stdout.endswith(
        "does not exist (nothing was created); this Bastion needs "
        f"revision {head()}: run `bastion db upgrade`.\n"
    )
    (tmp_path / "fresh").mkdir()
    config = write_config(tmp_path / "fresh")
    assert run(["db", "upgrade", "-c", str(config)]).exit_code == 0
    current = run(["db", "status", "-c", str(config)])
    assert current.exit_code == 0
    database = config.parent / "data" / "bastion.db"
    assert current.stdout == f"SQLite database {database} is up to date (revision {head()}).\n"
    data = orjson.loads(run(["db", "status", "-c", str(config), "--json"]).stdout)
    assert data["up_to_date"] is True
    assert data["exists"] is True
    assert data["problem"] is None


def head() -> str:
    from bastion.store.sql.database import Database

    return Database("sqlite+aiosqlite://", create=False).head_revision()


def test_an_admin_command_that_writes_creates_no_database_either(nowhere: Path) -> None:
    """Only `bastion db upgrade` makes a database; a missing one is a wrong path."""
    before = files_in(nowhere.parent)
    result = run(
        ["users", "create", "dana", "--password-stdin", "-c", str(nowhere)],
        stdin="a long phrase for her\n",
    )
    assert result.exit_code == 3
    assert files_in(nowhere.parent) == before


# --- which configuration ---------------------------------------------------------------------


def check_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


def test_bastion_config_is_used_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    config = write_config(tmp_path / "etc")
    monkeypatch.chdir(tmp_path)
    result = run(["check", "--json"], {"BASTION_CONFIG": str(config)})
    assert check_json(result)["config"] == str(config)
    assert config_line(result) == f"config: {config} (from BASTION_CONFIG)"


def test_bastion_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run(["check", "--json"])
    assert check_json(result)["config"] == str(config)
    assert config_line(result) == f"config: {config} (./bastion.toml)"


def test_bastion_toml_of_a_parent_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, 'environment = "development"\n')
    below = tmp_path / "deploy" / "staging"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    result = run(["check", "--json"])
    assert check_json(result)["config"] == str(config)
    assert config_line(result) == f"config: {config} (bastion.toml of a parent directory)"
    # The relative data_dir is the file's, not the working directory's.
    status = orjson.loads(run(["db", "status", "--json"]).stdout)
    assert status["database"] == f"SQLite database {tmp_path / 'data' / 'bastion.db'}"
    assert not (below / "data").exists()


def test_built_in_defaults_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(["check", "--json"])
    if "built-in defaults" not in result.stderr:
        pytest.skip("a bastion.toml above the temporary directory")
    assert check_json(result)["config"] == "built-in defaults"
    assert config_line(result).startswith("config: built-in defaults (no --config")
    assert files_in(tmp_path) == []


def test_an_explicit_config_is_not_announced(tmp_path: Path) -> None:
    result = run(["check", "-c", str(write_config(tmp_path))])
    assert result.exit_code == 0
    assert "config: " not in result.stderr


def test_the_report_goes_to_stderr_so_json_stays_parseable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run(["db", "upgrade"]).exit_code == 0
    for args in (
        ["users", "list", "--json"],
        ["keys", "list", "--json"],
        ["db", "status", "--json"],
    ):
        result = run(args)
        assert result.exit_code == 0, result.output
        orjson.loads(result.stdout)
        assert config_line(result).startswith("config: ")


def test_looking_at_a_migrated_database_writes_no_master_key_or_audit_file(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    assert run(["db", "upgrade", "-c", str(config)]).exit_code == 0
    data = tmp_path / "data"
    before = sorted(p.name for p in data.iterdir())
    for args in (["users", "list"], ["keys", "list"], ["clients", "list"], ["db", "status"]):
        assert run([*args, "-c", str(config)]).exit_code == 0
    assert sorted(p.name for p in data.iterdir()) == before
    assert not (data / DEV_MASTER_KEY_FILENAME).exists()
    assert not (data / "audit.jsonl").exists()
    # The first command that needs the key makes it.
    assert run(["keys", "rotate", "-c", str(config)]).exit_code == 0
    assert (data / DEV_MASTER_KEY_FILENAME).exists()
