"""SQLite on the event loop's own thread, with the small async interface the store is written to.

Why not aiosqlite: it runs each statement on a worker thread and hands the answer back to the loop,
two thread switches a statement, which cost far more CPU than the statements themselves (see
docs/benchmarks.md, "What changed", item 1); a job runs about 50 statements, so the hops alone were
several milliseconds of every job. A statement
on this store's small rows takes microseconds (image bytes live in files: storage/media.py), so the
loop runs it itself.

What could make the loop wait is handled here:
- another process holding the write lock (`hidream-bot quota …` while the bot runs): the connection
  never waits inside SQLite (busy_timeout 0); a statement refused as busy outside a transaction is
  tried again after an `asyncio.sleep`, for up to BUSY_SECONDS, as SQLite's own busy_timeout would;
- moving the write-ahead log into the database file (a checkpoint, which syncs to disk): automatic
  checkpoints are off on this connection; `Checkpoints` runs them from a thread on a connection of
  its own, and so does `checkpoint_apart` (retention's), and the log is cut back to
  JOURNAL_SIZE_LIMIT once it has been copied;
- queries that read much (the operators' page, /metrics): `read_apart` runs them in a thread on a
  read-only connection of their own, beside the loop's (WAL lets readers and the writer work at once).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# As long as SQLite's busy_timeout was (5000 ms) before statements ran on the loop.
BUSY_SECONDS = 5.0
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# A checkpoint once this many seconds passed with writes since the last complete one.
CHECKPOINT_SECONDS = 1.0
# A log this long (frames of a page) that a passive checkpoint could not copy whole is copied with
# RESTART, which waits a moment for the writer, so a steady stream of commits cannot grow it forever.
LARGE_LOG_FRAMES = 10_000
# What the log's file is cut back to once it has been copied.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
Params = Sequence[Any] | dict[str, Any]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # The primary code: SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_RECOVERY and the like are busy too.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY


class Cursor:
    """The rows of one statement, already run."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchmany(self, size: int) -> list[Any]:
        return self._cursor.fetchmany(size)

    async def close(self) -> None:
        self._cursor.close()


class _Running:
    """What `Connection.execute` returns: awaited, the cursor; or `async with` it, closed after."""

    def __init__(self, run: Awaitable[Cursor]) -> None:
        self._run = run
        self._cursor: Cursor | None = None

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run.__await__()

    async def __aenter__(self) -> Cursor:
        self._cursor = await self._run
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class Connection:
    """One sqlite3 connection in autocommit mode (the store writes BEGIN and COMMIT itself)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @property
    def total_changes(self) -> int:
        """Rows changed since the connection opened: what `Checkpoints` watches."""
        return self._conn.total_changes

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, parameters: Params = ()) -> _Running:
        return _Running(self._run(lambda: self._conn.execute(sql, parameters)))

    async def executescript(self, script: str) -> Cursor:
        return await self._run(lambda: self._conn.executescript(script))

    async def _run(self, statement: Callable[[], sqlite3.Cursor]) -> Cursor:
        outside = not self._conn.in_transaction
        deadline: float | None = None
        pause = 0.001
        while True:
            try:
                cursor = statement()
            except sqlite3.OperationalError as exc:
                # Inside a transaction the store already holds the write lock (BEGIN IMMEDIATE); a
                # busy there is not a wait that ends, so it is the caller's, as before.
                if not (outside and _is_busy(exc)):
                    raise
                now = time.monotonic()
                deadline = deadline or now + BUSY_SECONDS
                if now >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            return Cursor(cursor)

    async def read_apart(self, sql: str, parameters: Params = ()) -> list[tuple[Any, ...]]:
        """The rows of a query that may read much, from a thread on a read-only connection of its own:
        the loop and the store's other calls go on meanwhile. It sees what was committed when it
        starts."""
        return await asyncio.to_thread(_read, self.path, sql, parameters)

    async def stream_apart(
        self, sql: str, parameters: Params, batch: int
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """The rows of a query of any length, `batch` at a time, from a read-only connection of its
        own whose cursor each batch is fetched from in a thread: one snapshot, whatever is written
        meanwhile, and never more than a batch in memory."""
        conn = await asyncio.to_thread(_open_reader, self.path)
        try:
            cursor = await asyncio.to_thread(conn.execute, sql, parameters)
            while rows := await asyncio.to_thread(cursor.fetchmany, batch):
                yield [tuple(row) for row in rows]
        finally:
            await asyncio.to_thread(conn.close)

    async def checkpoint_apart(self, mode: str) -> tuple[int, int, int] | None:
        """A checkpoint (`PASSIVE`, `RESTART` or `TRUNCATE`) from a thread on a connection of its own:
        (busy, frames in the log, frames copied), or None when it could not run (logged)."""
        return await asyncio.to_thread(_checkpoint, self.path, mode)

    async def close(self) -> None:
        self._conn.close()


def _uri(path: str, mode: str) -> str:
    """`path` as a file URI (`as_uri` escapes what a path may hold: ?, #, %) opened as `mode` (ro, rw:
    never created)."""
    return f"{Path(path).resolve().as_uri()}?mode={mode}"


def _open_reader(path: str) -> sqlite3.Connection:
    """A read-only connection that may be used from any thread (one at a time)."""
    return sqlite3.connect(_uri(path, "ro"), uri=True, timeout=BUSY_SECONDS, check_same_thread=False)


def _read(path: str, sql: str, parameters: Params) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(_uri(path, "ro"), uri=True, timeout=BUSY_SECONDS)
    try:
        return [tuple(row) for row in conn.execute(sql, parameters)]
    finally:
        conn.close()


def _checkpoint(path: str, mode: str) -> tuple[int, int, int] | None:
    if mode not in ("PASSIVE", "RESTART", "TRUNCATE"):
        raise ValueError(mode)
    try:
        # RESTART and TRUNCATE wait (briefly) for the loop's writer; the loop's statements meanwhile
        # find the database busy and wait with asyncio.
        conn = sqlite3.connect(_uri(path, "rw"), uri=True, isolation_level=None, timeout=0.5)
        try:
            row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.warning("SQLite checkpoint (%s) of %s failed: %s", mode, path, exc)
        return None
    return (int(row[0]), int(row[1]), int(row[2])) if row else None


def connect(path: str) -> Connection:
    """Open `path` for the loop's thread: no waiting on locks inside SQLite, no checkpoint at commit,
    rows read by index or by column name (as asyncpg's are)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=0")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    return Connection(conn, path)


class Checkpoints:
    """Moves the write-ahead log into the database file from a thread, with a connection of its own,
    never blocking the loop (PASSIVE; RESTART when the log grew large). A checkpoint that could not
    copy the whole log is tried again at the next tick; one that failed is logged, and the next tick
    tries again. The last one is SQLite's own, when the store's connection closes."""

    def __init__(self, path: str, conn: Connection, *, every: float = CHECKPOINT_SECONDS) -> None:
        self.path = path
        self.conn = conn
        self.every = every
        self._task: asyncio.Task[None] | None = None
        self._seen = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="sqlite-checkpoints")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.run()
            except Exception:  # never the end of checkpoints: the log would only grow
                log.warning("SQLite checkpoint failed", exc_info=True)

    async def run(self) -> None:
        """One checkpoint, if anything was written since the last complete one."""
        changes = self.conn.total_changes
        if changes == self._seen:
            return
        done = await self.conn.checkpoint_apart("PASSIVE")
        if done is not None and done[1] >= LARGE_LOG_FRAMES and done[2] < done[1]:
            done = await self.conn.checkpoint_apart("RESTART")
        if done is not None and done[0] == 0 and done[1] == done[2]:
            self._seen = changes

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
