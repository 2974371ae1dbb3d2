"""Outages of the bot's database, on command.

`CutProxy` is a loopback TCP proxy (asyncio) between the bot and PostgreSQL: the bot's
HIDREAM_DATABASE_URL names the proxy's port instead of the server's. `cut()` drops every open
connection at once (both sides aborted: the bot sees a reset, as when a network path or the server
dies) and from then on every new connection is reset as soon as it is accepted, until `restore()`
lets them through again. It counts what it did, so a test can wait on events ("the bot tried again
and was turned away") instead of on time.

`FullDisk` stands for a full disk under SQLite's media folder: while it is `full`, every image file
the files strategy of storage/media.py writes fails with ENOSPC at the point where the bytes are
written (storage.durable.write_synced, as storage/media.py calls it). A small real filesystem could
only be mounted as root, so the error is injected at that boundary instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import storage.media
import storage.spool
from storage import durable

CHUNK = 64 * 1024


class CutProxy:
    """`async with CutProxy("127.0.0.1", 5432) as proxy:` then `proxy.url_for(url)`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.listen_port = 0
        self.down = False
        self.accepted = 0  # connections let through to the server
        self.dropped = 0  # open connections cut by `cut()`
        self.refused = 0  # connections reset while down
        self.refused_event = asyncio.Event()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CutProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url_for(self, url: str) -> str:
        """`url` (a PostgreSQL URL naming the real server) as one that goes through this proxy."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.listen_port}" if userinfo else f"127.0.0.1:{self.listen_port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        """Drop every open connection; refuse (reset) new ones until `restore()`."""
        self.down = True
        self.refused_event.clear()
        self._drop_all()

    def restore(self) -> None:
        self.down = False

    def _drop_all(self) -> None:
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
            self.dropped += 1
        self._pairs.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            self.refused_event.set()
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        self._pairs.discard(pair)
        for one in pair:
            one.transport.abort()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(CHUNK):
                sink.write(data)
                await sink.drain()


class _NoRoom:
    """A file on a full disk: every write fails with ENOSPC."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, data: bytes | bytearray) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


class FullDisk:
    """While `full` is True, each image file written by storage/media.py's files strategy, and each
    write of a result streamed to disk, fails with ENOSPC; `failed` counts those writes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.failed = 0
        real = durable.write_synced

        def write_synced(fd: int, folder: Any, data: bytes) -> None:
            if self.full:
                self.failed += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, folder, data)

        monkeypatch.setattr(storage.media, "write_synced", write_synced)
        real_chunk = storage.spool.write_chunk

        def write_chunk(handle: Any, data: bytes | bytearray) -> None:
            # A result streamed to disk (spooled) is written here: the same full disk refuses it, and
            # storage/media.py turns the refusal into its own answer (the job waits and tries again).
            if self.full:
                self.failed += 1
                real_chunk(_NoRoom(handle.name), data)  # type: ignore[arg-type]
            real_chunk(handle, data)

        monkeypatch.setattr(storage.spool, "write_chunk", write_chunk)

    @contextlib.contextmanager
    def filled(self) -> Iterator[None]:
        self.full = True
        try:
            yield
        finally:
            self.full = False
