"""Results on their way in, streamed to disk (issue 23): a temporary ("spooled") file per result, written
in chunks as its download arrives, kept by the media store from the file (storage/media.py: a rename
into the media folder, a put from disk to the object store, or a PostgreSQL row), and posted from it.
A spooled file's name starts like every temporary file of the media folder, so one a crash left there
is swept with them (`MediaFiles.remove_orphans`)."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO

from bot.model.errors import StoreUnavailable

# What a temporary file's name starts with: a dot, which no file name made from an id has.
TEMP = ".tmp-"
# Write errors that say the disk has no room for the file (for now): the image is not kept, and the job
# that wrote it waits and tries again (StoreUnavailable), rather than failing as a bug would.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})

_private_spool: Path | None = None


def private_spool() -> Path:
    """This process's folder for spooled results where the store keeps no files (made at first use,
    readable by the bot's user only, in the system's temporary folder)."""
    global _private_spool
    if _private_spool is None or not _private_spool.is_dir():
        _private_spool = Path(tempfile.mkdtemp(prefix="hidream-spool-"))
    return _private_spool


def spool_file(folder: Path) -> Path:
    """A new empty temporary file in `folder` (0600), named so that `remove_orphans` sweeps it."""
    fd, name = tempfile.mkstemp(prefix=TEMP, dir=folder)
    os.close(fd)
    return Path(name)


def write_chunk(handle: BinaryIO, data: bytes | bytearray) -> None:
    """One write into a spooled file (blocking: from a thread). A disk with no room raises
    StoreUnavailable, as `MediaFiles.write` does: the job waits and tries again."""
    try:
        handle.write(data)
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise StoreUnavailable(
                f"spooling a result in {Path(str(handle.name)).parent}: {exc.strerror}"
            ) from exc
        raise


async def chunks_to_file(chunks: AsyncGenerator[bytes, None], folder: Path) -> Path:
    """`chunks` written to a new spooled file in `folder`, each write in a thread; deleted on failure."""
    path = await asyncio.to_thread(spool_file, folder)
    try:
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(write_chunk, handle, chunk)
        finally:
            await asyncio.to_thread(handle.close)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
