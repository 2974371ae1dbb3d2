"""Image bytes in an S3-compatible object store (`HIDREAM_MEDIA_URL=s3://bucket/prefix`), the third
strategy beside storage/media.py's files and rows, for either backend. The media row keeps the id, the
size and the SHA-256 of the bytes; the object `<prefix>/<media id>` keeps the bytes.

The client is obstore (Rust's object_store), chosen by measurement over aiobotocore
(`bench/s3_clients.py`, docs/benchmarks.md): a quarter of the CPU per 2 MB put and a sixth per get.

Order, as with files: the object is written before the row that names it and deleted after the row
is gone, so no row ever names bytes that are not there. A crash between an object and its row leaves
an object without a row, which `remove_orphans` deletes at the next start once it is an hour old.
Media links either stream the object through the bot or, with `HIDREAM_MEDIA_REDIRECT=true`, send the
asker to a presigned URL of the store (valid as long as the link it was given for, at most a week).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from bot.model.config import Settings
from storage.media import ORPHAN_AGE, valid_id
from storage.spool import chunks_to_file, private_spool

log = logging.getLogger(__name__)

# What obstore raises: its own errors, and OSError's kinds for a missing object (FileNotFoundError),
# a refusal (PermissionError) and the like.
_ERRORS = (BaseError, OSError)
# Keys deleted per request (S3's DeleteObjects takes up to 1,000).
_DELETE_BATCH = 1000
# Ids asked about at once when looking for objects without rows.
_BATCH = 500
# A presigned URL lives at most this long (S3's limit for signature version 4).
MAX_PRESIGN = timedelta(days=7)
# Bytes per chunk when an object is streamed out.
CHUNK = 256 * 1024
# A spooled file larger than this is put in parts of this size (S3's smallest part), one at a time, so a
# put holds at most one part in memory (obstore reads the file itself).
PART = 5 * 1024 * 1024


class ObjectStoreError(Exception):
    """The object store refused or could not be reached; the message names no credential."""


@dataclass(frozen=True)
class ObjectStoreConfig:
    """Where the objects go: `s3://bucket/prefix`, an endpoint (empty: AWS by region) and the
    credentials (empty: what the AWS_* environment or the machine's role gives obstore itself)."""

    url: str
    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    # Never in a repr (a log line, a traceback's locals).
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)

    @property
    def bucket(self) -> str:
        return parse_media_url(self.url)[0]

    @property
    def prefix(self) -> str:
        return parse_media_url(self.url)[1]


def from_settings(settings: Settings, *, url: str | None = None) -> ObjectBytes | None:
    """The object store HIDREAM_MEDIA_URL (or `url`) names, or None when it names none."""
    url = settings.media_url if url is None else url
    if not url:
        return None
    return ObjectBytes(
        ObjectStoreConfig(
            url,
            endpoint=settings.s3_endpoint,
            region=settings.aws_region or settings.aws_default_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key.get_secret_value(),
            session_token=settings.aws_session_token.get_secret_value(),
        )
    )


def parse_media_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`; ValueError when it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def content_type_of(data: bytes) -> str:
    """The image type the bytes say they are (set on the object, so a presigned link serves it so)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class ObjectBytes:
    """Image bytes as objects. The row keeps their size and SHA-256 (`column`)."""

    column = ", size, sha256"

    def __init__(self, config: ObjectStoreConfig) -> None:
        self.config = config
        options: dict[str, Any] = {}
        if config.endpoint:
            options["endpoint"] = config.endpoint
        for name in ("region", "access_key_id", "secret_access_key", "session_token"):
            if value := getattr(config, name):
                options[name] = value
        self._store = S3Store(
            config.bucket,
            prefix=config.prefix or None,
            client_options={"allow_http": config.endpoint.startswith("http://")},
            # A store that does not answer fails the call within half a minute, not after minutes.
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
            **options,
        )

    def label(self) -> str:
        where = f" at {self.config.endpoint}" if self.config.endpoint else ""
        return f"s3://{self.config.bucket}/{self.config.prefix}{where}"

    def valid(self, media_id: str) -> bool:
        return valid_id(media_id)

    def in_row(self, data: bytes) -> tuple[Any, ...]:
        return (len(data), hashlib.sha256(data).hexdigest())

    async def open(self) -> None:
        """Check that the bucket answers with these credentials (a missing key is a fine answer)."""
        try:
            # A listing of a prefix nothing has: a missing bucket or a wrong key fails it.
            await obstore.list_with_delimiter_async(self._store, ".hidream-bot-check")
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot reach {self.label()}: {_reason(exc)}") from exc

    async def keep(self, images: dict[str, bytes]) -> None:
        await _all(self._put(media_id, data) for media_id, data in images.items())

    async def _put(self, media_id: str, data: bytes) -> None:
        if not valid_id(media_id):
            raise ValueError("not a media id")
        try:
            await obstore.put_async(
                self._store, media_id, data, attributes={"Content-Type": content_type_of(data)}
            )
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot write to {self.label()}: {_reason(exc)}") from exc

    def spool_dir(self) -> Path:
        return private_spool()

    async def file_values(self, path: Path) -> tuple[Any, ...]:
        return await asyncio.to_thread(_size_and_hash, path)

    async def keep_files(self, files: dict[str, Path]) -> dict[str, Path]:
        """Each spooled file put from disk (in parts when large); the files stay for the post."""
        await _all(self._put_file(media_id, path) for media_id, path in files.items())
        return dict(files)

    def placed(self, media_id: str, spooled: Path) -> Path:
        return spooled

    async def _put_file(self, media_id: str, path: Path) -> None:
        if not valid_id(media_id):
            raise ValueError("not a media id")
        head = await asyncio.to_thread(_head, path)
        try:
            await obstore.put_async(
                self._store,
                media_id,
                path,
                attributes={"Content-Type": content_type_of(head)},
                chunk_size=PART,
                max_concurrency=1,
            )
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot write to {self.label()}: {_reason(exc)}") from exc

    async def to_file(self, media_id: str, row: Any) -> tuple[Path, bool] | None:
        chunks = await self.chunks(media_id, row)
        if chunks is None:
            return None
        return await chunks_to_file(chunks, self.spool_dir()), True

    async def drop(self, media_ids: Iterable[str]) -> None:
        """Delete the objects of `media_ids` (those already gone are fine). A failure is logged, not
        raised: the rows are gone already, and the object is then an orphan, swept at a later start."""
        ids = [media_id for media_id in media_ids if valid_id(media_id)]
        for start in range(0, len(ids), _DELETE_BATCH):
            batch = ids[start : start + _DELETE_BATCH]
            try:
                await obstore.delete_async(self._store, batch)
            except _ERRORS as exc:
                log.warning(
                    "media: could not delete %d object(s) from %s (%s); swept at a later start",
                    len(batch),
                    self.label(),
                    _reason(exc),
                )

    async def read(self, media_id: str, row: Any = None) -> bytes | None:
        chunks = await self.chunks(media_id, row)
        if chunks is None:
            return None
        return b"".join([bytes(chunk) async for chunk in chunks])

    async def chunks(self, media_id: str, row: Any = None) -> AsyncGenerator[bytes, None] | None:
        """The object's bytes in chunks as they arrive, or None when there is no such object."""
        if not valid_id(media_id):
            return None
        try:
            got = await obstore.get_async(self._store, media_id)
        except FileNotFoundError:
            if row is not None:
                log.warning(
                    "media %s has a row but no object in %s: answered as no longer held",
                    media_id,
                    self.label(),
                )
            return None
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot read from {self.label()}: {_reason(exc)}") from exc

        async def stream() -> AsyncGenerator[bytes, None]:
            async for chunk in got.stream(min_chunk_size=CHUNK):
                yield bytes(chunk)

        return stream()

    async def has(self, media_id: str) -> bool:
        """Whether the object of `media_id` is there."""
        try:
            await obstore.head_async(self._store, media_id)
        except FileNotFoundError:
            return False
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot read from {self.label()}: {_reason(exc)}") from exc
        return True

    async def presign(self, media_id: str, seconds: float) -> str | None:
        """A URL that GETs the object for `seconds` (at most a week) without credentials."""
        if not valid_id(media_id):
            return None
        expires = min(timedelta(seconds=max(1.0, seconds)), MAX_PRESIGN)
        try:
            return await obstore.sign_async(self._store, "GET", media_id, expires)
        except _ERRORS as exc:
            raise ObjectStoreError(f"cannot sign a link to {self.label()}: {_reason(exc)}") from exc

    async def names(self) -> list[tuple[str, float]]:
        """Every media id held in the store, with its object's last change (seconds since the epoch)."""
        found = []
        async for batch in obstore.list(self._store):
            for meta in batch:
                media_id = meta["path"].rsplit("/", 1)[-1]
                if valid_id(media_id):
                    found.append((media_id, meta["last_modified"].timestamp()))
        return found

    async def remove_orphans(
        self, held: Callable[[list[str]], Awaitable[set[str]]], *, now: float | None = None
    ) -> int:
        """Delete the objects older than ORPHAN_AGE that no row names (a crash left them). Returns how many."""
        cutoff = (time.time() if now is None else now) - ORPHAN_AGE
        try:
            old = [media_id for media_id, changed in await self.names() if changed < cutoff]
        except _ERRORS as exc:
            log.warning("media: could not list %s to sweep orphans (%s)", self.label(), _reason(exc))
            return 0
        orphans = []
        for start in range(0, len(old), _BATCH):
            batch = old[start : start + _BATCH]
            kept = await held(batch)
            orphans += [media_id for media_id in batch if media_id not in kept]
        await self.drop(orphans)
        if orphans:
            log.info("media: deleted %d object(s) a crash left without a database row", len(orphans))
        return len(orphans)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(16)


def _size_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


async def _all(work: Iterable[Awaitable[None]]) -> None:
    """Run `work` together (a job's few images); the first failure is raised once all ended."""
    for result in await asyncio.gather(*work, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


def _reason(exc: BaseException) -> str:
    """The store's complaint in one line: its first line, without the request it quotes."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
