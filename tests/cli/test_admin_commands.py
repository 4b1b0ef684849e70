"""``bastion clients`` and ``bastion users`` as scripts use them."""

from __future__ import annotations

import re
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
    assert bad.exit_code == 1
    assert "exchange_subject_audiences" in orjson.loads(bad.stdout)["message"]


def test_client_refusals(config: Path, master_key_b64: str) -> None:
    """Metadata the rules refuse is a plain error (exit 1); a missing option is usage (2)."""
    c = ["-c", str(config)]
    bad = run(
        ["clients", "create", "x", "--redirect-uri", "http://evil.example/cb", *c], master_key_b64
    )
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: redirect_uris")
    assert "Usage:" not in bad.stderr
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
    assert "Usage:" in no_secret_file.stderr
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
    # A second "bob" is a conflict (exit 1); so is a weak password, refused with a message
    # that names the rule, NIST SP 800-63B §5.1.1.2, and without click's usage text.
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
        assert refused.exit_code == 1
        message = orjson.loads(refused.stdout)["message"]
        assert message.startswith("password refused: ")
        assert reason in message
        assert weak not in refused.output
    plain = run(
        ["users", "create", "carol", "--password-stdin", "-c", str(config)],
        master_key_b64,
        stdin="short\n",
    )
    assert (plain.exit_code, plain.stdout) == (1, "")
    assert plain.stderr == "error: password refused: use at least 8 characters\n"
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
    assert refused.exit_code == 1
    assert "second factor" in refused.output
    assert data(run(["users", "set-policy", "dana", "password", *c], master_key_b64))["ok"]
    link = data(run(["users", "recovery-link", "dana", "--reset-mfa", *c], master_key_b64))
    assert link["reset_mfa"] is True
    assert "/recover?ticket=" in link["link"]
    other = data(run(["users", "recovery-link", "dana", *c], master_key_b64))
    assert other["link"] != link["link"], "every link is new"
    assert run(["users", "recovery-link", "nobody", *c], master_key_b64).exit_code == 5


def test_clients_update_can_empty_a_list(config: Path, master_key_b64: str) -> None:
    """A repeated option replaces a list; --clear NAME is the only way to empty one."""
    c = ["-c", str(config), "--json"]
    data(
        run(
            [
                "clients",
                "create",
                "app",
                "--redirect-uri",
                "com.example.app:/cb",
                "--scope",
                "openid",
                "--resource",
                "https://api.example.com",
                *c,
            ],
            master_key_b64,
        )
    )
    cleared = data(
        run(
            ["clients", "update", "app", "--clear", "scope", "--clear", "resource", *c],
            master_key_b64,
        )
    )
    assert (cleared["scope"], cleared["resources"]) == ("", [])
    assert cleared["redirect_uris"] == ["com.example.app:/cb"], "other lists are kept"
    both = run(["clients", "update", "app", "--clear", "scope", "--scope", "x", *c], master_key_b64)
    assert both.exit_code == 2
    assert "contradict" in both.stderr
    # A public client needs a redirect URI: emptying that list is refused, and nothing changes.
    refused = run(["clients", "update", "app", "--clear", "redirect-uri", *c], master_key_b64)
    assert refused.exit_code == 1
    assert data(run(["clients", "show", "app", *c], master_key_b64))["redirect_uris"] == [
        "com.example.app:/cb"
    ]


def test_an_operator_sets_changes_and_clears_an_apps_branding(
    config: Path, master_key_b64: str
) -> None:
    """RFC 7591 §2 branding from the CLI: a registered app's logo or links can be
    replaced or removed by the operator, not only by disabling the client."""
    c = ["-c", str(config), "--json"]
    created = data(
        run(
            [
                "clients",
                "create",
                "shop",
                "--redirect-uri",
                "com.example.shop:/cb",
                "--logo-uri",
                "https://cdn.example/shop.png",
                "--policy-uri",
                "https://shop.example/privacy",
                "--accent-color",
                "#0b6e4f",
                *c,
            ],
            master_key_b64,
        )
    )
    assert created["logo_uri"] == "https://cdn.example/shop.png"
    assert created["accent_color"] == "#0b6e4f"
    changed = data(
        run(
            [
                "clients",
                "update",
                "shop",
                "--tos-uri",
                "https://shop.example/terms",
                "--clear",
                "logo-uri",
                *c,
            ],
            master_key_b64,
        )
    )
    assert "logo_uri" not in changed
    assert changed["policy_uri"] == "https://shop.example/privacy", "the rest is kept"
    assert changed["tos_uri"] == "https://shop.example/terms"
    refused = run(
        ["clients", "update", "shop", "--policy-uri", "http://shop.example/privacy", *c],
        master_key_b64,
    )
    assert refused.exit_code == 1
    assert "policy_uri" in refused.output


def test_users_show_and_list_print_times_as_iso_8601(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    run(["users", "create", "erin", "--password-stdin", *c], master_key_b64, "a long phrase\n")
    shown = data(run(["users", "show", "erin", *c, "--json"], master_key_b64))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["created_at"])
    assert shown["tokens_valid_after"] is None, "never revoked, not 1970"
    text = run(["users", "show", "erin", *c], master_key_b64).stdout
    assert f"created_at          {shown['created_at']}\n" in text
    assert "enabled             yes\n" in text
    run(["users", "revoke-sessions", "erin", *c], master_key_b64)
    revoked = data(run(["users", "show", "erin", *c, "--json"], master_key_b64))
    assert revoked["tokens_valid_after"] >= shown["created_at"]
    listed = data(run(["users", "list", *c, "--json"], master_key_b64))["users"]
    assert listed[0]["created_at"] == shown["created_at"]
    wide = run(["users", "list", "--wide", *c], master_key_b64).stdout
    assert wide.splitlines()[0].split() == [
        "USERNAME",
        "USER",
        "ID",
        "ENABLED",
        "POLICY",
        "CREATED",
    ]
    assert shown["created_at"] in wide
    assert shown["created_at"] not in run(["users", "list", *c], master_key_b64).stdout


def test_empty_lists_say_so_on_stderr(config: Path, master_key_b64: str) -> None:
    c = ["-c", str(config)]
    for args, message in ((["users", "list"], "no users"), (["keys", "list"], "no signing keys")):
        result = run([*args, *c], master_key_b64)
        assert (result.exit_code, result.stdout) == (0, "")
        assert result.stderr.startswith(message)
        assert data(run([*args, *c, "--json"], master_key_b64)) in ({"users": []}, {"keys": []})
