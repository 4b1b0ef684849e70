"""What the device-trust tests share: a configuration declaring an iOS app and two
Android apps (one verified here with Play Console keys, one through Google's decoder),
the test's own App Attest CA in place of Apple's, and the stores in pairs (SQLite with
in-memory hot state, PostgreSQL with Redis), so every implementation is covered."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bastion.audit import AuditPipeline
from bastion.audit.sinks import MemorySink
from bastion.clock import FixedClock
from bastion.config import Settings, load_settings
from bastion.device.records import DeviceStore
from bastion.device.service import DeviceTrust
from bastion.store.memory.hot import MemoryHotStore
from bastion.store.protocols import HotStore
from bastion.store.redis.hot import RedisHotStore
from bastion.store.sql.database import Database
from bastion.store.sql.devices import SqlDeviceStore
from tests.conftest import write_config
from tests.support import schema
from tests.support.app_attest import AppAttestDevice, AttestationCA
from tests.support.play_integrity import CERT_DIGEST, PACKAGE, ConsoleKeys, FakeDecoder
from tests.support.services import unique_name

TEAM = "ABCDE12345"
BUNDLE = "com.example.app"
BETA = "com.example.app.beta"
APP_ID = f"{TEAM}.{BUNDLE}"
# Made once: a CA per test would cost two P-384 keys each time.
CA = AttestationCA.make(datetime.now(UTC))

CONFIG = """
issuer = "http://127.0.0.1:8000"
[device]
apple_root_file = "apple-root.pem"
{device}
[[oauth.clients]]
client_id = "ios-app"
redirect_uris = ["com.example.app:/cb"]
[oauth.clients.device.apple]
team_id = "{team}"
bundle_ids = ["{bundle}", "{beta}"]
[[oauth.clients]]
client_id = "other-ios"
redirect_uris = ["com.example.other:/cb"]
[oauth.clients.device.apple]
team_id = "ZZZZZ99999"
bundle_ids = ["{bundle}"]
[[oauth.clients]]
client_id = "android-app"
redirect_uris = ["com.example.app:/cb2"]
[oauth.clients.device.android]
package_name = "{package}"
certificate_digests = ["{digest}"]
decryption_key_file = "{decryption}"
verification_key_file = "{verification}"
[[oauth.clients]]
client_id = "android-std"
redirect_uris = ["com.example.app:/cb3"]
[oauth.clients.device.android]
package_name = "{package}"
certificate_digests = ["{digest}"]
[[oauth.clients]]
client_id = "plain"
redirect_uris = ["com.example.plain:/cb"]
{extra}
"""


def device_settings(
    directory: Path,
    environ: dict[str, str],
    console: ConsoleKeys,
    *,
    device: str = "",
    extra: str = "",
) -> Settings:
    (directory / "apple-root.pem").write_bytes(CA.root_pem())
    decryption, verification = console.write(directory)
    body = CONFIG.format(
        team=TEAM,
        bundle=BUNDLE,
        beta=BETA,
        package=PACKAGE,
        digest=CERT_DIGEST,
        decryption=decryption.name,
        verification=verification.name,
        device=device,
        extra=extra,
    )
    return load_settings(write_config(directory, body), environ)


@pytest.fixture(params=[("sqlite", "memory"), ("postgres", "redis")], ids=["sqlite", "postgres"])
def store_environ(
    request: pytest.FixtureRequest, tmp_path: Path, master_key_b64: str
) -> dict[str, str]:
    """The environment naming the stores of one pair (SQLite + memory, PostgreSQL +
    Redis)."""
    database, hot = request.param
    environ = {"BASTION_MASTER_KEY": master_key_b64}
    if database == "postgres":
        environ["BASTION_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    if hot == "redis":
        environ["BASTION_REDIS_URL"] = request.getfixturevalue("redis_url")
    return environ


@dataclass
class World:
    trust: DeviceTrust
    devices: DeviceStore
    hot: HotStore
    clock: FixedClock
    audit: MemorySink
    console: ConsoleKeys
    decoder: FakeDecoder
    settings: Settings
    closers: list[Any] = field(default_factory=list)

    def events(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["action"] == action]

    def apple(self, app_id: str = APP_ID) -> AppAttestDevice:
        return AppAttestDevice(CA, app_id)


async def open_world(
    settings: Settings, console: ConsoleKeys, clock: FixedClock
) -> tuple[World, Database]:
    await schema.migrate(settings)
    database = Database(settings.database_url)
    hot: HotStore
    if settings.redis_url is None:
        hot = MemoryHotStore(clock)
    else:
        hot = RedisHotStore(settings.redis_url, prefix=f"{unique_name('device')}:")
    sink = MemorySink()
    decoder = FakeDecoder()
    devices = SqlDeviceStore(database)
    trust = DeviceTrust(settings, devices, hot, AuditPipeline([sink]), clock, decoder)
    return World(trust, devices, hot, clock, sink, console, decoder, settings), database


@pytest.fixture
async def world(tmp_path: Path, store_environ: dict[str, str]) -> AsyncIterator[World]:
    console = ConsoleKeys()
    settings = device_settings(tmp_path, store_environ, console)
    opened, database = await open_world(settings, console, FixedClock(time.time()))
    yield opened
    await opened.hot.close()
    await database.close()
