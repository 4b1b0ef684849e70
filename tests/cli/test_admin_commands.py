"""``bastion clients`` and ``bastion users`` as scripts use them."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.conftest import write_config

DECLARED = """
[[oauth.clients]]
client_id = "from-file"
redirect_uris = ["com.example.file:/cb"]
"""


@pytest.fixture
def config(tmp_path: Path, master_key_b64: str) -> Path:
    path = write_config(tmp_path, DECLARED)
    assert run(["db", "upgrade", "-c", str(path)], master_key_b64).exit_code == 0
    return path


def run(args: list[str], key: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        cli, args, input=stdin, env={"BASTION_CONFIG": "", "BASTION_MASTER_KEY": key}
    )


def data(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_client_lifecycle(config: Path, master_key_b64: str, tmp_path: Path) -> None:
    c = ["-c", str(config), "--json"]
    created = data(
        run(
            [
                "clients",
                "create",
                "ios-app",
                "--redirect-uri",
                "com.example.ios:/cb",
                "--scope",
                "openid",
                "--scope",
                "orders:read",
                *c,
            ],
            master_key_b64,
        )
    )
    assert created["token_endpoint_auth_method"] == "none"
    secret_file = tmp_path / "svc.secret"
    svc = data(
        run(
            [
                "clients",
                "create",
                "svc",
                "--type",
                "confidential",
                "--grant-type",
                "client_credentials",
                "--secret-out",
                str(secret_file),
                *c,
            ],
            master_key_b64,
        )
    )
    assert svc["token_endpoint_auth_method"] == "client_secret_basic"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(secret_file.read_text().strip()) >= 43
    assert secret_file.read_text().strip() not in str(svc)

    listed = {c["client_id"] for c in data(run(["clients", "list", *c], master_key_b64))["clients"]}
    assert listed == {"ios-app", "svc", "from-file"}
    updated = data(run(["clients", "update", "ios-app", "--scope", "openid", *c], master_key_b64))
    assert updated["scope"] == "openid"
    assert data(run(["clients", "disable", "ios-app", *c], master_key_b64))["enabled"] is False
    assert data(run(["clients", "show", "ios-app", *c], master_key_b64))["enabled"] is False
    assert data(run(["clients", "delete", "svc", *c], master_key_b64))["deleted"] is True
    assert run(["clients", "show", "svc", *c], master_key_b64).exit_code == 5


def test_token_exchange_policy_through_the_cli(
    config: Path, master_key_b64: str, tmp_path: Path
) -> None:
    """RFC 8693 §5: whose tokens a client may exchange is set, shown and changed by the CLI."""
    c = ["-c", str(config), "--json"]
    created = data(
        run(
            [
                "clients",
                "create",
                "gw",
                "--type",
                "confidential",
                "--grant-type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "--resource",
                "https://orders.internal",
                "--exchange-subject-audience",
                "https://api.example.com",
                "--secret-out",
                str(tmp_path / "gw.secret"),
                *c,
            ],
            master_key_b64,
        )
    )
    assert created["exchange_subject_audiences"] == ["https://api.example.com"]
    assert created["exchange_delegation_chains"] is False
    run(["clients", "update", "gw", "--exchange-delegation-chains", *c], master_key_b64)
    shown = data(run(["clients", "show", "gw", *c], master_key_b64))
    assert shown["exchange_delegation_chains"] is True
    text = run(["clients", "show", "gw", "-c", str(config)], master_key_b64).stdout
    assert "exchange_subject_audiences" in text
    bad = run(
        ["clients", "update", "gw", "--exchange-subject-audience", "not a uri", *c],
        master_key_b64,
    )
    assert bad.exit_code == 2
    assert "exchange_subject_audiences" in bad.output


def test_client_refusals(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    bad = run(
        ["clients", "create", "x", "--redirect-uri", "http://evil.example/cb", *c], master_key_b64
    )
    assert bad.exit_code == 2
    assert "redirect_uris" in bad.output
    no_secret_file = run(
        [
            "clients",
            "create",
            "y",
            "--type",
            "confidential",
            "--grant-type",
            "client_credentials",
            *c,
        ],
        master_key_b64,
    )
    assert no_secret_file.exit_code == 2
    declared = run(["clients", "disable", "from-file", *c], master_key_b64)
    assert declared.exit_code == 1
    assert "bastion.toml" in declared.output
    assert run(["clients", "delete", "nobody", *c], master_key_b64).exit_code == 5


def test_user_lifecycle(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config), "--json"]
    created = data(
        run(
            ["users", "create", "bob", "--password-stdin", *c],
            master_key_b64,
            stdin="a long passphrase\n",
        )
    )
    assert created["username"] == "bob"
    assert "passphrase" not in str(created)
    # A second "bob" is a conflict (exit 1); a weak password is a usage error (exit 2)
    # whose message names the rule, NIST SP 800-63B §5.1.1.2.
    duplicate = run(
        ["users", "create", "bob", "--password-stdin", *c],
        master_key_b64,
        stdin="another long passphrase\n",
    )
    assert duplicate.exit_code == 1
    for weak, reason in (
        ("short", "at least 8"),
        ("password1", "too common"),
        ("carol-secret-phrase", "username"),
    ):
        refused = run(
            ["users", "create", "carol", "--password-stdin", *c], master_key_b64, stdin=weak + "\n"
        )
        assert refused.exit_code == 2
        assert reason in refused.output
        assert weak not in refused.output
    assert run(["users", "create", "carol", *c], master_key_b64).exit_code == 2
    assert [u["username"] for u in data(run(["users", "list", *c], master_key_b64))["users"]] == [
        "bob"
    ]
    revoked = data(run(["users", "revoke-sessions", "bob", *c], master_key_b64))
    assert revoked == {
        "ok": True,
        "username": "bob",
        "sessions": 0,
        "families": 0,
        "access_tokens": 0,
    }
    assert data(run(["users", "disable", "bob", *c], master_key_b64))["enabled"] is False
    assert data(run(["users", "show", "bob", *c], master_key_b64))["enabled"] is False
    assert data(run(["users", "delete", "bob", *c], master_key_b64))["deleted"] is True
    assert run(["users", "show", "bob", *c], master_key_b64).exit_code == 5


def test_policy_and_recovery_link_commands(config: Path, master_key_b64: str) -> None:
    """``set-policy`` refuses a policy the user could not satisfy; ``recovery-link`` prints
    a one-time link on the issuer (docs/accounts.md, recovery procedure)."""
    c = ["-c", str(config), "--json"]
    run(
        ["users", "create", "dana", "--password-stdin", *c],
        master_key_b64,
        stdin="a long phrase for her\n",
    )
    refused = run(["users", "set-policy", "dana", "mfa", *c], master_key_b64)
    assert refused.exit_code == 2
    assert "second factor" in refused.output
    assert data(run(["users", "set-policy", "dana", "password", *c], master_key_b64))["ok"]
    link = data(run(["users", "recovery-link", "dana", "--reset-mfa", *c], master_key_b64))
    assert link["reset_mfa"] is True
    assert "/recover?ticket=" in link["link"]
    other = data(run(["users", "recovery-link", "dana", *c], master_key_b64))
    assert other["link"] != link["link"], "every link is new"
    assert run(["users", "recovery-link", "nobody", *c], master_key_b64).exit_code == 5
