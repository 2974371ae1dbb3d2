"""Where image bytes live, the one place the two backends keep media differently: in files beside the
SQLite database (storage/media.py), or in the media rows of PostgreSQL. The store writes the bytes
before the row that names them and forgets them after the row is gone, whichever this is."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from storage.media import MediaFiles, valid_id

log = logging.getLogger(__name__)


class ImageBytes(Protocol):
    # `, data` when the bytes are a column of the media row, else nothing.
    column: str

    def valid(self, media_id: str) -> bool:
        """Whether `media_id` can name bytes here at all."""
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


class FileBytes:
    column = ""

    def __init__(self, files: MediaFiles) -> None:
        self.files = files

    def valid(self, media_id: str) -> bool:
        return valid_id(media_id)

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        return ()

    async def keep(self, images: dict[str, bytes]) -> None:
        for media_id, data in images.items():
            await self.files.write(media_id, data)

    async def drop(self, media_ids: Iterable[str]) -> None:
        await self.files.delete(media_id for media_id in media_ids if valid_id(media_id))

    async def read(self, media_id: str, row: Any) -> bytes | None:
        data = await self.files.read(media_id)
        if data is None:
            log.warning(
                "media %s has a row but no file in %s: answered as no longer held",
                media_id,
                self.files.folder,
            )
        return data


class RowBytes:
    column = ", data"

    def valid(self, media_id: str) -> bool:
        return True

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        return (data,)

    async def keep(self, images: dict[str, bytes]) -> None:
        return None

    async def drop(self, media_ids: Iterable[str]) -> None:
        return None

    async def read(self, media_id: str, row: Any) -> bytes | None:
        return bytes(row[5])
