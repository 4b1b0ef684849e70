"""Token endpoint operations per second, through the whole HTTP stack, in process.

Measures code exchange, refresh with rotation, introspection and client credentials on SQLite and on
PostgreSQL, against a baseline measured in the same run: ``GET /healthz`` through the
same app (so the ratio is "how many trivial requests one token operation costs").
Codes are written to the store beforehand, so the browser part is not measured. SQLite
runs twice: with the default `synchronous=NORMAL` and with `database.sqlite_synchronous
= "full"` (an fsync per commit).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert
from starlette.types import ASGIApp, Message

from bastion import wiring
from bastion.accounts.passwords import Passwords
from bastion.config import encode_master_key, load_settings
from bastion.errors import ConfigError
from bastion.oauth import pkce
from bastion.oauth.clients import hash_secret
from bastion.oauth.codes import CODE_LIFETIME, code_hash, new_code
from bastion.store.sql.codec import dump_list
from bastion.store.sql.schema import authorization_codes
from bastion.store.sql.users import SqlUserStore
from bench.rates import rate as measure

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
POSTGRES_URL = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ISSUER = "http://bench.invalid"
VERIFIER = "v" * 64
SECRET = secrets.token_urlsafe(32)
CONFIG = f"""
issuer = "{ISSUER}"
data_dir = "data"
[[oauth.clients]]
client_id = "app"
redirect_uris = ["com.example.app:/cb"]
scopes = ["openid", "orders:read"]
[[oauth.clients]]
client_id = "rs"
type = "confidential"
grant_types = ["client_credentials"]
secret_sha256 = "{hash_secret(SECRET)}"
introspection = true
resources = ["{ISSUER}"]
scopes = ["orders:read"]
# Per-address request limits are Bastion's, not the endpoint's cost: off here.
[guards.endpoints]
token = []
"""


async def rate(op: Callable[[int], Awaitable[Any]], concurrency: int) -> float:
    return await measure(op, concurrency, SECONDS)


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task: asyncio.Future[None] = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


async def run(label: str, database_url: str, extra: str = "") -> None:
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    (work / "bastion.toml").write_text(CONFIG + extra)
    settings = load_settings(
        work / "bastion.toml",
        {
            "BASTION_MASTER_KEY": encode_master_key(os.urandom(32)),
            "BASTION_DATABASE_URL": database_url,
        },
    )
    await wiring.migrate(settings)
    database = wiring.open_database(settings)
    user = await SqlUserStore(database).create(
        "bench", Passwords(settings.accounts.passwords).hash("x" * 12), 0.0
    )
    codes = [new_code() for _ in range(int(SECONDS * 20000))]
    now = time.time()
    # One multi-row insert: the codes are the setup, not the measurement.
    async with database.connect() as conn:
        await conn.execute(
            insert(authorization_codes),
            [
                {
                    "code_hash": code_hash(code),
                    "client_id": "app",
                    "redirect_uri": "com.example.app:/cb",
                    "code_challenge": pkce.s256(VERIFIER),
                    "scope": dump_list(("openid", "orders:read")),
                    "resources": dump_list(()),
                    "subject": user.user_id,
                    "session_id": "bench",
                    "auth_time": now,
                    "acr": "pwd",
                    "amr": dump_list(("pwd",)),
                    "nonce": None,
                    "issued_at": now,
                    "expires_at": now + CODE_LIFETIME * 10,
                    "redirect_uri_given": True,
                }
                for code in codes
            ],
        )
    await database.close()
    app = wiring.create_app(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client,
    ):

        async def exchange(i: int) -> dict[str, Any]:
            response = await client.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": codes[i],
                    "client_id": "app",
                    "redirect_uri": "com.example.app:/cb",
                    "code_verifier": VERIFIER,
                },
            )
            body: dict[str, Any] = response.json()
            if response.status_code != 200:
                raise RuntimeError(body)
            return body

        baseline = await rate(lambda _i: client.get("/healthz"), CONCURRENCY)
        exchanged = await rate(exchange, CONCURRENCY)
        # One family per worker, each rotated in sequence (the realistic shape).
        heads = [
            str((await exchange(len(codes) - 1 - n))["refresh_token"]) for n in range(CONCURRENCY)
        ]

        async def rotate(i: int) -> None:
            slot = i % CONCURRENCY
            response = await client.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": heads[slot],
                    "client_id": "app",
                },
            )
            if response.status_code != 200:
                raise RuntimeError(response.text)
            heads[slot] = response.json()["refresh_token"]

        refreshed = await rate(rotate, CONCURRENCY)
        token = (await exchange(len(codes) - 1 - CONCURRENCY))["access_token"]

        async def introspect(_i: int) -> None:
            response = await client.post("/introspect", data={"token": token}, auth=("rs", SECRET))
            if response.status_code != 200 or response.json().get("active") is not True:
                raise RuntimeError(response.text)

        introspected = await rate(introspect, CONCURRENCY)

        async def client_credentials(_i: int) -> None:
            response = await client.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "orders:read"},
                auth=("rs", SECRET),
            )
            if response.status_code != 200:
                raise RuntimeError(response.text)

        credentials = await rate(client_credentials, CONCURRENCY)
    for name, value in (
        ("GET /healthz (baseline)", baseline),
        ("code exchange", exchanged),
        ("refresh with rotation", refreshed),
        ("introspection", introspected),
        ("client credentials", credentials),
    ):
        print(f"{label:<11} {name:<26} {value:>9,.0f}/s {value / baseline:>8.3f}")


async def with_postgres() -> None:
    name = f"bastion_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        base = POSTGRES_URL.rsplit("/", 1)[0]
        await run(
            "postgresql", f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
        )
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    print(
        f"{CONCURRENCY} requests in flight, {SECONDS:.0f} s per row, one process, in-process ASGI"
    )
    print(f"{'database':<11} {'operation':<26} {'rate':>11} {'vs baseline':>8}")
    with tempfile.TemporaryDirectory() as directory:
        await run("sqlite", f"sqlite+aiosqlite:///{directory}/bench.db")
    # Power-loss durability: an fsync per commit (a Bastion without the option skips it).
    with tempfile.TemporaryDirectory() as directory:
        try:
            await run(
                "sqlite-full",
                f"sqlite+aiosqlite:///{directory}/bench.db",
                '[database]\nsqlite_synchronous = "full"\n',
            )
        except ConfigError:
            print("(sqlite-full rows skipped: no sqlite_synchronous option)", file=sys.stderr)
    try:
        await with_postgres()
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"(PostgreSQL rows skipped: {type(exc).__name__})", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
