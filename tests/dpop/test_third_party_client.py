"""A DPoP client this project did not write (requests-oauth2client, RFC 9449) against
``bastion serve`` on a real socket: code + PKCE + DPoP with ``dpop_jkt``, the nonce dance
at the token endpoint and at the gateway, refresh, and a gateway call."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import requests
from requests_oauth2client import DPoPKey, DPoPToken, InvalidGrant, OAuth2Client

from tests.authserver.test_third_party_client import PASSWORD, follow_browser
from tests.conftest import write_config
from tests.support.recorder import Recorder
from tests.support.server import bastion, serving
from tests.support.services import free_port
from tests.support.upstream import serve_in_thread

REDIRECT = "http://127.0.0.1:53682/callback"


def test_code_pkce_dpop_nonce_refresh_and_gateway(tmp_path: Path, master_key_b64: str) -> None:
    recorder = Recorder()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve_in_thread(recorder) as upstream:
        config = write_config(
            tmp_path,
            f'''
issuer = "{base}"
[server]
port = {port}
[oauth.dpop]
require_for_public_clients = true
require_nonce = true
[[oauth.clients]]
client_id = "native"
redirect_uris = ["http://127.0.0.1/callback"]
scopes = ["openid", "profile", "orders:read"]
[[gateway.upstreams]]
name = "orders"
url = "{upstream}"
credential = {{ type = "token_exchange", audience = "https://orders.internal" }}
[[gateway.routes]]
methods = ["GET"]
path = "/orders"
upstream = "orders"
auth = "bastion"
require_dpop = true
scopes = ["orders:read"]
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
        with serving(["-c", str(config)], env, base):
            metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
            assert "ES256" in metadata["dpop_signing_alg_values_supported"]
            client = OAuth2Client(
                token_endpoint=metadata["token_endpoint"],
                authorization_endpoint=metadata["authorization_endpoint"],
                client_id="native",
                redirect_uri=REDIRECT,
                # The library insists on https endpoints unless told this is a test.
                testing=True,
            )
            key = DPoPKey.generate(alg="ES256")
            # RFC 9449 §10: the library sends dpop_jkt with the authorization request.
            # Without openid: the library's ID token check drops its DPoP key (1.8.0).
            request = client.authorization_request(scope="orders:read", dpop_key=key)
            assert f"dpop_jkt={key.dpop_jkt}" in str(request.uri)
            with httpx.Client(base_url=base) as browser:
                callback = follow_browser(browser, str(request.uri))
            assert parse_qs(urlsplit(callback).query)["iss"] == [base]
            response = request.validate_callback(callback)
            # The library answers the AS's use_dpop_nonce by itself (§8).
            token = client.authorization_code(response, dpop_key=key)
            assert isinstance(token, DPoPToken)
            assert token.token_type.lower() == "dpop"

            # A gateway call, with the resource server's nonce dance (§9).
            answer = requests.get(f"{base}/api/orders", auth=token, timeout=10)
            assert answer.status_code == 200, answer.text
            seen = recorder.last
            assert "dpop" not in seen.headers
            assert token.access_token not in seen.headers["authorization"]
            # The same token without its proof is refused.
            bare = httpx.get(
                f"{base}/api/orders", headers={"authorization": f"Bearer {token.access_token}"}
            )
            assert bare.status_code == 401

            refreshed = client.refresh_token(token, dpop_key=key)
            assert isinstance(refreshed, DPoPToken)
            assert refreshed.refresh_token != token.refresh_token
            # With another key the refresh token is useless (RFC 9449 §5).
            # The same refresh token held with a thief's key.
            thief = DPoPToken(
                access_token=refreshed.access_token,
                refresh_token=refreshed.refresh_token,
                _dpop_key=DPoPKey.generate(alg="ES256"),
            )
            with pytest.raises(InvalidGrant):
                client.refresh_token(thief)
