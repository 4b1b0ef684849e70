"""Values meant to be copied (links, ids, key ids, paths) are printed whole: never wrapped,
cropped or ellipsised, whether the output is an 80-column terminal or captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.conftest import write_config
from tests.support.terminal import in_terminal

ISSUER = "https://sign-in.example-company-with-a-long-name.com/identity/bastion-gateway"
USERNAME = "dana-the-operator-with-a-rather-long-username@example.com"
CLIENT = "an-app-with-quite-a-long-client-identifier-for-testing-output"


@pytest.fixture
def config(tmp_path: Path, master_key_b64: str) -> Path:
    path = write_config(tmp_path, f'issuer = "{ISSUER}"\n')
    for args, stdin in (
        (["db", "upgrade"], None),
        (["users", "create", USERNAME, "--password-stdin"], "a long phrase for her\n"),
        (["keys", "rotate", "--immediate"], None),
        (["clients", "create", CLIENT, "--redirect-uri", "com.example.app:/oauth2/cb"], None),
    ):
        assert run([*args, "-c", str(path)], master_key_b64, stdin).exit_code == 0
    return path


def run(args: list[str], key: str, stdin: str | None = None) -> Result:
    env = {"BASTION_CONFIG": "", "BASTION_MASTER_KEY": key, "COLUMNS": "80"}
    return CliRunner().invoke(cli, args, input=stdin, env=env)


def data(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def _environment(key: str) -> dict[str, str]:
    return {**os.environ, "BASTION_CONFIG": "", "BASTION_MASTER_KEY": key, "COLUMNS": "80"}


def _captured(args: list[str], key: str) -> str:
    """The command's standard output through a pipe, as a script captures it."""
    done = subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env=_environment(key),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _in_terminal(args: list[str], key: str) -> str:
    """The command's output in an 80-column terminal, as an operator reads it."""
    return in_terminal([sys.executable, "-m", "bastion", *args], env=_environment(key))


def _lines_holding(text: str, value: str) -> list[str]:
    return [line for line in text.splitlines() if value in line]


@pytest.mark.parametrize("where", ["captured", "terminal"])
def test_a_recovery_link_is_one_line(config: Path, master_key_b64: str, where: str) -> None:
    """The link is longer than 80 characters; printed through a wrapping console it held a
    line break, and the half that reached the user did not work."""
    args = ["users", "recovery-link", USERNAME, "-c", str(config)]
    output = (_captured if where == "captured" else _in_terminal)(args, master_key_b64)
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    (link,) = lines
    assert link.startswith(f"{ISSUER}/recover?ticket=")
    assert len(link) > 80
    assert link == link.strip()


def test_ids_and_key_ids_are_printed_whole(config: Path, master_key_b64: str) -> None:
    """Messages and lists at 80 columns: no value is cut, folded or replaced by an ellipsis."""
    c = ["-c", str(config)]
    kids = [k["kid"] for k in data(run(["keys", "list", *c, "--json"], master_key_b64))["keys"]]
    user_id = data(run(["users", "show", USERNAME, *c, "--json"], master_key_b64))["user_id"]
    rotated = run(["keys", "rotate", *c], master_key_b64)
    new_kid = next(
        k["kid"]
        for k in data(run(["keys", "list", *c, "--json"], master_key_b64))["keys"]
        if k["kid"] not in kids
    )
    assert _lines_holding(rotated.stdout, new_kid), rotated.stdout
    listed = run(["keys", "list", *c], master_key_b64).stdout
    for kid in [*kids, new_kid]:
        assert _lines_holding(listed, kid), listed
    assert "…" not in listed
    users = run(["users", "list", *c], master_key_b64).stdout
    assert _lines_holding(users, USERNAME), users
    assert _lines_holding(users, user_id), users
    assert "…" not in users
    clients = run(["clients", "list", *c], master_key_b64).stdout
    assert _lines_holding(clients, CLIENT), clients
    assert "…" not in clients
    shown = run(["clients", "show", CLIENT, *c], master_key_b64).stdout
    assert _lines_holding(shown, CLIENT)
    assert _lines_holding(shown, "com.example.app:/oauth2/cb")
    created = run(
        ["users", "create", USERNAME + ".two", "--password-stdin", *c],
        master_key_b64,
        "another long phrase\n",
    ).stdout
    assert len(created.splitlines()) == 1, created


def test_a_path_in_a_message_is_whole(tmp_path: Path, master_key_b64: str) -> None:
    deep = tmp_path / ("a-directory-with-a-long-name-" * 3) / "master.key"
    deep.parent.mkdir()
    written = run(["keys", "new-master-key", "--out", str(deep)], master_key_b64).stdout
    assert len(written.splitlines()) == 1, written
    assert f"BASTION_MASTER_KEY_FILE={deep}" in written


def test_lists_in_an_80_column_terminal(config: Path, master_key_b64: str) -> None:
    """Key ids fit the default key table; a long user name turns its row into a block; with
    --wide the table stays a table and the terminal, not Bastion, folds the long lines."""
    c = ["-c", str(config)]
    kids = [k["kid"] for k in data(run(["keys", "list", *c, "--json"], master_key_b64))["keys"]]
    keys = _in_terminal(["keys", "list", *c], master_key_b64)
    assert keys.splitlines()[0].split() == ["KID", "STATE", "ACTIVATES"]
    assert all(len(line) <= 80 for line in keys.splitlines())
    for kid in kids:
        assert _lines_holding(keys, kid)
    users = _in_terminal(["users", "list", *c], master_key_b64)
    assert f"username  {USERNAME}" in users.splitlines()
    wide = _in_terminal(["keys", "list", "--wide", *c], master_key_b64)
    assert wide.splitlines()[0].split()[:3] == ["KID", "ALG", "STATE"]
    for kid in kids:
        (line,) = _lines_holding(wide, kid)
        assert len(line) > 80
