"""Short statements on an SQLite file without a thread hop: the token endpoint's path.

Through SQLAlchemy's async engine every statement of a grant crosses to aiosqlite's
thread and back and is compiled and wrapped on the way; a grant made five of those
transactions, and the concurrent ones waited for SQLite's write lock in its busy
handler, which sleeps in growing steps (the half-second p99 in docs/performance.md).
Here a grant's statements run as one function in one transaction, on a plain
``sqlite3`` connection whose prepared statements are cached:

* with ``synchronous = "normal"`` (the default) a commit writes to the WAL without
  fsync, so the function runs on the event loop's own thread: tens of microseconds,
  less than one thread hop. The connection never waits for the lock there
  (``busy_timeout`` 0): when another connection holds it (a migration, ``bastion db
  prune``, another process, or one of this process's aiosqlite connections between two
  of its statements), the function runs again on the writer thread, which waits for the
  lock up to ``connect_timeout`` while the loop goes on serving;
* with ``synchronous = "full"`` every commit waits for fsync, so writes always run on
  the writer thread (one thread, so they queue rather than contend).

A database error other than a constraint (a corrupt or vanished file, a full disk, a
lock held past ``connect_timeout``) is ``StoreUnavailable``, as on the SQLAlchemy path;
a constraint violation is the caller's bug and stays what it is.

Either way the caller's ``await`` returns only after ``COMMIT`` returned: an answer is
never sent for a grant that is not committed. WAL checkpoints are moved off the loop
too: this connection does not checkpoint on commit; every ``CHECKPOINT_EVERY`` commits
the writer thread runs a passive checkpoint (which never blocks readers or writers), and
past ``RESTART_FRAMES`` frames a restarting one (see ``RESTART_FRAMES`` below).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from bastion.errors import StoreUnavailable

Result = TypeVar("Result")
Synchronous = Literal["normal", "full"]
CHECKPOINT_EVERY = 500
# SQLite starts its log over only when a writer finds every frame copied back and no
# reader on the log. Under steady grants some reader always is, so the log never started
# over: measured at 385 MB beside an 11 MB database after 8,000 codes, every read
# searching more of it (code exchange CPU per grant +75%). Past this many frames the
# checkpoint runs in RESTART mode: it copies the last frames back and waits at most
# RESTART_WAIT_MS for the readers on the log to finish (holding the write lock meanwhile:
# a bounded pause for writers, never for readers), so that the next commit writes from
# the start of the file again. Not TRUNCATE, which also cuts the file to zero bytes while
# it holds the write lock (an ftruncate of 10-120 ms on a loaded VM), after which the file
# is grown back frame by frame: every write in flight waited for the cut (the code
# exchange p99 in docs/performance.md).
RESTART_FRAMES = 4_096
RESTART_WAIT_MS = 20
# A restarted log keeps its file's size, so without a limit the file stays as large as
# the most frames the log ever held (after readers kept the restart from succeeding for
# a while). PRAGMA journal_size_limit cuts it back: the connection whose commit is the
# first one in a restarted log truncates the file to its limit (or to that commit's end,
# if further) and leaves a smaller file alone. That commit is usually the event loop's,
# so the cut should be rare: the limit is this many times RESTART_FRAMES, where a log
# that restarted on time ends below RESTART_FRAMES plus one CHECKPOINT_EVERY of commits
# (about 2.2 times RESTART_FRAMES at the 8-10 pages a code exchange writes).
SIZE_LIMIT_FACTOR = 4
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24


class DirectSqlite:
    def __init__(self, path: Path, *, timeout: float, synchronous: Synchronous) -> None:
        self._path = path
        self._timeout = timeout
        self._synchronous = synchronous
        self._inline: sqlite3.Connection | None = None
        self._threaded: sqlite3.Connection | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-sqlite")
        self._commits = 0
        self._checkpoint_pending = threading.Event()

    def _open(self, timeout: float) -> sqlite3.Connection:
        # mode=rw: a missing file is an error here, never a new empty database.
        try:
            conn = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=timeout,
                isolation_level=None,  # transactions are ours: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,
                cached_statements=64,
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable("database", f"{type(exc).__name__}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA journal_size_limit={wal_size_limit(page_size)}")
        return conn

    def _connection(self, threaded: bool) -> sqlite3.Connection:
        if threaded:
            if self._threaded is None:
                self._threaded = self._open(self._timeout)
            return self._threaded
        if self._inline is None:
            self._inline = self._open(0.0)
        return self._inline

    async def read(self, work: Callable[[sqlite3.Connection], Result]) -> Result:
        """``work``, one SELECT, outside any explicit transaction: a single statement
        reads one snapshot by itself (in WAL mode, never waiting for a writer)."""
        try:
            return work(self._connection(False))
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            if not _busy(exc):
                raise _unavailable(exc) from exc
        return await self._on_writer(work, None)

    async def write(self, work: Callable[[sqlite3.Connection], Result]) -> Result:
        """``work`` in one write transaction, committed when this returns; rolled back
        when ``work`` raises. ``work`` may run twice (after a busy first attempt, which
        was rolled back), so it must only touch the database."""
        if self._synchronous == "normal":
            try:
                result = _run(self._connection(False), work, "BEGIN IMMEDIATE")
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as exc:
                if not _busy(exc):
                    raise _unavailable(exc) from exc
            else:
                self._committed()
                return result
        result = await self._on_writer(work, "BEGIN IMMEDIATE")
        self._committed()
        return result

    async def _on_writer(
        self, work: Callable[[sqlite3.Connection], Result], begin: str | None
    ) -> Result:
        def job() -> Result:
            try:
                conn = self._connection(True)
                return work(conn) if begin is None else _run(conn, work, begin)
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as exc:
                raise _unavailable(exc) from exc

        return await asyncio.get_running_loop().run_in_executor(self._writer, job)

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and not self._checkpoint_pending.is_set():
            self._checkpoint_pending.set()
            self._writer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            conn = self._connection(True)
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES:
                self._restart_log(conn)
        except sqlite3.Error:
            pass  # the next one, or any other connection's automatic one, catches up
        finally:
            self._checkpoint_pending.clear()

    def _restart_log(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
        try:
            # Busy (a reader stayed longer) is no error: the next checkpoint tries again.
            # Success leaves the frames in place: the next commit, on any connection,
            # starts the log over (and applies journal_size_limit).
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for conn in (self._inline, self._threaded):
            if conn is not None:
                conn.close()
        self._inline = self._threaded = None


def wal_size_limit(page_size: int) -> int:
    """``journal_size_limit`` in bytes for a database of ``page_size`` pages: the log's
    header and ``SIZE_LIMIT_FACTOR`` times ``RESTART_FRAMES`` frames."""
    frames = SIZE_LIMIT_FACTOR * RESTART_FRAMES
    return WAL_HEADER_BYTES + frames * (WAL_FRAME_HEADER_BYTES + page_size)


def _run(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], Result], begin: str
) -> Result:
    conn.execute(begin)
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _busy(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    return StoreUnavailable("database", f"{type(exc).__name__}: {exc}")
