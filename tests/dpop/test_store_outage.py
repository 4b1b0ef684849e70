"""With hot state (Redis) gone, a proof cannot be checked for replay: the request fails
closed (503) and nothing is issued; without a proof nothing changes."""

from __future__ import annotations

from pathlib import Path

from bastion.oauth.clients import hash_secret
from tests.gateway.conftest import gateway_app
from tests.support.dpop import DeviceKey
from tests.support.services import unique_name
from tests.support.tcpproxy import TcpProxy, via

SECRET = "backend-secret-0123456789abcdefghijklmnopqrstuv"
ISSUER = "http://127.0.0.1:8000"


def test_redis_outage_fails_closed_for_proofs(
    tmp_path: Path, proxies: tuple[TcpProxy, TcpProxy], redis_url: str, environ: dict[str, str]
) -> None:
    _, hot = proxies
    body = f"""
issuer = "{ISSUER}"
[hot_state]
key_prefix = "{unique_name("dpop")}:"
[guards.endpoints]
token = []
[[oauth.clients]]
client_id = "backend"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["reports"]
secret_sha256 = "{hash_secret(SECRET)}"
"""
    env = {**environ, "BASTION_REDIS_URL": via(redis_url, hot)}
    data = {"grant_type": "client_credentials", "scope": "reports"}
    key = DeviceKey()
    with gateway_app(tmp_path, body, env, raise_server_exceptions=False) as gw:

        def token(proof: str | None) -> int:
            headers = {} if proof is None else {"DPoP": proof}
            answer = gw.client.post("/token", data=data, auth=("backend", SECRET), headers=headers)
            return int(answer.status_code)

        assert token(key.proof("POST", f"{ISSUER}/token")) == 200
        hot.stop()
        assert token(key.proof("POST", f"{ISSUER}/token")) == 503
        assert token(None) == 200
        hot.start()
        statuses = [token(key.proof("POST", f"{ISSUER}/token")) for _ in range(20)]
        assert 200 in statuses
