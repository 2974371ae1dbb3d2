"""A real network's pace for a loopback fake: a TCP proxy in front of it that delays every byte by half
a round trip each way and lets each connection carry at most `rate` bytes a second each way, the
network profile of `make bench` (issue 23: uploads and downloads at 10 MB/s each, 50 ms round trips).

What a client sees through it, as over a real link: a new connection costs a round trip before its
first byte goes through (the TCP handshake), a request's answer comes at least a round trip after the
request, and a 2 MB body takes 200 ms to cross. Backpressure is real: the proxy reads from a side only
as fast as it passes the bytes on (a queue of one bandwidth-delay product), so a sender that writes
faster than the link waits in its own socket, as it would on the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Link:
    """Each way of each connection: `rate` bytes a second, `rtt` seconds for a round trip."""

    rate: float = 10_000_000.0
    rtt: float = 0.050


# The network profile of `make bench`.
PROFILE = Link()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    """Bytes from `reader` to `writer`, each chunk let through half a round trip after it arrived and no
    sooner than the link's rate allows after the one before."""
    # What is in flight on the link: its bandwidth-delay product, at least two chunks.
    depth = max(2, int(link.rate * link.rtt / 2 / CHUNK) + 1)
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(depth)

    async def forward() -> None:
        free = 0.0  # when the link is free for the next byte
        while True:
            arrived, chunk = await queue.get()
            if not chunk:
                break
            start = max(arrived + link.rtt / 2, free)
            free = start + len(chunk) / link.rate
            wait = free - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()

    sender = asyncio.create_task(forward())
    try:
        while chunk := await reader.read(CHUNK):
            await queue.put((time.monotonic(), chunk))
        await queue.put((time.monotonic(), b""))
        await sender
    except (OSError, asyncio.IncompleteReadError):
        sender.cancel()
    finally:
        if not sender.done():
            sender.cancel()


async def _serve_one(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    host: str,
    port: int,
    link: Link,
) -> None:
    try:
        await asyncio.sleep(link.rtt)  # the handshake's round trip
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            _pump(client_reader, upstream_writer, link),
            _pump(upstream_reader, client_writer, link),
            return_exceptions=True,
        )
    finally:
        for w in (upstream_writer, client_writer):
            w.close()
            with contextlib.suppress(OSError, ConnectionError):
                await w.wait_closed()


@asynccontextmanager
async def slowed(url: str, link: Link = PROFILE) -> AsyncIterator[str]:
    """A proxy on loopback in front of the server at `url` (`http://host:port`); yields its own URL."""
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    tasks: set[asyncio.Task[None]] = set()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await _serve_one(reader, writer, host, int(port), link)
        except asyncio.CancelledError:
            if not closing:
                raise
            # Ended by the proxy's own close: asyncio's server would log a cancelled handler as an error.
        finally:
            tasks.discard(task)

    closing = False
    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        closing = True
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
