"""A third-party OAuth client (Authlib) completes code + PKCE, refresh and revocation
against ``bastion serve`` on a real socket (RFC 6749 §4.1, RFC 7636, RFC 7009)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client.errors import OAuthError

from tests.conftest import write_config
from tests.support.server import bastion, serving
from tests.support.services import free_port

with warnings.catch_warnings():
    # Authlib 1.9 asks for httpx2 instead of httpx; the suite moves when starlette's
    # TestClient does. Importing authlib.deprecate (above) puts an "always" filter for
    # Authlib's warnings in front of pytest's, so an ignore in pyproject.toml never
    # applies: the filter has to be added after that import, here.
    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

PASSWORD = "a passphrase for the end to end test"


def follow_browser(browser: httpx.Client, url: str) -> str:
    """What the system browser does: sign in, approve, land on the app's redirect URI."""
    response = browser.get(url)
    while response.status_code == 303:
        location = response.headers["location"]
        if not location.startswith("/"):
            return str(location)
        page = browser.get(location)
        interaction = parse_qs(urlsplit(location).query)["interaction"][0]
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert match, page.text
        form = {"interaction": interaction, "csrf": match.group(1)}
        if location.startswith("/login"):
            form |= {"username": "erin", "password": PASSWORD}
            response = browser.post("/login", data=form)
        else:
            response = browser.post("/consent", data=form | {"decision": "allow"})
    raise AssertionError(f"unexpected answer {response.status_code}: {response.text[:300]}")


@pytest.fixture
def running(tmp_path: Path, master_key_b64: str) -> tuple[str, dict[str, str], Path]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(
        tmp_path,
        f'''
issuer = "{base}"
[server]
port = {port}
[[oauth.clients]]
client_id = "native"
redirect_uris = ["http://127.0.0.1/callback"]
scopes = ["openid", "profile"]
''',
    )
    env = {"BASTION_MASTER_KEY": master_key_b64, "BASTION_CONFIG": ""}
    assert bastion(["db", "upgrade", "-c", str(config)], env).returncode == 0
    created = bastion(
        ["users", "create", "erin", "--password-stdin", "-c", str(config)],
        env,
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    return base, env, config


def test_authlib_code_pkce_refresh_revoke(running: tuple[str, dict[str, str], Path]) -> None:
    base, env, config = running
    with serving(["-c", str(config)], env, base):
        metadata = httpx.get(f"{base}/.well-known/openid-configuration").json()
        client = OAuth2Client(
            client_id="native",
            token_endpoint_auth_method="none",
            redirect_uri="http://127.0.0.1:53682/callback",
            scope="openid profile",
            code_challenge_method="S256",
        )
        verifier = "v" * 20 + "erifier" + "x" * 30
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier
        )
        with httpx.Client(base_url=base) as browser:
            callback = follow_browser(browser, url)
        assert callback.startswith("http://127.0.0.1:53682/callback?")
        assert parse_qs(urlsplit(callback).query)["iss"] == [base]

        token = client.fetch_token(
            metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        assert token["token_type"] == "Bearer"
        userinfo = httpx.get(
            metadata["userinfo_endpoint"],
            headers={"authorization": f"Bearer {token['access_token']}"},
        )
        assert userinfo.json()["preferred_username"] == "erin"

        refreshed = client.refresh_token(
            metadata["token_endpoint"], refresh_token=token["refresh_token"]
        )
        assert refreshed["refresh_token"] != token["refresh_token"]

        revoked = client.revoke_token(
            metadata["revocation_endpoint"],
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        with pytest.raises(OAuthError, match="invalid_grant"):
            client.refresh_token(
                metadata["token_endpoint"], refresh_token=refreshed["refresh_token"]
            )
        assert state
