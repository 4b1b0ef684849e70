"""``bastion serve`` as a real process: refusals before binding, headers on the wire, TLS."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import write_config
from tests.support.server import BASTION, bastion, self_signed, serving
from tests.support.services import free_port


@pytest.fixture
def env(master_key_b64: str) -> dict[str, str]:
    return {"BASTION_MASTER_KEY": master_key_b64, "BASTION_CONFIG": ""}


@pytest.fixture
def config(tmp_path: Path, env: dict[str, str]) -> Path:
    path = write_config(tmp_path)
    assert bastion(["db", "upgrade", "-c", str(path)], env).returncode == 0
    return path


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_an_unmigrated_schema(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    result = bastion(["serve", "-c", str(write_config(tmp_path)), "--port", str(port)], env)
    assert result.returncode == 3
    assert "run `bastion db upgrade`" in result.stderr
    assert port_is_free(port)


def test_serve_refuses_a_wrong_master_key(config: Path, env: dict[str, str]) -> None:
    port = free_port()
    with serving(["-c", str(config), "--port", str(port)], env, f"http://127.0.0.1:{port}"):
        pass  # creates the first key under the right master key
    database = config.parent / "data" / "bastion.db"
    before = database.read_bytes()
    result = bastion(
        ["serve", "-c", str(config), "--port", str(port)], {**env, "BASTION_MASTER_KEY": "B" * 43}
    )
    assert result.returncode == 4
    assert "wrong master key" in result.stderr
    assert database.read_bytes() == before


def test_serve_refuses_insecure_production(tmp_path: Path, env: dict[str, str]) -> None:
    config = write_config(tmp_path, 'environment = "production"\n[server]\ndebug = true\n')
    result = bastion(["serve", "-c", str(config)], env)
    assert result.returncode == 2
    assert "server.debug" in result.stderr
    assert "plain HTTP" in result.stderr


def test_headers_on_the_wire(config: Path, env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["-c", str(config), "--port", str(port)], env, url):
        response = httpx.get(f"{url}/jwks.json")
        not_found = httpx.get(f"{url}/admin")
    assert response.status_code == 200
    assert "server" not in response.headers, "no Server header, so no version either"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not_found.status_code == 404
    assert not_found.headers["content-type"] == "application/problem+json"


def test_tls_policy(tmp_path: Path, config: Path, env: dict[str, str]) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    url = f"https://localhost:{port}"
    args = ["-c", str(config), "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    trust = ssl.create_default_context(cafile=str(cert))
    with serving(args, env, url, verify=trust):
        response = httpx.get(f"{url}/healthz", verify=trust)
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")
        assert handshake(port, cert, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert handshake(port, cert, ssl.TLSVersion.TLSv1_3, None)
        # The client below is able to speak the old protocol and the weak suite, so a
        # failed handshake is the server's refusal (RFC 8996: TLS 1.0/1.1 deprecated).
        assert not handshake(port, cert, ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")
        assert not handshake(
            port, cert, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"
        )


def test_the_tls_client_above_can_speak_old_protocols(tmp_path: Path) -> None:
    """Control for test_tls_policy: against a permissive server the same handshakes work."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def accept(count: int) -> None:
            for _ in range(count):
                conn, _ = listener.accept()
                with contextlib.suppress(ssl.SSLError, OSError):
                    context.wrap_socket(conn, server_side=True).close()

        thread = threading.Thread(target=accept, args=(2,), daemon=True)
        thread.start()
        assert handshake(port, cert, ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")
        assert handshake(port, cert, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        thread.join(timeout=5)


def handshake(port: int, cert: Path, version: ssl.TLSVersion, ciphers: str | None) -> bool:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cert)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with warnings.catch_warnings():  # TLSv1_1 is named to prove it is refused
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    try:
        with (
            socket.create_connection(("localhost", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost"),
        ):
            return True
    except (ssl.SSLError, ConnectionResetError):
        return False


def test_several_workers_share_the_port(config: Path, env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["-c", str(config), "--port", str(port), "--workers", "2"], env, url) as process:
        statuses = {httpx.get(f"{url}/readyz").status_code for _ in range(10)}
        kids = {k["kid"] for _ in range(5) for k in httpx.get(f"{url}/jwks.json").json()["keys"]}
    assert statuses == {200}
    assert len(kids) == 1, "every worker serves the same ring"
    assert process.returncode is None or process.returncode == 0


@pytest.mark.parametrize(
    ("variable", "url", "store"),
    [
        ("BASTION_DATABASE_URL", "postgresql://postgres@127.0.0.1:{port}/test", "database"),
        ("BASTION_REDIS_URL", "redis://127.0.0.1:{port}/0", "hot_state"),
    ],
)
def test_serve_refuses_to_start_without_its_stores(
    config: Path, env: dict[str, str], variable: str, url: str, store: str
) -> None:
    closed = free_port()
    result = bastion(["serve", "-c", str(config)], {**env, variable: url.format(port=closed)})
    assert result.returncode == 3
    assert f"{store} unavailable" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_serves_the_embedded_default(tmp_path: Path) -> None:
    port, upstream_port, app_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            *BASTION,
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            "--upstream-port",
            str(upstream_port),
            "--app-port",
            str(app_port),
        ],
        env={**os.environ, "BASTION_CONFIG": "", "BASTION_MASTER_KEY": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert ready.status_code == 200
        assert httpx.get(f"{url}/jwks.json").json()["keys"]
        discovery = httpx.get(f"{url}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == f"http://localhost:{port}", "passkeys need a host name"
        authorize = httpx.get(
            f"{url}/authorize",
            params={
                "client_id": "demo-app",
                "redirect_uri": "http://127.0.0.1:9/callback",
                "response_type": "code",
                "scope": "openid",
                "code_challenge": "E" * 43,
                "code_challenge_method": "S256",
            },
        )
        assert authorize.headers["location"].startswith("/login?"), "the demo app exists"
        # The gateway guards the naive upstream, which answers anyone directly.
        assert httpx.get(f"{url}/api/users/demo/notes").status_code == 401
        assert httpx.get(f"{url}/api/debug/config").status_code == 404
        direct = f"http://127.0.0.1:{upstream_port}/debug/config"
        for _ in range(50):
            try:
                assert httpx.get(direct).status_code == 200
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the demo upstream did not start")
        # The demo app starts the authorization request itself, for its loopback URI.
        for _ in range(50):
            try:
                sign_in = httpx.get(f"http://127.0.0.1:{app_port}/signin")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the demo app did not start")
        assert sign_in.status_code == 303
        target = urlsplit(sign_in.headers["location"])
        request = parse_qs(target.query)
        assert f"{target.scheme}://{target.netloc}" == f"http://localhost:{port}"
        assert request["redirect_uri"] == [f"http://127.0.0.1:{app_port}/callback"]
        assert request["code_challenge_method"] == ["S256"]
        assert "httponly" in sign_in.headers["set-cookie"].lower()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    assert f"http://localhost:{port}/healthz" in output
    assert f"http://localhost:{port}/account" in output
    assert f"http://127.0.0.1:{app_port}/" in output
    assert f"127.0.0.1:{port}" not in output, "Bastion is named by the issuer's host"
    assert "DEVELOPMENT MASTER KEY" in output
    assert (tmp_path / "demo" / "bastion.db").exists()
    password_file = tmp_path / "demo" / "demo-user-password.txt"
    assert password_file.stat().st_mode & 0o077 == 0
    assert password_file.read_text().strip() not in output


def test_demo_names_a_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        app_port = taken.getsockname()[1]
        args = ["demo", "--dir", str(tmp_path / "demo"), "--app-port", str(app_port)]
        result = bastion([*args, "--port", str(free_port())], {"BASTION_CONFIG": ""})
    assert result.returncode == 1
    assert f"the demo app cannot listen on 127.0.0.1:{app_port}" in result.stderr
    assert "--app-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo" / "bastion.db").exists(), "nothing started"


def test_server_logs_carry_no_tokens(tmp_path: Path, env: dict[str, str]) -> None:
    """RFC 6750 §5.3 warns that tokens in URLs end up in logs; ours must not keep them."""
    secret = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJldmUifQ.c2lnbmF0dXJl"
    config = write_config(tmp_path, "[server]\naccess_log = true\n")
    assert bastion(["db", "upgrade", "-c", str(config)], env).returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["-c", str(config), "--port", str(port)], env, url) as process:
        httpx.get(f"{url}/healthz?access_token={secret}&code=abc123xyz")
        httpx.get(f"{url}/nowhere", headers={"authorization": f"Bearer {secret}"})
    output = process.stdout.read() if process.stdout else ""
    assert "GET /healthz?access_token=[REDACTED]" in output, output
    assert secret not in output
    assert "abc123xyz" not in output


def test_access_log_is_off_by_default(config: Path, env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["-c", str(config), "--port", str(port)], env, url) as process:
        httpx.get(f"{url}/healthz?marker=xyz123")
    output = process.stdout.read() if process.stdout else ""
    assert "xyz123" not in output


def test_hsts_behind_a_declared_proxy_on_a_real_server(tmp_path: Path, env: dict[str, str]) -> None:
    """Uvicorn rewrites the client address from X-Forwarded-For; HSTS must not depend on it."""
    config = write_config(tmp_path, '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n')
    assert bastion(["db", "upgrade", "-c", str(config)], env).returncode == 0
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(["-c", str(config), "--port", str(port)], env, url):
        forwarded = httpx.get(f"{url}/healthz", headers={"x-forwarded-for": "198.51.100.7"})
        plain = httpx.get(f"{url}/healthz")
    assert forwarded.headers["strict-transport-security"].startswith("max-age=")
    assert plain.headers["strict-transport-security"].startswith("max-age=")
