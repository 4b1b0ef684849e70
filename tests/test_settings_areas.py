"""Settings declared by each area: production refusals, anchored paths, secrets from files.

The loader knows no option by name: each area declares on its fields which paths are
relative to the file and what production refuses. These tests pin that every area's
declarations still reach ``load_settings`` with their key paths.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from bastion.config import Settings, load_settings
from bastion.configtypes import AnchoredPath
from bastion.env_secrets import Secrets
from bastion.errors import ConfigError

PRODUCTION = 'environment = "production"\n'
BEHIND_PROXY = 'issuer = "https://auth.example.com"\n[server]\ntrusted_proxies = ["10.0.0.0/8"]\n'
UPSTREAM = '[[gateway.upstreams]]\nname = "api"\nurl = "https://api.internal"\n'


def write(directory: Path, text: str) -> Path:
    path = directory / "bastion.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    return {p.path: f"{p.line}:{p.message}" for p in caught.value.problems}


# --- what production refuses, area by area -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line", "fragment"),
    [
        # top level
        (BEHIND_PROXY.replace("https://", "http://"), "issuer", 2, "https URL"),
        # server (bastion.web.settings)
        (BEHIND_PROXY + "debug = true\n", "server.debug", 5, "debug pages"),
        (
            'issuer = "https://auth.example.com"\n[server]\nport = 8443\n',
            "server",
            3,
            "plain HTTP",
        ),
        (BEHIND_PROXY + "workers = 2\n", "server.workers", 5, "in-memory hot state"),
        # store (bastion.store.settings)
        (
            BEHIND_PROXY + '[database]\nurl = "postgresql://u:pw@db/x"\n',
            "database.url",
            6,
            "BASTION_DATABASE_URL",
        ),
        (
            BEHIND_PROXY + '[hot_state]\nurl = "redis://:pw@cache/0"\n',
            "hot_state.url",
            6,
            "BASTION_REDIS_URL",
        ),
        # gateway (bastion.gateway.settings)
        (
            BEHIND_PROXY + UPSTREAM.replace("https://api.internal", "http://api.internal"),
            "gateway.upstreams.0.url",
            5,
            "plain HTTP to a remote upstream",
        ),
        (
            BEHIND_PROXY
            + UPSTREAM
            + 'credential = { type = "client_credentials", client_id = "c", env = "S", '
            'token_url = "http://idp.internal/token" }\n',
            "gateway.upstreams.0.credential.token_url",
            5,
            "token endpoint must be https",
        ),
        (
            BEHIND_PROXY + '[[gateway.issuers]]\nname = "idp"\nissuer = "https://idp"\n'
            'jwks_uri = "http://idp/jwks"\naudience = "a"\n',
            "gateway.issuers.0.jwks_uri",
            5,
            "over https",
        ),
    ],
)
def test_each_area_reports_its_refusals_with_the_key_path(
    tmp_path: Path, master_key_b64: str, text: str, path: str, line: int, fragment: str
) -> None:
    found = problems(write(tmp_path, PRODUCTION + text), {"BASTION_MASTER_KEY": master_key_b64})
    assert set(found) == {path}
    assert found[path].startswith(f"{line}:refused in production: ")
    assert fragment in found[path]


def test_refusals_apply_only_in_production(tmp_path: Path) -> None:
    text = (
        '[server]\ndebug = true\nworkers = 2\n[database]\nurl = "postgresql://u:pw@db/x"\n'
        + UPSTREAM.replace("https://", "http://")
    )
    settings = load_settings(write(tmp_path, text), {})
    found = {p.path for p in settings.insecure_options()}
    assert found == {
        "env:BASTION_MASTER_KEY",
        "issuer",
        "server",
        "server.debug",
        "server.workers",
        "database.url",
        "gateway.upstreams.0.url",
    }


def test_the_master_key_refusal_is_reported_at_its_variable(tmp_path: Path) -> None:
    found = problems(write(tmp_path, PRODUCTION + BEHIND_PROXY), {})
    assert set(found) == {"env:BASTION_MASTER_KEY"}
    assert found["env:BASTION_MASTER_KEY"].startswith("None:refused in production: development")


# --- secrets: BASTION_<NAME> or BASTION_<NAME>_FILE ----------------------------------------------


def test_every_secret_can_come_from_a_file(tmp_path: Path, master_key_b64: str) -> None:
    values = {
        "MASTER_KEY": master_key_b64,
        "DATABASE_URL": "postgresql://u:pw@db/x",
        "REDIS_URL": "redis://:pw@cache/0",
        "REGISTRATION_TOKEN": "initial-access-token",
    }
    env = {}
    for name, value in values.items():
        file = tmp_path / name.lower()
        file.write_text(f"  {value}\n\n", encoding="utf-8")  # mounts often end in a newline
        env[f"BASTION_{name}_FILE"] = str(file)
    from_files = load_settings(None, env).secrets
    direct = load_settings(None, {f"BASTION_{k}": v for k, v in values.items()}).secrets
    assert from_files == direct
    assert from_files.registration_token == "initial-access-token"
    assert from_files.database_url == "postgresql+asyncpg://u:pw@db/x"
    assert from_files.master_key_source == "environment"


@pytest.mark.parametrize("name", ["MASTER_KEY", "DATABASE_URL", "REDIS_URL", "REGISTRATION_TOKEN"])
def test_setting_both_forms_is_an_error(tmp_path: Path, name: str) -> None:
    file = tmp_path / "secret"
    file.write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {f"BASTION_{name}": "x", f"BASTION_{name}_FILE": str(file)})
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (f"env:BASTION_{name}", f"set BASTION_{name} or BASTION_{name}_FILE, not both")
    ]


def test_an_empty_variable_counts_as_unset(tmp_path: Path, master_key_b64: str) -> None:
    file = tmp_path / "key"
    file.write_text(master_key_b64)
    env = {"BASTION_MASTER_KEY": "", "BASTION_MASTER_KEY_FILE": str(file), "BASTION_REDIS_URL": ""}
    secrets = load_settings(None, env).secrets
    assert secrets.master_key is not None
    assert secrets.redis_url is None


def test_every_bad_secret_is_reported_and_the_good_ones_kept(master_key_b64: str) -> None:
    env = {
        "BASTION_MASTER_KEY": master_key_b64,
        "BASTION_DATABASE_URL": "oracle://x",
        "BASTION_REDIS_URL": "memcached://x",
        "BASTION_REGISTRATION_TOKEN_FILE": "/nonexistent/token",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    assert {p.path for p in caught.value.problems} == {
        "env:BASTION_DATABASE_URL",
        "env:BASTION_REDIS_URL",
        "env:BASTION_REGISTRATION_TOKEN",
    }


def test_secrets_are_read_only_from_the_mapping_given(
    monkeypatch: pytest.MonkeyPatch, master_key_b64: str
) -> None:
    # The composition root hands the environment in; nothing reads os.environ behind it.
    monkeypatch.setenv("BASTION_MASTER_KEY", master_key_b64)
    monkeypatch.setenv("BASTION_MASTER_KEY_SOURCE", "environment")
    assert load_settings(None, {}).secrets.master_key is None
    assert Secrets().master_key is None
    assert load_settings(None, {}).secrets.master_key_source == "none"


# --- relative paths are relative to the file ----------------------------------------------------


def test_paths_of_every_area_are_anchored_to_the_file(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "tls").mkdir(parents=True)
    (etc / "schemas").mkdir()
    for name in ("tls/cert.pem", "tls/key.pem", "tls/ca.pem", "schemas/body.json"):
        (etc / name).write_text("{}")
    text = (
        'data_dir = "state"\n'
        '[server]\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'
        '[audit]\npath = "logs/audit.jsonl"\n'
        '[oauth.registration]\nsoftware_statement_jwks_file = "keys/statements.json"\n'
        '[[oauth.clients]]\nclient_id = "svc"\ntype = "confidential"\njwks_file = "keys/svc.json"\n'
        '[[gateway.upstreams]]\nname = "api"\nurl = "https://api.internal"\n'
        'tls_client_cert = "tls/cert.pem"\ntls_client_key = "tls/key.pem"\n'
        'tls_ca_file = "tls/ca.pem"\n'
        'credential = { type = "static", file = "secrets/api-key" }\n'
        '[[gateway.routes]]\nmethods = "POST"\npath = "/a"\nupstream = "api"\nauth = "bastion"\n'
        'input = { body_file = "schemas/body.json" }\n'
        '[[gateway.routes]]\nmethods = "GET"\npath = "/b"\nupstream = "api"\nauth = "bastion"\n'
        'input = { body_file = "/abs/outside.json", query_file = "schemas/body.json" }\n'
    )
    path = write(etc, text)
    (etc / "schemas" / "body.json").write_text("{}")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    # The absolute path is kept as written, and reported because it does not exist.
    assert [p.message for p in caught.value.problems] == [
        "schema file not found: /abs/outside.json"
    ]
    text = text.replace("/abs/outside.json", "schemas/body.json").replace(
        ', query_file = "schemas/body.json"', ""
    )
    settings = load_settings(write(etc, text), {})
    upstream = settings.gateway.upstreams[0]
    assert settings.data_dir == etc / "state"
    assert settings.server.tls_cert == etc / "tls/cert.pem"
    assert settings.server.tls_key == etc / "tls/key.pem"
    assert settings.audit.path == etc / "logs/audit.jsonl"
    assert settings.oauth.registration.software_statement_jwks_file == etc / "keys/statements.json"
    assert settings.oauth.clients[0].jwks_file == etc / "keys/svc.json"
    assert upstream.tls_client_cert == etc / "tls/cert.pem"
    assert upstream.tls_ca_file == etc / "tls/ca.pem"
    assert upstream.credential.file == etc / "secrets/api-key"
    route_input = settings.gateway.routes[0].input
    assert route_input is not None
    assert route_input.body_file == etc / "schemas/body.json"


def test_paths_given_in_code_are_left_as_they_are() -> None:
    # Only the loader knows a file to anchor to; a Settings built in code keeps its paths.
    assert Settings.model_validate({"data_dir": "state"}).data_dir == Path("state")


def _path_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name, field in model.model_fields.items():
        annotation = field.rebuild_annotation()
        for inner in _flatten(annotation):
            if inner is Path:
                found.append((f"{prefix}{name}", annotation))
            elif isinstance(inner, type) and issubclass(inner, BaseModel):
                found.extend(_path_fields(inner, f"{prefix}{name}."))
    return found


def _flatten(annotation: object) -> list[object]:
    if typing.get_origin(annotation) is typing.Annotated:
        return [annotation]  # checked whole: AnchoredPath is an Annotated Path
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or args:
        return [inner for arg in args for inner in _flatten(arg)]
    return [annotation]


def test_every_path_option_is_anchored() -> None:
    # A new path option written as a plain Path would be read relative to the working
    # directory: the old central table of path keys is gone, the type is the declaration.
    assert _path_fields(Settings) == []
    assert AnchoredPath in _flatten(Settings.model_fields["data_dir"].rebuild_annotation())
