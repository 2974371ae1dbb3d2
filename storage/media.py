"""Where image bytes live, the one place the two backends keep media differently (`ImageBytes`): in
the media rows of PostgreSQL (`RowBytes`), or as files beside the SQLite database (`MediaFiles`); or,
on either backend when HIDREAM_MEDIA_URL names one, in an object store (storage/objects.py). The
store writes the bytes before the row that names them and forgets them after the row is gone.

Files: one per media id in a folder beside the database (`<db path>.media/`, readable by the bot's
user only), so the database stays small and an image is never read into memory just to answer a
query about it. Every file operation runs in a thread, so the event loop never waits on the disk. A
file is written whole or not at all (a temporary file, synced, then renamed over its name), so a
crash never leaves half an image under a media id. A crash between a file and its row leaves a file
without a row, which `remove_orphans` deletes once it is older than an hour (younger ones may be a
`put_media` whose row is being inserted right now, by this process or another that opened the same
database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from bot.model.errors import StoreUnavailable
from storage.durable import write_synced
from storage.spool import NO_ROOM as _NO_ROOM
from storage.spool import TEMP as _TEMP
from storage.spool import chunks_to_file, private_spool

log = logging.getLogger(__name__)

# Media ids are `secrets.token_urlsafe(16)` (22 characters); databases of older versions and tests
# hold shorter ones. Anything else is refused before a path is made of it.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A file without a row is left alone this long (seconds): it may be a write whose row is on its way.
ORPHAN_AGE = 3600.0
# Bytes per chunk when a file is streamed out.
CHUNK = 256 * 1024
# Ids asked about at once (SQLite's limit of parameters per statement is far above it).
_BATCH = 500


class ImageBytes(Protocol):
    # `, data` when the bytes are a column of the media row, else nothing.
    column: str

    def valid(self, media_id: str) -> bool:
        """Whether `media_id` can name bytes here at all."""
        ...

    async def open(self) -> None:
        """Before the first use: make the place, or check that it answers."""
        ...

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        """The values of `column` for an image of these bytes."""
        ...

    async def keep(self, images: dict[str, bytes]) -> None:
        """Before their rows are inserted."""
        ...

    async def drop(self, media_ids: Iterable[str]) -> None:
        """After their rows were deleted, or when the rows were never inserted."""
        ...

    async def read(self, media_id: str, row: Any) -> bytes | None:
        """The bytes of the image whose row (id, type, width, height, nsfw, then `column`) is `row`."""
        ...

    def spool_dir(self) -> Path:
        """Where a result is streamed to on its way in (a temporary file, see `spool_file`): the media
        folder itself for files (so keeping it is a rename), a private temporary folder elsewhere."""
        ...

    async def file_values(self, path: Path) -> tuple[Any, ...]:
        """The values of `column` for an image whose bytes are the file at `path`."""
        ...

    async def keep_files(self, files: dict[str, Path]) -> dict[str, Path]:
        """`keep` for images whose bytes are spooled files (in `spool_dir`), streamed, never read
        whole (except into a database row: `RowBytes`). Where each can be read from now: its place
        in the store when the file became it (`MediaFiles`), else the spooled file itself."""
        ...

    def placed(self, media_id: str, spooled: Path) -> Path:
        """Where `keep_files` left the bytes of `media_id` spooled in `spooled`."""
        ...

    async def to_file(self, media_id: str, row: Any) -> tuple[Path, bool] | None:
        """A file with the image's bytes, and whether it is a spooled copy (the reader deletes it),
        or None when the bytes are no longer held."""
        ...

    async def chunks(self, media_id: str, row: Any) -> AsyncGenerator[bytes, None] | None:
        """The same bytes in chunks, for a reader that passes them on (a media link), or None."""
        ...

    async def presign(self, media_id: str, seconds: float) -> str | None:
        """A URL of the store itself that serves the bytes for `seconds`, where the store has such
        URLs (an object store); None elsewhere."""
        ...

    async def remove_orphans(
        self, held: Callable[[list[str]], Awaitable[set[str]]], *, now: float | None = None
    ) -> int:
        """Delete bytes a crash left without a row (those `held` does not answer as held)."""
        ...


class RowBytes:
    column = ", data"

    def valid(self, media_id: str) -> bool:
        return True

    async def open(self) -> None:
        return None

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        return (data,)

    async def keep(self, images: dict[str, bytes]) -> None:
        return None

    async def drop(self, media_ids: Iterable[str]) -> None:
        return None

    async def read(self, media_id: str, row: Any) -> bytes | None:
        return bytes(row[5])

    async def chunks(self, media_id: str, row: Any) -> AsyncGenerator[bytes, None] | None:
        return _one(bytes(row[5]))

    def spool_dir(self) -> Path:
        return private_spool()

    async def file_values(self, path: Path) -> tuple[Any, ...]:
        # The one place a result is whole in memory: a bytea parameter of the row's INSERT.
        return (await asyncio.to_thread(path.read_bytes),)

    async def keep_files(self, files: dict[str, Path]) -> dict[str, Path]:
        return dict(files)  # the bytes go into the rows (`file_values`)

    def placed(self, media_id: str, spooled: Path) -> Path:
        return spooled

    async def to_file(self, media_id: str, row: Any) -> tuple[Path, bool] | None:
        return await chunks_to_file(_one(bytes(row[5])), self.spool_dir()), True

    async def presign(self, media_id: str, seconds: float) -> str | None:
        return None

    async def remove_orphans(
        self, held: Callable[[list[str]], Awaitable[set[str]]], *, now: float | None = None
    ) -> int:
        return 0  # bytes and row are one


async def _one(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def valid_id(media_id: str) -> bool:
    """Whether `media_id` has the shape of a media id (and so can name a file in the folder)."""
    return _ID.fullmatch(media_id) is not None


def _name(media_id: str) -> str:
    # Hex of the id: ids differ in case, and a case-insensitive file system (macOS) must not merge two.
    return media_id.encode("ascii").hex()


def _id_of(name: str) -> str | None:
    """The media id a file name stands for, or None for a name no id makes."""
    try:
        media_id = bytes.fromhex(name).decode("ascii")
    except ValueError:
        return None
    return media_id if valid_id(media_id) and _name(media_id) == name else None


class MediaFiles:
    """The folder of image files. Ids of the wrong shape are never turned into paths: reads answer
    None, writes and deletes refuse (ValueError); `drop` passes them over."""

    column = ""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def valid(self, media_id: str) -> bool:
        return valid_id(media_id)

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        return ()

    async def keep(self, images: dict[str, bytes]) -> None:
        for media_id, data in images.items():
            await self.write(media_id, data)

    def spool_dir(self) -> Path:
        return self.folder

    async def file_values(self, path: Path) -> tuple[Any, ...]:
        return ()

    async def keep_files(self, files: dict[str, Path]) -> dict[str, Path]:
        """Each spooled file synced and renamed to its media id's name (no byte copied)."""
        placed = {media_id: self._path(media_id) for media_id in files}
        try:
            await asyncio.to_thread(self._place, [(files[i], placed[i]) for i in files])
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise StoreUnavailable(f"media folder {self.folder}: {exc.strerror}") from exc
            raise
        return placed

    def placed(self, media_id: str, spooled: Path) -> Path:
        return self._path(media_id)

    def _place(self, moves: list[tuple[Path, Path]]) -> None:
        for source, target in moves:
            fd = os.open(source, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(source, target)
        self._sync_folder()

    async def to_file(self, media_id: str, row: Any) -> tuple[Path, bool] | None:
        path = self.path_of(media_id)
        if path is None or not await asyncio.to_thread(path.is_file):
            if row is not None:
                log.warning(
                    "media %s has a row but no file in %s: answered as no longer held", media_id, self.folder
                )
            return None
        return path, False

    async def drop(self, media_ids: Iterable[str]) -> None:
        await self.delete(media_id for media_id in media_ids if valid_id(media_id))

    def path_of(self, media_id: str) -> Path | None:
        """Where the bytes of `media_id` live (the file may be missing), or None for an id of the
        wrong shape. For streaming readers (open it in a thread)."""
        return self.folder / _name(media_id) if valid_id(media_id) else None

    def _path(self, media_id: str) -> Path:
        path = self.path_of(media_id)
        if path is None:
            raise ValueError("not a media id")
        return path

    async def open(self) -> None:
        """Make the folder (owner only), or make an existing one owner only."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.folder, 0o700)

    async def any_held(self) -> bool:
        """Whether the folder holds any image file."""
        return await asyncio.to_thread(self._any_held)

    def _any_held(self) -> bool:
        with os.scandir(self.folder) as entries:
            return any(_id_of(entry.name) is not None for entry in entries)

    async def write(self, media_id: str, data: bytes) -> None:
        """Keep `data` as the bytes of `media_id`, whole, synced to disk (replacing any earlier file).
        A disk with no room raises StoreUnavailable (nothing is left of the file)."""
        try:
            await asyncio.to_thread(self._write, self._path(media_id), data)
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise StoreUnavailable(f"media folder {self.folder}: {exc.strerror}") from exc
            raise

    def _write(self, path: Path, data: bytes) -> None:
        # mkstemp makes the file 0600 whatever the umask.
        fd, temp = tempfile.mkstemp(prefix=_TEMP, dir=self.folder)
        try:
            try:
                write_synced(fd, self.folder, data)  # storage/durable.py: O_DIRECT where it can
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._sync_folder()

    def _sync_folder(self) -> None:
        """Make the rename durable before the row that names the file is committed."""
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def read(self, media_id: str, row: Any = None) -> bytes | None:
        """The bytes of `media_id`, or None when there is no such file or the id has the wrong shape."""
        path = self.path_of(media_id)
        data = None if path is None else await asyncio.to_thread(_read, path)
        if data is None and row is not None:
            log.warning(
                "media %s has a row but no file in %s: answered as no longer held", media_id, self.folder
            )
        return data

    async def chunks(self, media_id: str, row: Any = None) -> AsyncGenerator[bytes, None] | None:
        """The file's bytes in chunks, each read in a thread, or None when there is no such file."""
        path = self.path_of(media_id)
        if path is None:
            return None
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            return None

        async def stream() -> AsyncGenerator[bytes, None]:
            try:
                while chunk := await asyncio.to_thread(handle.read, CHUNK):
                    yield chunk
            finally:
                handle.close()

        return stream()

    async def presign(self, media_id: str, seconds: float) -> str | None:
        return None

    async def delete(self, media_ids: Iterable[str]) -> None:
        """Delete the files of `media_ids` (those already gone are fine)."""
        paths = [self._path(media_id) for media_id in media_ids]
        if paths:
            await asyncio.to_thread(_unlink_all, paths)

    async def remove_orphans(
        self, held: Callable[[list[str]], Awaitable[set[str]]], *, now: float | None = None
    ) -> int:
        """Delete the files older than ORPHAN_AGE whose id `held` does not answer as held (a crash
        left them: see the module's note), and old temporary files. Returns how many."""
        cutoff = (time.time() if now is None else now) - ORPHAN_AGE
        old = await asyncio.to_thread(self._old_files, cutoff)
        temps = [path for path in old if path.name.startswith(_TEMP)]
        by_id = {media_id: path for path in old if (media_id := _id_of(path.name)) is not None}
        ids = list(by_id)
        orphans = temps
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            kept = await held(batch)
            orphans += [by_id[media_id] for media_id in batch if media_id not in kept]
        await asyncio.to_thread(_unlink_all, orphans)
        if orphans:
            log.info("media: deleted %d file(s) a crash left without a database row", len(orphans))
        return len(orphans)

    def _old_files(self, cutoff: float) -> list[Path]:
        old = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                        old.append(Path(entry.path))
        return old


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
