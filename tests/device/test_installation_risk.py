"""A per-installation client (attestation-gated registration, RFC 7591) is judged by the
gateway's device risk as the app it is an installation of, on a real socket: the app's
``min_app_version`` and ``released_versions`` apply to the version the installation
registered with (``software_version``, §2), and a cohort listing the app's client id
covers its installations. Otherwise a build the app client would be refused escapes by
registering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.device import test_attested_registration as registration
from tests.support.dpop import DeviceKey
from tests.support.recorder import Recorder
from tests.support.upstream import serve_in_thread

APP_DECLARATION = """[oauth.clients.device]
min_app_version = "1.0"
released_versions = ["1.0", "1.4.2"]
[oauth.clients.device.apple]
team_id = "{team}"
bundle_ids = ["{bundle}"]
"""
GATEWAY = """
[device.cohorts.apps]
clients = ["shop"]
[[gateway.upstreams]]
name = "judged"
url = "UPSTREAM"
credential = {{ type = "none" }}
[[gateway.routes]]
methods = ["POST"]
path = "/judged"
upstream = "judged"
auth = "bastion"
device = {{ cohort = "apps" }}
"""


@pytest.fixture
def served(
    tmp_path: Path, master_key_b64: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[registration.Served]:
    recorder = Recorder()
    with serve_in_thread(recorder) as upstream:
        config = registration.CONFIG.replace(
            '[oauth.clients.device.apple]\nteam_id = "{team}"\nbundle_ids = ["{bundle}"]\n',
            APP_DECLARATION,
            1,
        )
        # [device.cohorts.apps] belongs under [device], before the other tables.
        config = config.replace(
            "[oauth.registration]",
            GATEWAY.split("[[gateway.upstreams]]")[0] + "[oauth.registration]",
            1,
        )
        config += "[[gateway.upstreams]]" + GATEWAY.split("[[gateway.upstreams]]")[1].replace(
            "UPSTREAM", upstream
        )
        monkeypatch.setattr(registration, "CONFIG", config)
        url = f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
        with registration.serving(tmp_path, url, master_key_b64) as started:
            yield started


def pay(served: registration.Served, key: DeviceKey, version: str) -> httpx.Response:
    answer = served.register(served.apple(key, software_version=version), key)
    assert answer.status_code == 201, answer.text
    client_id = answer.json()["client_id"]
    tokens = registration._code_flow(served, client_id, key, "openid orders:read")
    access = tokens["access_token"]
    return served.http.post(
        "/api/judged",
        content=b"{}",
        headers={
            "authorization": f"DPoP {access}",
            "DPoP": key.proof("POST", f"{served.url}/api/judged", access_token=access),
            "content-type": "application/json",
        },
    )


def risk(served: registration.Served) -> list[dict[str, Any]]:
    return [e["details"] for e in served.events("device.risk")]


def test_an_installation_is_judged_against_its_apps_versions(
    served: registration.Served,
) -> None:
    released = pay(served, DeviceKey(), "1.4.2")
    assert released.status_code == 200, released.text
    # 0.0.1: below min_app_version (30) and never released (60), on an App Attest
    # device (10): denied, exactly as the app client itself would be.
    old = pay(served, DeviceKey(), "0.0.1")
    assert old.status_code == 403, old.text
    judged = risk(served)
    assert len(judged) == 2, "the cohort listing the app covers both installations"
    assert judged[1]["signals"]["app_outdated"]
    assert judged[1]["signals"]["app_unreleased"]
    assert judged[1]["enforced"] == "deny"
