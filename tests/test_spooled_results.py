"""The store keeps a result streamed to disk (a spooled file, issue 23) without reading it whole where it
keeps files, and hands it back as a file to stream from, on both backends (and the object store: see
tests/test_streamed_results.py for the whole path measured from outside). PostgreSQL's media bytes are
stored without a compression attempt (migration 22)."""

from __future__ import annotations

import asyncio

import asyncpg

from bot.model.jobs import JobState
from storage.posts import NewMedia
from storage.spool import spool_file
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def test_a_spooled_result_is_kept_and_read_back_as_a_file(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        await walk(store, job.id, JobState.RUNNING)
        spooled = await asyncio.to_thread(spool_file, store.media_bytes.spool_dir())
        await asyncio.to_thread(spooled.write_bytes, PNG)
        ids = await store.complete(job.id, [NewMedia(b"", "image/png", 64, 32, file=spooled)])
        assert ids is not None
        (media_id,) = ids
        placed = store.media_bytes.placed(media_id, spooled)
        kept = await store.media(media_id)
        assert kept is not None and kept.data == PNG  # what was spooled is what is kept
        found = await store.media_file(media_id)
        assert found is not None and found.file.read_bytes() == PNG
        assert (found.content_type, found.width, found.height) == ("image/png", 64, 32)
        if store.database.dialect.name == "postgres":
            # The bytes went into the row; the post reads the spooled file, and a later reader a copy.
            assert placed == spooled and spooled.exists() and found.spooled
            found.file.unlink()
        else:
            # The spooled file became the media file itself (a rename): nothing is copied or left over.
            assert placed != spooled and not spooled.exists() and not found.spooled
            assert found.file == placed and placed.read_bytes() == PNG
        assert await store.media_file("no-such-id") is None


async def test_postgres_stores_media_bytes_without_trying_to_compress_them(pg_url: str) -> None:
    from bot.jobs.quota_policy import POLICY
    from storage.postgres import PostgresStore

    async with PostgresStore(pg_url, policy=POLICY, default_limit=25) as store:
        assert store.database.dialect.name == "postgres"
    connection = await asyncpg.connect(pg_url)
    try:
        storage = await connection.fetchval(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'media'::regclass AND attname = 'data'"
        )
    finally:
        await connection.close()
    assert storage == b"e"  # EXTERNAL: out of line, as it is (a "char" comes back as bytes)
