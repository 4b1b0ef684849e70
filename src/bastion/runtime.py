"""Everything a request may need, built once per process by ``wiring.open_runtime``.

The web layer receives this object when the process starts and hands each router the
services it uses; nothing looks it up per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bastion.audit import AuditPipeline
from bastion.authserver.server import AuthServer
from bastion.clock import Clock
from bastion.config import Settings
from bastion.crypto.signing import SigningKeys
from bastion.device.service import DeviceTrust
from bastion.errors import StoreUnavailable
from bastion.gateway.pipeline import Gateway
from bastion.guards.service import Guards
from bastion.store.protocols import HotStore
from bastion.store.sql.database import Database
from bastion.store.sql.pruning import Pruner

log = logging.getLogger("bastion")

READINESS_TIMEOUT = 2.0


@dataclass
class Runtime:
    """Everything a request may need, built once per process."""

    settings: Settings
    clock: Clock
    database: Database
    hot: HotStore
    keys: SigningKeys
    audit: AuditPipeline
    auth: AuthServer
    guards: Guards
    gateway: Gateway | None = None
    # Device attestation and assertions (docs/device-trust.md).
    device: DeviceTrust | None = None

    def reload(self) -> None:
        """Re-read what changes on disk without a restart (``SIGHUP``): secret files."""
        log.info("reloading secret files")
        if self.gateway is not None:
            self.gateway.reload_credentials()

    @asynccontextmanager
    async def housekeeping(self) -> AsyncIterator[None]:
        """Background work of a served process: deleting expired rows every interval."""
        interval = self.settings.database.prune_interval
        if interval <= 0:
            yield
            return
        pruner = Pruner(
            self.database,
            self.clock,
            interval=interval,
            max_token_lifetime=self.settings.keys.max_token_lifetime,
        )
        async with pruner.running():
            yield

    async def check_stores(self) -> dict[str, str]:
        async def probe(check: Awaitable[None]) -> str:
            try:
                async with asyncio.timeout(READINESS_TIMEOUT):
                    await check
            except (StoreUnavailable, TimeoutError):
                return "unavailable"
            except Exception:
                # A store that answers with errors is no more usable than a silent one.
                log.exception("readiness probe failed")
                return "unavailable"
            return "ok"

        database, hot = await asyncio.gather(probe(self.database.ping()), probe(self.hot.ping()))
        return {"database": database, "hot_state": hot}
