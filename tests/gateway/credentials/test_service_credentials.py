"""Upstream credentials that change: a static secret re-read from its file (on change and
on SIGHUP), and OAuth client credentials (RFC 6749 §4.4) fetched from the upstream's own
token endpoint, shared, renewed before expiry, fail closed when none can be had."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from bastion.clock import FixedClock
from tests.conftest import write_config
from tests.gateway.conftest import GatewayHarness, behind_recorder
from tests.support.inprocess import InProcess
from tests.support.recorder import Answer, Recorder
from tests.support.services import free_port
from tests.support.upstream import serve_in_thread

ROUTE = """
[[gateway.routes]]
name = "items"
methods = ["GET"]
path = "/items"
upstream = "api"
auth = "bastion"
"""


LOOKUP_ROUTE = """
[[gateway.routes]]
name = "item"
methods = ["GET"]
path = "/items/{item_id}"
upstream = "api"
auth = "bastion"
objects = { lookup = "/items/{item_id}/owner" }
"""


class TokenEndpoint:
    """An upstream's own authorization server: counts requests, answers as scripted."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.expires_in: object = 300
        self.status = 200
        self.token_type = "Bearer"
        self.delay = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(
            {"form": parse_qs(body.decode()), "auth": headers.get("authorization")}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        answer: dict[str, Any] = {
            "access_token": f"upstream-token-{len(self.requests)}",
            "token_type": self.token_type,
        }
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        if self.status != 200:
            answer = {"error": "invalid_client"}
        payload = orjson.dumps(answer)
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


# --- a static secret in a file ---------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("key-one\n", encoding="utf-8")
    return path


@pytest.fixture
def static_gw(
    tmp_path: Path, key_file: Path, recorder: Recorder, environ: dict[str, str], now: FixedClock
) -> Iterator[GatewayHarness]:
    template = (
        'issuer = "http://127.0.0.1:8000"\n[[gateway.upstreams]]\nname = "api"\nurl = "{url}"\n'
        'credential = {{ type = "static", header = "x-api-key", file = "{file}" }}\n'
        + ROUTE.replace("{", "{{").replace("}", "}}")
    )
    with behind_recorder(tmp_path, template, recorder, environ, now, file=key_file) as harness:
        yield harness


def test_static_secret_file_is_re_read_when_it_changes(
    static_gw: GatewayHarness, recorder: Recorder, key_file: Path, now: FixedClock
) -> None:
    token = static_gw.bearer(static_gw.mint())
    static_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["x-api-key"] == "key-one"
    # A Kubernetes-style rotation: a new file swapped into place.
    replacement = key_file.with_name("api-key.new")
    replacement.write_text("key-two-longer\n", encoding="utf-8")
    os.replace(replacement, key_file)
    now.advance(1.5)
    static_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["x-api-key"] == "key-two-longer"


def test_unreadable_secret_file_keeps_the_last_good_value(
    static_gw: GatewayHarness, recorder: Recorder, key_file: Path, now: FixedClock
) -> None:
    token = static_gw.bearer(static_gw.mint())
    for broken in (b"", b"two\nlines", b"\xff\xfe"):
        key_file.write_bytes(broken)
        now.advance(1.5)
        assert static_gw.client.get("/api/items", headers=token).status_code == 200
        assert recorder.last.headers["x-api-key"] == "key-one"
    key_file.unlink()
    now.advance(1.5)
    static_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["x-api-key"] == "key-one"


def test_a_copy_keeping_size_and_time_is_still_seen(
    static_gw: GatewayHarness, recorder: Recorder, key_file: Path, now: FixedClock
) -> None:
    """``cp -p`` or ``rsync -t`` keep the size and modification time; the inode change
    time still moves."""
    token = static_gw.bearer(static_gw.mint())
    stat = key_file.stat()
    with key_file.open("r+b") as handle:  # same inode, same size
        handle.write(b"key-six\n")
    os.utime(key_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    now.advance(1.5)
    static_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["x-api-key"] == "key-six"


def test_reload_reads_the_file_at_once(
    static_gw: GatewayHarness, recorder: Recorder, key_file: Path
) -> None:
    """What SIGHUP does: no waiting for the next look at the file."""
    token = static_gw.bearer(static_gw.mint())
    key_file.write_text("key-new", encoding="utf-8")
    static_gw.runtime.reload()
    static_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["x-api-key"] == "key-new"


def test_sighup_to_a_running_server(
    tmp_path: Path, key_file: Path, recorder: Recorder, master_key_b64: str
) -> None:
    """A real ``bastion serve``: SIGHUP re-reads the file at once (it used to end the
    process, the default action), and says so in the log."""
    port = free_port()
    with serve_in_thread(recorder) as url:
        config = write_config(
            tmp_path,
            f'issuer = "http://127.0.0.1:{port}"\n[server]\nport = {port}\n'
            f'[[gateway.upstreams]]\nname = "api"\nurl = "{url}"\n'
            f'credential = {{ type = "static", header = "x-api-key", file = "{key_file}" }}\n'
            '[[gateway.routes]]\nmethods = ["GET"]\npath = "/open"\nupstream = "api"\n'
            'auth = "public"\n',
        )
        env = {
            **os.environ,
            "BASTION_MASTER_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        }
        subprocess.run(
            [sys.executable, "-m", "bastion", "db", "upgrade", "-c", str(config)],
            env=env,
            check=True,
            capture_output=True,
        )
        log = tmp_path / "serve.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "bastion", "serve", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base)
            assert httpx.get(f"{base}/api/open").status_code == 200
            assert recorder.last.headers["x-api-key"] == "key-one"
            key_file.write_text("key-six\n", encoding="utf-8")
            server.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert server.poll() is None  # SIGHUP no longer ends the process
            httpx.get(f"{base}/api/open")
            assert recorder.last.headers["x-api-key"] == "key-six"
            assert "reloading secret files" in log.read_text(errors="replace")
        finally:
            server.terminate()
            server.wait(timeout=10)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("bastion serve did not become ready")


# --- client credentials against the upstream's token endpoint --------------------------------


@pytest.fixture
def endpoint() -> TokenEndpoint:
    return TokenEndpoint()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "client-secret"
    path.write_text("s3cret:with/odd&chars", encoding="utf-8")
    return path


@pytest.fixture
def oauth_gw(
    tmp_path: Path,
    endpoint: TokenEndpoint,
    secret_file: Path,
    recorder: Recorder,
    environ: dict[str, str],
    now: FixedClock,
) -> Iterator[GatewayHarness]:
    template = (
        'issuer = "http://127.0.0.1:8000"\n[[gateway.upstreams]]\nname = "api"\nurl = "{url}"\n'
        '[gateway.upstreams.credential]\ntype = "client_credentials"\n'
        'token_url = "{token_url}/oauth/token"\nclient_id = "bastion gw"\nfile = "{file}"\n'
        'scope = "items.read"\nresource = "https://api.internal"\n'
        + (ROUTE + LOOKUP_ROUTE).replace("{", "{{").replace("}", "}}")
    )
    upstreams = InProcess()
    token_url = upstreams.serve(endpoint)
    with behind_recorder(
        tmp_path, template, recorder, environ, now, upstreams, token_url=token_url, file=secret_file
    ) as harness:
        yield harness


def test_client_credentials_token_is_fetched_once_and_sent(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder
) -> None:
    token = oauth_gw.bearer(oauth_gw.mint())
    for _ in range(5):
        assert oauth_gw.client.get("/api/items", headers=token).status_code == 200
        assert recorder.last.headers["authorization"] == "Bearer upstream-token-1"
    assert len(endpoint.requests) == 1
    request = endpoint.requests[0]
    assert request["form"] == {
        "grant_type": ["client_credentials"],
        "scope": ["items.read"],
        "resource": ["https://api.internal"],
    }
    # RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    decoded = base64.b64decode(request["auth"].split()[1]).decode()
    assert decoded == "bastion+gw:s3cret%3Awith%2Fodd%26chars"


async def _concurrent(harness: GatewayHarness, token: dict[str, str], n: int) -> list[int]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.client.app), base_url="http://127.0.0.1:8000"
    ) as client:
        answers = await asyncio.gather(*(client.get("/api/items", headers=token) for _ in range(n)))
    return [a.status_code for a in answers]


def test_concurrent_requests_share_one_fetch(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint
) -> None:
    endpoint.delay = 0.1
    token = oauth_gw.bearer(oauth_gw.mint())
    statuses = oauth_gw.call(_concurrent, oauth_gw, token, 32)
    assert statuses == [200] * 32
    assert len(endpoint.requests) == 1


def test_renewed_before_expiry_and_fail_closed_after(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder, now: FixedClock
) -> None:
    token = oauth_gw.bearer(oauth_gw.mint(lifetime=3600))
    oauth_gw.client.get("/api/items", headers=token)
    # 60 s before expiry a request still uses the current token and starts a renewal.
    now.advance(300 - 50)
    oauth_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["authorization"] == "Bearer upstream-token-1"
    time.sleep(0.2)
    oauth_gw.client.get("/api/items", headers=token)
    assert recorder.last.headers["authorization"] == "Bearer upstream-token-2"
    # The token endpoint breaks: the current token serves while it is usable ...
    endpoint.status = 401
    now.advance(300 - 30)
    assert oauth_gw.client.get("/api/items", headers=token).status_code == 200
    # ... and then nothing is sent without a credential: 502, not an unauthenticated call.
    now.advance(25)
    seen = len(recorder.seen)
    answer = oauth_gw.client.get("/api/items", headers=token)
    assert answer.status_code == 502
    assert "upstream-token" not in answer.text
    assert len(recorder.seen) == seen


@pytest.mark.parametrize(
    "change", [{"token_type": "DPoP"}, {"expires_in": "300"}, {"expires_in": -1}]
)
def test_unusable_token_answers_are_refused(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder, change: dict[str, Any]
) -> None:
    for name, value in change.items():
        setattr(endpoint, name, value)
    token = oauth_gw.bearer(oauth_gw.mint())
    assert oauth_gw.client.get("/api/items", headers=token).status_code == 502
    assert recorder.seen == []


def test_upstream_401_fetches_a_new_token(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder, secret_file: Path
) -> None:
    """The upstream revoked the token (or the client secret rotated): the next request
    gets a fresh one, with the secret as the file now holds it."""
    token = oauth_gw.bearer(oauth_gw.mint())
    oauth_gw.client.get("/api/items", headers=token)
    recorder.default = Answer(status=401)
    assert oauth_gw.client.get("/api/items", headers=token).status_code == 502
    secret_file.write_text("rotated", encoding="utf-8")
    oauth_gw.runtime.reload()
    recorder.default = Answer()
    assert oauth_gw.client.get("/api/items", headers=token).status_code == 200
    assert recorder.last.headers["authorization"] == "Bearer upstream-token-2"
    decoded = base64.b64decode(endpoint.requests[-1]["auth"].split()[1]).decode()
    assert decoded == "bastion+gw:rotated"


def test_an_app_cannot_make_every_request_fetch_a_token(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder, now: FixedClock
) -> None:
    """Upstream 401s (a wrong PIN, say) drop the token at most once per interval, so an
    app cannot turn its requests into load on the upstream's authorization server."""
    token = oauth_gw.bearer(oauth_gw.mint(lifetime=3600))
    recorder.default = Answer(status=401)
    for _ in range(20):
        oauth_gw.client.get("/api/items", headers=token)
    assert len(endpoint.requests) == 2  # the first token, and one new after the first 401
    now.advance(11)
    oauth_gw.client.get("/api/items", headers=token)
    oauth_gw.client.get("/api/items", headers=token)
    assert len(endpoint.requests) == 3


def test_a_401_on_the_ownership_look_up_renews_the_token(
    oauth_gw: GatewayHarness, endpoint: TokenEndpoint, recorder: Recorder
) -> None:
    token = oauth_gw.bearer(oauth_gw.mint("alice"))
    recorder.answers["/items/1/owner"] = Answer(status=401)
    assert oauth_gw.client.get("/api/items/1", headers=token).status_code == 502
    recorder.answers["/items/1/owner"] = Answer(body={"owner": "alice"})
    assert oauth_gw.client.get("/api/items/1", headers=token).status_code == 200
    assert recorder.last.headers["authorization"] == "Bearer upstream-token-2"
