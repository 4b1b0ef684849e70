"""Configuration: validation, every problem reported with its path, production refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config import (
    DEV_MASTER_KEY_FILENAME,
    load_settings,
    locate_keys,
    parse_duration,
)
from bastion.errors import ConfigError

PROD_OK = """
environment = "production"
issuer = "https://auth.example.com"
[server]
trusted_proxies = ["10.0.0.0/8"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bastion.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env or {})
    return {p.path: f"{p.line}:{p.message}" for p in caught.value.problems}


def test_no_file_means_development_defaults() -> None:
    settings = load_settings(None, {})
    assert settings.environment == "development"
    assert settings.redis_url is None
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.keys.algorithm == "ES256"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})
    with pytest.raises(ValidationError):
        settings.environment = "production"  # type: ignore[misc]


def test_unknown_keys_are_errors_with_path_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, 'enviroment = "production"\n[server]\nport = 1\ndebgu = false\n')
    assert found["enviroment"].startswith("1:unknown key")
    assert found["server.debgu"].startswith("4:unknown key")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        (
            '[server]\nport = "eighty"\nworkers = 0\n'
            '[database]\nurl = "mysql://db/x"\n'
            '[keys]\nalgorithm = "HS256"\npublish_ahead = "soon"\n'
            '[hot_state]\nurl = "http://cache"\n'
        ),
    )
    assert set(found) == {
        "server.port",
        "server.workers",
        "database.url",
        "keys.algorithm",
        "keys.publish_ahead",
        "hot_state.url",
    }
    assert found["database.url"] == "5:database URL must be sqlite:// or postgresql://"


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, 'issuer = "x"\n[server\n')
    assert found[""].startswith("2:not valid TOML")


def test_secrets_section_in_the_file_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, '[secrets]\nmaster_key = "abc"\n')
    assert "BASTION_" in found["secrets"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("500ms", 0.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        (" 2 h ", 7200.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [True, -1, "5 minutes", "", "1y", None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_key_timings_must_fit_publish_ahead(tmp_path: Path) -> None:
    found = problems(tmp_path, '[keys]\npublish_ahead = "1m"\nrefresh_interval = "2m"\n')
    assert "refresh_interval" in found["keys"]


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    settings = load_settings(write(sub, 'data_dir = "state"\n'), {})
    assert settings.data_dir == sub / "state"


def test_tls_files_must_come_in_pairs_and_exist(tmp_path: Path) -> None:
    found = problems(tmp_path, '[server]\ntls_cert = "missing.pem"\n')
    assert "together" in found["server"]
    found = problems(tmp_path, '[server]\ntls_cert = "a.pem"\ntls_key = "b.pem"\n')
    assert "not found" in found["server"]


# --- secrets from the environment ---------------------------------------------------------------


def test_master_key_from_environment_or_file(tmp_path: Path, master_key_b64: str) -> None:
    settings = load_settings(None, {"BASTION_MASTER_KEY": master_key_b64})
    assert settings.secrets.master_key is not None
    assert len(settings.secrets.master_key) == 32
    key_file = tmp_path / "mk"
    key_file.write_text(master_key_b64 + "\n")
    from_file = load_settings(None, {"BASTION_MASTER_KEY_FILE": str(key_file)})
    assert from_file.secrets.master_key == settings.secrets.master_key


def test_secrets_never_appear_in_repr(master_key_b64: str) -> None:
    settings = load_settings(
        None,
        {
            "BASTION_MASTER_KEY": master_key_b64,
            "BASTION_DATABASE_URL": "postgresql://u:hunter2@db/x",
        },
    )
    text = repr(settings) + str(settings) + settings.model_dump_json()
    assert master_key_b64 not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"BASTION_MASTER_KEY": "not base64 !!"}, "base64url"),
        ({"BASTION_MASTER_KEY": "c2hvcnQ"}, "32 bytes"),
        ({"BASTION_MASTER_KEY": "x", "BASTION_MASTER_KEY_FILE": "/y"}, "not both"),
        ({"BASTION_MASTER_KEY_FILE": "/nonexistent/key"}, "cannot read"),
        ({"BASTION_DATABASE_URL": "oracle://x"}, "sqlite:// or postgresql://"),
        ({"BASTION_REDIS_URL": "memcached://x"}, "redis://"),
    ],
)
def test_bad_secrets_are_named(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    (problem,) = caught.value.problems
    assert problem.path.startswith("env:BASTION_")
    assert fragment in problem.message


def test_environment_urls_override_the_file(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[database]\nurl = "sqlite:///a.db"\n'),
        {
            "BASTION_DATABASE_URL": "postgresql://u:p@db:5432/x",
            "BASTION_REDIS_URL": "redis://cache:6379/1",
        },
    )
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/x"
    assert settings.redis_url == "redis://cache:6379/1"


# --- production refuses insecure options --------------------------------------------------------


def test_clean_production_config_loads(tmp_path: Path, master_key_b64: str) -> None:
    settings = load_settings(write(tmp_path, PROD_OK), {"BASTION_MASTER_KEY": master_key_b64})
    assert settings.is_production


def test_production_names_every_insecure_option(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        (
            'environment = "production"\nissuer = "http://auth.example.com"\n'
            '[server]\ndebug = true\n[database]\nurl = "postgresql://app:hunter2@db/bastion"\n'
        ),
    )
    assert set(found) == {
        "env:BASTION_MASTER_KEY",
        "issuer",
        "server",
        "server.debug",
        "database.url",
    }
    assert all("refused in production" in message for message in found.values())
    assert "development keys" in found["env:BASTION_MASTER_KEY"]
    assert "plain HTTP" in found["server"]
    assert found["server.debug"].startswith("4:")
    assert "hunter2" not in str(found)


def test_production_refuses_the_development_key_file(tmp_path: Path, master_key_b64: str) -> None:
    key_file = tmp_path / DEV_MASTER_KEY_FILENAME
    key_file.write_text(master_key_b64)
    found = problems(tmp_path, PROD_OK, {"BASTION_MASTER_KEY_FILE": str(key_file)})
    assert set(found) == {"env:BASTION_MASTER_KEY"}


def test_locate_keys_handles_tables_and_dotted_keys() -> None:
    lines = locate_keys('a = 1\n[server]\nport = 2\n"quoted.key" = 3\n[keys]\nx.y = 1\n')
    assert lines == {
        "a": 1,
        "server": 2,
        "server.port": 3,
        "server.quoted.key": 4,
        "keys": 5,
        "keys.x.y": 6,
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bastion@db.internal/bastion?password=TopSecretPw",
        "postgresql://bastion:TopSecretPw@db.internal/bastion",
    ],
)
def test_production_refuses_any_password_in_the_file(tmp_path: Path, url: str) -> None:
    found = problems(
        tmp_path, f'{PROD_OK}\n[database]\nurl = "{url}"\n', {"BASTION_MASTER_KEY": "A" * 43}
    )
    assert set(found) == {"database.url"}
    assert "TopSecretPw" not in str(found)


def test_production_refuses_workers_without_shared_hot_state(tmp_path: Path) -> None:
    text = PROD_OK.replace("[server]\n", "[server]\nworkers = 4\n")
    found = problems(tmp_path, text, {"BASTION_MASTER_KEY": "A" * 43})
    assert set(found) == {"server.workers"}
    settings = load_settings(
        write(tmp_path, text),
        {"BASTION_MASTER_KEY": "A" * 43, "BASTION_REDIS_URL": "redis://cache/0"},
    )
    assert settings.server.workers == 4


def test_one_check_lists_schema_problems_and_production_refusals(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        (
            'environment = "production"\nissuer = "http://auth.example.com"\n'
            '[server]\nport = "eighty"\ndebug = true\n[keys]\nalgorithm = "none"\n'
        ),
    )
    assert set(found) == {
        "server.port",
        "keys.algorithm",
        "env:BASTION_MASTER_KEY",
        "issuer",
        "server",
        "server.debug",
    }
    assert "refused in production" in found["server.debug"]


def test_refusals_are_not_repeated_for_a_key_already_wrong(tmp_path: Path) -> None:
    found = problems(
        tmp_path, 'environment = "production"\nissuer = 5\n', {"BASTION_MASTER_KEY": "A" * 43}
    )
    assert found["issuer"].startswith("2:Input should be a valid string")


@pytest.mark.parametrize(
    "text",
    [
        'environment = "production"\n[hot_state]\nurl = "redis://[::1"\n',
        'data_dir = "~nosuchuser_bastion/x"\n[server]\nport = "x"\n',
        "x = " + "[" * 5000 + "]" * 5000 + "\n",
    ],
)
def test_hostile_files_are_problems_not_tracebacks(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text), {})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_durations_are_refused(tmp_path: Path, value: str) -> None:
    found = problems(tmp_path, f"[oauth]\nrefresh_grace = {value}\n")
    assert "finite" in found["oauth.refresh_grace"] or "negative" in found["oauth.refresh_grace"]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            '[[oauth.clients]]\nclient_id = "a"\ntype = "confidential"\n'
            'jwks_file = "~nosuchuser_bastion/k.json"\n',
            "oauth.clients.0.jwks_file",
        ),
        (
            '[[oauth.clients]]\nclient_id = "a"\nredirect_uris = ["http://evil.example/cb"]\n',
            "oauth.clients.0.redirect_uris",
        ),
        (
            '[[oauth.clients]]\nclient_id = "a"\nredirect_uris = ["x.y:/cb"]\n'
            '[[oauth.clients]]\nclient_id = "b"\ntype = "confidential"\n',
            "oauth.clients.1.client_secret",
        ),
    ],
)
def test_check_applies_the_client_rules(tmp_path: Path, text: str, path: str) -> None:
    from bastion import wiring

    with pytest.raises(ConfigError) as caught:
        wiring.load(write(tmp_path, text), {})
    assert [p.path for p in caught.value.problems] == [path]


def test_sqlite_durability_is_normal_unless_full_is_asked_for(tmp_path: Path) -> None:
    assert load_settings(None, {}).database.sqlite_synchronous == "normal"
    full = load_settings(write(tmp_path, '[database]\nsqlite_synchronous = "full"\n'), {})
    assert full.database.sqlite_synchronous == "full"
    for refused in ('"off"', '"extra"', "1"):
        found = problems(tmp_path, f"[database]\nsqlite_synchronous = {refused}\n")
        assert "database.sqlite_synchronous" in found


@pytest.mark.parametrize("value", ['"0.5s"', '"601s"', '"1h"'])
def test_code_lifetime_outside_one_second_to_ten_minutes_is_refused(
    tmp_path: Path, value: str
) -> None:
    """RFC 6749 §4.1.2: a maximum authorization code lifetime of 10 minutes is RECOMMENDED."""
    found = problems(tmp_path, f"[oauth]\ncode_lifetime = {value}\n")
    assert "code_lifetime" in found["oauth"]


def test_code_lifetime_defaults_to_a_minute_and_accepts_ten(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), {}).oauth.code_lifetime == 60
    ten = load_settings(write(tmp_path, '[oauth]\ncode_lifetime = "10m"\n'), {})
    assert ten.oauth.code_lifetime == 600
