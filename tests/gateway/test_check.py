"""``bastion check`` on gateway configurations: errors refuse, warnings inform."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from tests.conftest import write_config

UPSTREAM = """
[[gateway.upstreams]]
name = "api"
url = "https://api.internal"
connect_timeout = "1s"
read_timeout = "2s"
total_timeout = "3s"
"""


def _check(tmp_path: Path, body: str, *args: str) -> Result:
    path = write_config(tmp_path, body)
    return CliRunner().invoke(cli, ["check", "-c", str(path), *args], env={"BASTION_CONFIG": ""})


def test_route_without_auth_policy_is_an_error(tmp_path: Path) -> None:
    body = UPSTREAM + '[[gateway.routes]]\nmethods = "GET"\npath = "/a"\nupstream = "api"\n'
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "gateway.routes (line" in result.stderr
    assert "auth is required" in result.stderr


def test_unknown_upstream_issuer_and_schema_are_errors(tmp_path: Path) -> None:
    body = UPSTREAM + (
        '[[gateway.routes]]\nmethods = "GET"\npath = "/a"\nupstream = "nope"\nauth = "bastion"\n'
    )
    assert "no upstream named" in _check(tmp_path, body).stderr
    body = UPSTREAM + (
        '[[gateway.routes]]\nmethods = "GET"\npath = "/a"\nupstream = "api"\nauth = "idp"\n'
    )
    assert "unknown issuer" in _check(tmp_path, body).stderr
    body = UPSTREAM + (
        '[[gateway.routes]]\nmethods = "POST"\npath = "/a"\nupstream = "api"\nauth = "bastion"\n'
        '[gateway.routes.input.body]\ntype = "nonsense"\n'
    )
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "gateway.routes.0.input: invalid JSON Schema" in result.stderr


def test_static_credential_must_be_readable(tmp_path: Path) -> None:
    body = UPSTREAM.replace(
        'total_timeout = "3s"',
        'total_timeout = "3s"\ncredential = { type = "static", env = "API_KEY_THAT_IS_NOT_SET" }',
    )
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "API_KEY_THAT_IS_NOT_SET is not set" in result.stderr


def test_warnings_overlaps_timeouts_plain_http_public_writes(tmp_path: Path) -> None:
    body = """
[[gateway.upstreams]]
name = "api"
url = "http://10.0.0.5:8080"
[[gateway.routes]]
methods = "GET"
path = "/users/{id}"
upstream = "api"
auth = "bastion"
[[gateway.routes]]
methods = "GET"
path = "/users/me"
upstream = "api"
auth = "bastion"
[[gateway.routes]]
methods = "POST"
path = "/signup"
upstream = "api"
auth = "public"
"""
    result = _check(tmp_path, body)
    assert result.exit_code == 0
    assert "does not declare connect_timeout" in result.stderr
    assert "plain HTTP" in result.stderr
    assert "'GET /users/{id}' and 'GET /users/me' can match the same path" in result.stderr
    assert "accepts writes without authentication" in result.stderr
    assert "forwards request bodies without an input schema" in result.stderr
    strict = _check(tmp_path, body, "--strict", "--json")
    assert strict.exit_code == 2
    assert len(orjson.loads(strict.stdout)["warnings"]) == 5


def test_plain_http_remote_upstream_is_refused_in_production(tmp_path: Path) -> None:
    body = 'environment = "production"\n' + UPSTREAM.replace("https://api.internal", "http://api")
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "gateway.upstreams.0.url" in result.stderr


def test_example_configuration_is_clean(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "bastion.toml"
    result = CliRunner().invoke(
        cli, ["check", "--strict", "-c", str(example)], env={"BASTION_CONFIG": ""}
    )
    assert result.exit_code == 0, result.stderr


def test_credentials_that_would_cross_wires_are_errors(tmp_path: Path) -> None:
    static = UPSTREAM.replace(
        'total_timeout = "3s"',
        'total_timeout = "3s"\ncredential = { type = "static", header = "x-api-key", env = "K" }',
    )
    body = static + (
        '[[gateway.routes]]\nmethods = "GET"\npath = "/a"\nupstream = "api"\nauth = "bastion"\n'
        'forward_headers = ["x-api-key"]\n'
    )
    assert "cannot be forwarded from the app" in _check(tmp_path, body).stderr
    same = 'issuer = "https://auth.example"\n' + UPSTREAM.replace(
        'total_timeout = "3s"',
        'total_timeout = "3s"\ncredential = { audience = "https://auth.example" }',
    )
    assert "cannot be the gateway's own audience" in _check(tmp_path, same).stderr


def test_plain_http_jwks_is_refused_in_production(tmp_path: Path) -> None:
    body = (
        'environment = "production"\n'
        + UPSTREAM
        + (
            '[[gateway.issuers]]\nname = "idp"\nissuer = "https://idp"\n'
            'jwks_uri = "http://idp/jwks"\naudience = "a"\n'
        )
    )
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "gateway.issuers.0.jwks_uri" in result.stderr


def test_object_ids_without_a_declared_type_are_a_warning(tmp_path: Path) -> None:
    body = UPSTREAM + (
        '[[gateway.routes]]\nmethods = "GET"\npath = "/notes/{id}"\nupstream = "api"\n'
        'auth = "bastion"\nobjects = { owned = "note" }\n'
    )
    result = _check(tmp_path, body)
    assert result.exit_code == 0
    assert "no route declares the type of 'note' ids" in result.stderr
    typed = body + 'input.path = { type = "object", properties = { id = { type = "string" } } }\n'
    assert "declares the type" not in _check(tmp_path, typed).stderr


def test_id_source_that_cannot_be_found_fails_the_check(tmp_path: Path) -> None:
    body = UPSTREAM + (
        '[[gateway.routes]]\nmethods = "POST"\npath = "/notes"\nupstream = "api"\n'
        'auth = "bastion"\nobjects = { records = "note", id_from = "body:/id" }\n'
        'input.body = { type = "object", properties = { title = { type = "string" } } }\n'
    )
    result = _check(tmp_path, body)
    assert result.exit_code == 2
    assert "objects.id_from: the route's body schema declares nothing at /id" in result.stderr


def test_explain_prints_a_routes_steps_in_order() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "bastion.toml"
    args = ["check", "-c", str(example), "--explain"]
    env = {"BASTION_CONFIG": ""}
    result = CliRunner().invoke(cli, [*args, "read-note", "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    steps = [step["step"] for step in orjson.loads(result.stdout)["steps"]]
    assert steps == [
        "authentication",
        "dpop",
        "authorization",
        "identifiers",
        "input validation",
        "upstream credential",
        "ownership",
        "upstream call",
        "shaping",
    ]
    text = CliRunner().invoke(cli, [*args, "GET /users/{user_id}/notes"], env=env)
    assert text.stdout.splitlines()[0] == "route my-notes -> notes /users/{user_id}/notes"
    assert "  5. claim bindings" in text.stdout
    missing = CliRunner().invoke(cli, [*args, "nope"], env=env)
    assert missing.exit_code == 5
    assert "routes: create-note, read-note" in missing.stderr
