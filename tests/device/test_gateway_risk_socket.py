"""Device risk answers over a real socket: Bastion served by uvicorn on loopback in
front of an upstream on its own socket, the device records written through the SQL
store and the tokens minted by a second runtime on the same database and key ring."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bastion import wiring
from bastion.accounts.levels import ACR_PASSWORD
from bastion.authserver.access import Authentication
from bastion.config import load_settings
from bastion.device import anomalies
from bastion.device.records import Device
from bastion.store.sql.devices import SqlDeviceStore
from bastion.web.app import build_app
from tests.conftest import write_config
from tests.support import schema
from tests.support.dpop import DeviceKey
from tests.support.recorder import Recorder
from tests.support.services import free_port, unique_name
from tests.support.upstream import serve_in_thread

CONFIG = """
issuer = "{issuer}"
[hot_state]
key_prefix = "{prefix}:"
[[gateway.upstreams]]
name = "api"
url = "{url}"
[[gateway.routes]]
methods = ["GET"]
path = "/orders"
upstream = "api"
auth = "bastion"
device = {{}}
[[gateway.routes]]
methods = ["GET"]
path = "/audited"
upstream = "api"
upstream_path = "/orders"
auth = "bastion"
device = {{ mode = "audit" }}
"""


def test_allow_step_up_deny_and_audit_mode_over_a_socket(
    tmp_path: Path, environ: dict[str, str], redis_url: str
) -> None:
    # Hot state in Redis, shared with the test's own runtime: an anomaly it marks is
    # seen by the served process, as by every worker.
    environ = {**environ, "BASTION_REDIS_URL": redis_url}
    recorder = Recorder()
    with serve_in_thread(recorder) as upstream:
        # The issuer is the served address: DPoP proofs name it (htu).
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        body = CONFIG.format(issuer=issuer, url=upstream, prefix=unique_name("risk"))
        settings = load_settings(write_config(tmp_path, body), environ)
        asyncio.run(schema.migrate(settings))
        app = build_app(settings, lambda: wiring.open_runtime(settings, environ=environ))
        with serve_in_thread(app, port, lifespan="on"):
            good, cloned, unknown = DeviceKey(), DeviceKey(), DeviceKey()

            async def prepare() -> list[str]:
                async with wiring.open_runtime(
                    settings, environ=environ, key_ring="load"
                ) as runtime:
                    store = SqlDeviceStore(runtime.database)
                    now = runtime.clock.now()
                    for name, key in (("good", good), ("cloned", cloned)):
                        await store.add(
                            Device(
                                device_id=f"dev-{name}",
                                platform="ios",
                                client_id="mobile",
                                level="device",
                                first_seen=now,
                                last_seen=now,
                                attested_at=now,
                                dpop_jkt=key.jkt,
                                user_ids=("alice",),
                            )
                        )
                    tokens = []
                    for key in (good, cloned, unknown):
                        token, _ = await runtime.auth.access.mint(
                            client_id="mobile",
                            who=Authentication("alice", now, ACR_PASSWORD),
                            scope=(),
                            audience=(),
                            jkt=key.jkt,
                        )
                        tokens.append(token)
                    return tokens

            tokens = asyncio.run(prepare())

            def call(path: str, key: DeviceKey, token: str) -> httpx.Response:
                proof = key.proof("GET", f"{issuer}/api{path}", access_token=token)
                return httpx.get(
                    f"{issuer}/api{path}",
                    headers={"authorization": f"DPoP {token}", "DPoP": proof},
                )

            assert call("/orders", good, tokens[0]).status_code == 200
            stepped = call("/orders", unknown, tokens[2])
            assert stepped.status_code == 401
            assert 'error="insufficient_user_authentication"' in stepped.headers["www-authenticate"]
            # The same request in audit mode: decided, recorded, not enforced.
            assert call("/audited", unknown, tokens[2]).status_code == 200

            async def mark_clone() -> None:
                async with wiring.open_runtime(
                    settings, environ=environ, key_ring="load"
                ) as runtime:
                    await anomalies.mark(runtime.hot, "dev-cloned", "counter_regression")

            assert call("/orders", cloned, tokens[1]).status_code == 200
            asyncio.run(mark_clone())
            denied = call("/orders", cloned, tokens[1])
            assert denied.status_code == 403
            assert denied.headers["content-type"] == "application/problem+json"
            assert len(recorder.seen) == 3  # good, audited, the clone before its mark
