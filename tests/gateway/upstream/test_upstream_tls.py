"""Mutual TLS to an upstream: the gateway verifies the upstream and presents its own
certificate (RFC 8446; RFC 8705 §2 uses the same mechanism for client authentication)."""

from __future__ import annotations

import ssl
from pathlib import Path

from bastion.clock import FixedClock
from tests.gateway.conftest import gateway_app
from tests.support.pki import TestCA
from tests.support.recorder import Recorder
from tests.support.upstream import serve_in_thread

ROUTE = """
issuer = "http://127.0.0.1:8000"
[[gateway.upstreams]]
name = "bank"
url = "{url}"
credential = {{ type = "none" }}
{tls}
[[gateway.routes]]
methods = ["GET"]
path = "/balance"
upstream = "bank"
auth = "public"
"""


def test_mutual_tls(tmp_path: Path, environ: dict[str, str], now: FixedClock) -> None:
    ca = TestCA(tmp_path, "Upstream CA")
    server = ca.issue("upstream", server=True)
    client = ca.issue("gateway", server=False)
    stranger_ca = TestCA(tmp_path, "Other CA")
    stranger = stranger_ca.issue("intruder", server=False)
    recorder = Recorder()
    tls = {
        "ssl_certfile": str(server.cert),
        "ssl_keyfile": str(server.key),
        "ssl_ca_certs": str(ca.cert_path),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }
    with serve_in_thread(recorder, tls=tls) as url:
        cases = {
            # Verified both ways: the request goes through.
            f'tls_ca_file = "{ca.cert_path}"\ntls_client_cert = "{client.cert}"\n'
            f'tls_client_key = "{client.key}"': 200,
            # No client certificate: the upstream refuses the handshake.
            f'tls_ca_file = "{ca.cert_path}"': 502,
            # A certificate from another CA: refused too.
            f'tls_ca_file = "{ca.cert_path}"\ntls_client_cert = "{stranger.cert}"\n'
            f'tls_client_key = "{stranger.key}"': 502,
            # The upstream's certificate is not trusted: the gateway refuses it.
            f'tls_client_cert = "{client.cert}"\ntls_client_key = "{client.key}"': 502,
        }
        for index, (options, status) in enumerate(cases.items()):
            directory = tmp_path / f"case{index}"
            directory.mkdir()
            body = ROUTE.format(url=url, tls=options)
            with gateway_app(directory, body, environ, clock=now) as gw:
                answer = gw.client.get("/api/balance")
                assert answer.status_code == status, options
    assert len(recorder.seen) == 1
