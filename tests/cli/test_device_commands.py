"""``bastion devices list|show|revoke`` as operators and scripts use them: filters, JSON,
readable dates, ids printed whole in 80 columns, and revocation without a question."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion import wiring
from bastion.cli.main import cli
from bastion.config import load_settings
from bastion.device.records import Device
from bastion.store.sql.devices import SqlDeviceStore
from tests.conftest import write_config
from tests.support.terminal import in_terminal

NOW = time.time()
# As long as an id may get: the whole column, so that a table cannot fit 80 columns.
LONG_ID = "dev-" + "a1b2c3d4" * 7 + "xyzw"


def b64(name: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()).rstrip(b"=").decode()


def run(args: list[str], key: str, stdin: str | None = None) -> Result:
    env = {"BASTION_CONFIG": "", "BASTION_MASTER_KEY": key, "COLUMNS": "80"}
    return CliRunner().invoke(cli, args, input=stdin, env=env)


def data(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.fixture
def config(tmp_path: Path, master_key_b64: str) -> Path:
    """A database with alice, and three devices: an iPhone she uses, an Android phone
    of another app with a registered client, and a revoked one."""
    path = write_config(tmp_path)
    assert run(["db", "upgrade", "-c", str(path)], master_key_b64).exit_code == 0
    created = run(
        ["users", "create", "alice", "--password-stdin", "--json", "-c", str(path)],
        master_key_b64,
        "correct horse battery staple\n",
    )
    alice = data(created)["user_id"]
    settings = load_settings(path, {"BASTION_MASTER_KEY": master_key_b64})
    records = [
        Device(
            LONG_ID,
            "ios",
            "app",
            "device",
            NOW - 86_400 * 3,
            NOW - 7_200,
            NOW - 86_400 * 3,
            key_id=b64("iphone"),
            public_key=b"\x30\x59" + bytes(89),
            counter=12,
            environment="production",
            receipt=b"receipt",
            app_version="3.2.1",
            dpop_jkt=b64("iphone-dpop"),
            user_ids=(alice,),
        ),
        Device(
            "dev-pixel",
            "android",
            "other-app",
            "strong",
            NOW - 600,
            NOW - 60,
            NOW - 600,
            verdict={"device_labels": ["MEETS_DEVICE_INTEGRITY"], "licensing": "LICENSED"},
            app_version="4.0.0",
            dpop_jkt=b64("pixel-dpop"),
            encryption_key={"kty": "EC", "crv": "P-256", "use": "enc"},
            registered_client_id="install-pixel",
        ),
        Device("dev-old", "ios", "app", "basic", NOW - 900, NOW - 900, NOW - 900, key_id="k-old"),
    ]

    async def seed() -> None:
        database = wiring.open_database(settings)
        try:
            store = SqlDeviceStore(database)
            for record in records:
                await store.add(record)
            await store.revoke("dev-old", NOW - 800, "lost")
        finally:
            await database.close()

    asyncio.run(seed())
    return path


def record(text: str) -> dict[str, str]:
    """``name  value`` lines as a mapping (values have no double spaces)."""
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines())


def ids(result: Result) -> list[str]:
    return [d["device_id"] for d in data(result)["devices"]]


def test_list_filters_and_orders(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config), "--json"]
    assert ids(run(["devices", "list", *c], master_key_b64)) == ["dev-pixel", LONG_ID]
    every = run(["devices", "list", "--all", *c], master_key_b64)
    assert ids(every) == ["dev-pixel", "dev-old", LONG_ID]
    assert ids(run(["devices", "list", "--user", "alice", *c], master_key_b64)) == [LONG_ID]
    alice = data(run(["users", "show", "alice", *c], master_key_b64))["user_id"]
    assert ids(run(["devices", "list", "--user", alice, *c], master_key_b64)) == [LONG_ID]
    assert ids(run(["devices", "list", "--user", "nobody", *c], master_key_b64)) == []
    by_client = run(["devices", "list", "--client", "app", "--all", *c], master_key_b64)
    assert ids(by_client) == ["dev-old", LONG_ID]
    registered = run(["devices", "list", "--client", "install-pixel", *c], master_key_b64)
    assert ids(registered) == ["dev-pixel"]
    assert ids(run(["devices", "list", "--limit", "1", *c], master_key_b64)) == ["dev-pixel"]
    assert run(["devices", "list", "--limit", "0", *c], master_key_b64).exit_code == 2
    listed = data(run(["devices", "list", *c], master_key_b64))["devices"][1]
    assert listed["last_seen"].endswith("Z")
    assert "public_key" not in listed
    assert "receipt" not in listed


def test_list_as_a_table(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    table = run(["devices", "list", *c], master_key_b64).stdout.splitlines()
    assert table[0].split() == ["DEVICE", "ID", "PLATFORM", "CLIENT", "LEVEL", "LAST", "SEEN"]
    assert any(line.startswith(LONG_ID + "  ") for line in table)
    wide = run(["devices", "list", "--wide", "--all", *c], master_key_b64).stdout
    assert "REVOKED" in wide.splitlines()[0]
    assert "4.0.0" in wide
    empty = run(["devices", "list", "--user", "nobody", *c], master_key_b64)
    assert empty.stdout == ""
    assert "no devices" in empty.stderr


def test_show_reads_as_a_record(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    text = run(["devices", "show", LONG_ID, *c], master_key_b64).stdout
    assert LONG_ID in text
    assert b64("iphone") in text
    assert b64("iphone-dpop") in text
    assert "(2 hours ago)" in text
    assert "(3 days ago)" in text
    assert " UTC " in text
    assert record(text)["counter"] == "12"
    assert (
        record(text)["user"]
        == data(run(["users", "show", "alice", *c, "--json"], master_key_b64))["user_id"]
    )
    assert "receipt" not in text
    pixel = run(["devices", "show", "dev-pixel", *c], master_key_b64).stdout
    assert record(pixel)["verdict device_labels"] == "MEETS_DEVICE_INTEGRITY"
    assert record(pixel)["encryption key"] == "yes"
    assert record(pixel)["registered client"] == "install-pixel"
    assert record(pixel)["users"] == "none"
    old = record(run(["devices", "show", "dev-old", *c], master_key_b64).stdout)
    assert old["revoked because"] == "lost"
    assert old["revoked"].endswith(" minutes ago)")
    shown = data(run(["devices", "show", "dev-pixel", *c, "--json"], master_key_b64))
    assert shown["encryption_key"] is True
    assert shown["verdict"]["licensing"] == "LICENSED"
    assert shown["revoked_at"] is None
    missing = run(["devices", "show", "dev-none", *c], master_key_b64)
    assert missing.exit_code == 5
    assert "no device 'dev-none'" in missing.stderr


def test_revoke_asks_nothing_and_says_what_ended(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    revoked = data(
        run(
            ["devices", "revoke", "dev-pixel", "--reason", "cloned app", *c, "--json"],
            master_key_b64,
        )
    )
    assert revoked == {
        "ok": True,
        "device_id": "dev-pixel",
        "already_revoked": False,
        "families": 0,
    }
    shown = data(run(["devices", "show", "dev-pixel", *c, "--json"], master_key_b64))
    assert shown["revoked_reason"] == "cloned app"
    assert shown["revoked_at"] is not None
    text = run(["devices", "revoke", LONG_ID, *c], master_key_b64)
    assert text.exit_code == 0
    assert text.stdout.startswith(f"revoked device {LONG_ID} and 0 refresh token families")
    assert (
        data(run(["devices", "show", LONG_ID, *c, "--json"], master_key_b64))["revoked_reason"]
        == "revoked by an operator"
    )
    again = run(["devices", "revoke", LONG_ID, *c], master_key_b64)
    assert "was already revoked" in again.stdout
    assert run(["devices", "revoke", "dev-none", *c], master_key_b64).exit_code == 5
    too_long = run(["devices", "revoke", "dev-old", "--reason", "x" * 201, *c], master_key_b64)
    assert too_long.exit_code == 1
    assert "x" * 201 not in too_long.output


def test_ids_are_whole_in_an_80_column_terminal(config: Path, master_key_b64: str) -> None:
    """The long id does not fit the table in 80 columns: each row becomes a block, and
    every id, key id and thumbprint stays on one line, uncut."""
    env = {**os.environ, "BASTION_CONFIG": "", "BASTION_MASTER_KEY": master_key_b64}
    bastion = [sys.executable, "-m", "bastion"]
    listing = in_terminal([*bastion, "devices", "list", "--wide", "-c", str(config)], env=env)
    shown = in_terminal([*bastion, "devices", "show", LONG_ID, "-c", str(config)], env=env)
    for output, values in (
        (listing, [LONG_ID]),
        (shown, [LONG_ID, b64("iphone"), b64("iphone-dpop")]),
    ):
        for value in values:
            assert len([line for line in output.splitlines() if value in line]) == 1, output
