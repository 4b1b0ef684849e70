"""PostgreSQL and Redis for the Bastion cases of the peer benchmarks (``BASTION_STORE=postgres``).

Standard library only: the gateway and OAuth harnesses import it from their own venvs, and
``run.sh`` calls it as a script.

  python stores.py recreate URL   drop and create the benchmark database named in URL
  python stores.py pids DBNAME    pids of the store processes (see ``store_pids``)
  python stores.py versions PG_URL REDIS_URL

The benchmark database is dropped and created afresh for every suite (gateway) or phase
(OAuth), because each run seals a new signing key ring with a new master key. So that a
typo cannot drop someone's data, the name must contain ``bench``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/bastion_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"

# Processes of the PostgreSQL cluster that serve no one database: their CPU counts as the
# stores', with the backends connected to the benchmark database (other backends do not).
PG_AUXILIARY = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "stats collector",
    "wal sender",
)


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z0-9_]+", name) or "bench" not in name:
        raise SystemExit(
            f"benchmark database {name!r}: the name must be letters, digits and _ and contain "
            "'bench' (it is dropped and created on every run)"
        )
    return name


def recreate(url: str) -> None:
    """Drop and create the database of ``url`` (through ``psql`` on the maintenance db)."""
    name = database_name(url)
    parts = urlsplit(url)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        result = subprocess.run(
            ["psql", admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"psql: {sql}: {result.stderr.strip()}")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def store_pids(dbname: str | None) -> list[int]:
    """Redis servers, PostgreSQL's auxiliary processes and the backends connected to
    ``dbname``. Redis is counted whole: a run shares it with anything else using it."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        cmd = _cmdline(pid)
        if cmd.startswith("redis-server") or (
            cmd.startswith("postgres:")
            and ((dbname and f" {dbname} " in f" {cmd} ") or any(a in cmd for a in PG_AUXILIARY))
        ):
            out.append(pid)
    return out


def versions(pg_url: str, redis_url: str) -> str:
    """The servers' versions, for the report: PostgreSQL's ``server_version`` and Redis's
    ``redis_version`` (read with one raw ``INFO server``, no client library needed)."""
    pg = subprocess.run(
        ["psql", pg_url, "-X", "-tAc", "SHOW server_version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    parts = urlsplit(redis_url)
    redis = "?"
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 2) as s:
            s.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            data = s.recv(65536).decode(errors="replace")
        redis = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in data.splitlines()
                if ln.startswith("redis_version:")
            ),
            "?",
        )
    except OSError as exc:
        redis = f"unreachable ({exc})"
    return f"PostgreSQL {pg or '?'}; Redis {redis}"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "recreate":
        recreate(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "versions":
        print(versions(argv[1], argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "pids":
        print(" ".join(map(str, store_pids(argv[1]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
