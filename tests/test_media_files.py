"""The SQLite store keeps image bytes as files beside the database (storage/media.py): the rows hold
no bytes, the files and their folder are the owner's only, an upgraded database's images move out
(and a move cut short resumes), retention deletes files with their rows, an id of the wrong shape
never reaches the file system, and a missing file is an image no longer held, never a crash."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from bot.jobs.quota_policy import POLICY
from bot.jobs.retention import DAY, Retention
from bot.model.errors import ConfigError
from storage import media as media_module
from storage.media import ORPHAN_AGE
from storage.migrations import MEDIA_MOVING, MEDIA_TO_FILES, MIGRATIONS
from storage.retention import sweeps_for
from storage.sqlite import SqliteStore as Store
from storage.sqlite_conn import Connection
from tests.support.jobs import NOW, make_job


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows read with the plain sqlite3 module, as an operator would, beside the open store."""
    with sqlite3.connect(db_path) as db:
        rows = [tuple(row) for row in db.execute(sql)]
    db.close()
    return rows


def columns(db_path: Path, table: str) -> list[str]:
    return [str(row[1]) for row in query(db_path, f"PRAGMA table_info({table})")]


def tables(db_path: Path) -> set[str]:
    return {str(row[0]) for row in query(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}


def file_of(store: Store, media_id: str) -> Path:
    path = store.files.path_of(media_id)
    assert path is not None and path.parent == store.files.folder
    return path


@contextmanager
def umask(value: int) -> Iterator[None]:
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_bytes_land_in_a_file_and_the_row_holds_none(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    picture = os.urandom(64 * 1024)
    async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
        media_id = await store.put_media(picture, "image/webp", 640, 480, nsfw=True)
        assert file_of(store, media_id).read_bytes() == picture
        assert store.files.folder == Path(f"{path}.media")
        stored = await store.media(media_id)
        assert stored is not None and stored.data == picture
        assert (stored.content_type, stored.width, stored.height, stored.nsfw) == (
            "image/webp",
            640,
            480,
            True,
        )

        assert "data" not in columns(path, "media")
        assert query(path, "SELECT id, content_type, width, height, nsfw FROM media") == [
            (media_id, "image/webp", 640, 480, 1)
        ]
        # Not a byte of the image in the database file or its write-ahead log.
        for part in (path, Path(f"{path}-wal")):
            assert picture[:4096] not in part.read_bytes()


async def test_files_and_their_folder_are_the_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with umask(0o022):
        async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
            media_id = await store.put_media(b"png bytes", "image/png", 1, 1)
            assert mode(store.files.folder) == 0o700
            assert mode(file_of(store, media_id)) == 0o600
    # A folder that an earlier hand made readable to others is made the owner's only again.
    os.chmod(f"{path}.media", 0o755)
    async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
        assert mode(store.files.folder) == 0o700
        assert [mode(item) for item in store.files.folder.iterdir()] == [0o600]


def database_at_version(path: Path, version: int, images: dict[str, bytes]) -> None:
    """A database as the version before files made it (MIGRATIONS[:version] applied), with images."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for script in MIGRATIONS[:version]:
            db.executescript(script)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        for media_id, data in images.items():
            db.execute(
                "INSERT INTO media (id, data, content_type, width, height, nsfw, created_at, used_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (media_id, data, "image/png", 8, 4, 0, NOW - DAY, NOW - DAY),
            )
    db.close()


BEFORE_FILES = MIGRATIONS.index(MEDIA_TO_FILES)


async def test_an_upgraded_database_moves_its_images_out_and_keeps_no_blob(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    images = {"old": os.urandom(100_000), "Xy_-9" * 4: os.urandom(5000)}
    database_at_version(path, BEFORE_FILES, images)
    assert "data" in columns(path, "media")

    async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        for media_id, data in images.items():
            stored = await store.media(media_id)
            assert stored is not None and (stored.data, stored.width, stored.height) == (data, 8, 4)
            assert file_of(store, media_id).read_bytes() == data
    # Each image's description and age are kept, so retention counts from the same last use.
    assert sorted(query(path, "SELECT id, width, height, created_at, used_at FROM media")) == sorted(
        (media_id, 8, 4, NOW - DAY, NOW - DAY) for media_id in images
    )
    assert "data" not in columns(path, "media") and MEDIA_MOVING not in tables(path)
    assert not any(column == "data" for table in tables(path) for column in columns(path, table))


def make_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)


def write_file_of(db_path: Path, media_id: str, data: bytes) -> None:
    """The file `media_id`'s bytes go to (storage/media.py names it by the hex of the id)."""
    make_file(Path(f"{db_path}.media") / media_id.encode("ascii").hex(), data)


async def test_a_move_cut_short_resumes_at_the_next_open(tmp_path: Path) -> None:
    """The state a crash leaves: the migration committed, one image written to its file but its row
    not yet deleted from the set-aside table, the other not written at all."""
    path = tmp_path / "old.db"
    images = {"first": os.urandom(3000), "second": os.urandom(3000)}
    database_at_version(path, BEFORE_FILES, images)
    with sqlite3.connect(path) as db:
        db.executescript(MEDIA_TO_FILES)
        db.execute("UPDATE schema_version SET version=?", (BEFORE_FILES + 1,))
    db.close()
    write_file_of(path, "first", images["first"])

    async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
        for media_id, data in images.items():
            stored = await store.media(media_id)
            assert stored is not None and stored.data == data
    assert MEDIA_MOVING not in tables(path)


async def test_retention_deletes_the_files_with_their_rows_never_an_unfinished_jobs(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "r.db"
    async with Store(path, policy=POLICY, default_limit=10, clock=clock) as store:
        old, named = (
            await store.put_media(b"old", "image/png", 1, 1),
            await store.put_media(b"ref", "image/png", 1, 1),
        )
        waiting = make_job("bob")
        waiting.reference_media = [named]
        await store.admit(waiting, workspace_key="test:w1", dedup_key=None)
        clock.now = NOW + 31 * DAY
        fresh = await store.put_media(b"new", "image/png", 1, 1)

        swept = await Retention(store, 30, clock=clock).sweep()

        assert swept.media == 1
        assert not file_of(store, old).exists() and await store.media(old) is None
        assert file_of(store, named).read_bytes() == b"ref" and file_of(store, fresh).read_bytes() == b"new"
        assert sorted(item.name for item in store.files.folder.iterdir()) == sorted(
            file_of(store, m).name for m in (named, fresh)
        )


BAD_IDS = ["../m.db", "..", ".", "", "a/b", "/etc/passwd", "x" * 65, "name.png", "%2e%2e", "a\x00b", "é"]


async def test_an_id_of_the_wrong_shape_never_reaches_the_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    reads: list[Path] = []
    real_read = media_module._read

    def recorded(at: Path) -> bytes | None:
        reads.append(at)
        return real_read(at)

    monkeypatch.setattr(media_module, "_read", recorded)
    async with Store(path, policy=POLICY, default_limit=10, clock=Clock()) as store:
        # Rows with such ids (no version made them; a hand or a bug might) and files where a naive
        # join of folder and id would land.
        async with store.transaction() as db:
            for bad in BAD_IDS:
                await db.execute(
                    "INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at) "
                    "VALUES (?, 'image/png', 1, 1, 0, ?, ?)",
                    (bad, NOW, NOW),
                )
        (tmp_path / "name.png").write_bytes(b"not the bot's")
        (store.files.folder / "name.png").write_bytes(b"not the bot's")
        for bad in BAD_IDS:
            assert await store.media(bad) is None
            assert store.files.path_of(bad) is None
            with pytest.raises(ValueError):
                await store.files.write(bad, b"x")
            with pytest.raises(ValueError):
                await store.files.delete([bad])
        assert reads == []

        # Retention deletes those rows, and no file: not the database, not one beside it.
        clock_later = NOW + 31 * DAY
        assert (await Retention(store, 30, clock=lambda: clock_later).sweep()).media == len(BAD_IDS)
    assert path.exists() and (tmp_path / "name.png").read_bytes() == b"not the bot's"
    assert (Path(f"{path}.media") / "name.png").exists()


async def test_a_missing_file_is_an_image_no_longer_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Store(tmp_path / "m.db", policy=POLICY, default_limit=10, clock=Clock()) as store:
        media_id = await store.put_media(b"bytes", "image/png", 1, 1)
        file_of(store, media_id).unlink()
        assert await store.media(media_id) is None
        assert "has a row but no file" in caplog.text
        assert await store.media("AAAAAAAAAAAAAAAAAAAAAA") is None  # neither row nor file


async def test_a_failed_insert_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Store(tmp_path / "m.db", policy=POLICY, default_limit=10, clock=Clock()) as store:

        @asynccontextmanager
        async def broken() -> AsyncIterator[Connection]:
            raise sqlite3.OperationalError("database or disk is full")
            yield store.db  # pragma: no cover

        monkeypatch.setattr(store.database, "transaction", broken)
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            await store.put_media(b"bytes", "image/png", 1, 1)
        assert list(store.files.folder.iterdir()) == []


async def test_files_a_crash_left_without_rows_are_removed_at_start_once_old(tmp_path: Path) -> None:
    async with Store(tmp_path / "m.db", policy=POLICY, default_limit=10, clock=Clock()) as store:
        kept = await store.put_media(b"kept", "image/png", 1, 1)
        folder = store.files.folder
        # A crash after retention deleted a row and before its file; one after a write and before
        # its row (young: it may be a write whose row is on its way); a temporary file cut short.
        orphan, young, temp = (
            folder / b"orphan".hex(),
            folder / b"young1".hex(),
            folder / ".tmp-x",
        )
        for item in (orphan, young, temp):
            item.write_bytes(b"left")
        long_ago = time.time() - 2 * ORPHAN_AGE
        for item in (orphan, temp, file_of(store, kept)):
            os.utime(item, (long_ago, long_ago))

        await sweeps_for(store).prepare()

        assert sorted(item.name for item in folder.iterdir()) == sorted(
            [file_of(store, kept).name, young.name]
        )
        stored = await store.media(kept)
        assert stored is not None and stored.data == b"kept"


async def test_a_media_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    make_file(Path(f"{path}.media"), b"a file where the folder goes")
    with pytest.raises(ConfigError, match=r"HIDREAM_DB_PATH: cannot keep images in .*m\.db\.media"):
        async with Store(path, policy=POLICY, default_limit=10, clock=Clock()):
            pass
