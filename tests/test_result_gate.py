"""At most HIDREAM_MAX_UPLOADS results are kept and posted at once (`bot.jobs.images.ResultGate`; its earlier
name HIDREAM_MAX_RESULTS_IN_MEMORY still sets it when it alone is given): while that many are being kept or
posted, the other finished jobs wait for a slot, and every job is still delivered once. The Discord
poster frees each upload's buffer as soon as it is posted; a result's spooled file is deleted with its slot.

Counted with gates the test opens (a store that holds `complete`, a surface that holds `deliver`),
never with timings.
"""

from __future__ import annotations

import asyncio
import gc
import io
import weakref
from pathlib import Path
from typing import Any

import discord
import pytest

from adapters.discord.posting import release
from bot.jobs.images import ResultGate, decode_data_uri
from bot.model.jobs import Job, OutputImage, Post
from storage.posts import NewMedia
from tests.fakes.surface import RecordingSurface
from tests.support.credentials import without_credentials
from tests.support.harness import BotHarness, closed_port, until
from tests.support.holding import chat, holding, release_all

JOBS = 12
SLOTS = 3


class HeldSurface(RecordingSurface):
    """Posts nothing until `open` is set; counts the posts under way."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.posting = 0
        self.most_posting = 0

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        self.posting += 1
        self.most_posting = max(self.most_posting, self.posting)
        try:
            await self.open.wait()
            return await super().deliver(job, images)
        finally:
            self.posting -= 1


def start(tmp_path: Path, surface: RecordingSurface) -> BotHarness:
    env = {
        "HIDREAM_MAX_ACTIVE_JOBS": JOBS,
        "HIDREAM_MAX_RESULTS_IN_MEMORY": SLOTS,
        "HIDREAM_DAILY_IMAGE_QUOTA": 1000,
    }
    return BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600)


async def test_results_being_posted_are_bounded_and_the_rest_wait(tmp_path: Path) -> None:
    surface = HeldSurface()
    async with start(tmp_path, surface) as bot:
        provider = holding(bot)
        gate = bot.runner.results
        assert gate.slots == SLOTS
        jobs = [await bot.engine.submit(chat(i)) for i in range(JOBS)]
        await until(lambda: len(provider.held) == JOBS)
        await release_all(bot, provider)
        # Every finished job has reached the gate: SLOTS of them post, the others wait for a slot.
        await until(lambda: surface.posting == SLOTS and gate.waiting == JOBS - SLOTS)
        assert gate.held == SLOTS
        surface.open.set()
        await until(lambda: len(surface.deliveries) == JOBS)
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        assert surface.most_posting == SLOTS and gate.most_held == SLOTS
        assert gate.held == 0 and gate.waiting == 0
        assert sorted(job_id for job_id, _ in surface.deliveries) == sorted(job.id for job in jobs)
        assert await bot.store.unfinished_jobs() == []


async def test_results_being_kept_are_bounded_and_the_rest_wait(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with start(tmp_path, surface) as bot:
        provider = holding(bot)
        gate = bot.runner.results
        store = bot.store
        real_complete = store.complete
        open_store = asyncio.Event()
        keeping = most_keeping = 0

        async def held_complete(job_id: str, images: list[NewMedia]) -> list[str] | None:
            nonlocal keeping, most_keeping
            keeping += 1
            most_keeping = max(most_keeping, keeping)
            try:
                await open_store.wait()
                return await real_complete(job_id, images)
            finally:
                keeping -= 1

        store.complete = held_complete  # type: ignore[method-assign]
        jobs = [await bot.engine.submit(chat(i)) for i in range(JOBS)]
        await until(lambda: len(provider.held) == JOBS)
        await release_all(bot, provider)
        await until(lambda: keeping == SLOTS and gate.waiting == JOBS - SLOTS)
        assert gate.held == SLOTS
        open_store.set()
        await until(lambda: len(surface.deliveries) == JOBS)
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        assert most_keeping == SLOTS and gate.most_held == SLOTS
        assert sorted(job_id for job_id, _ in surface.deliveries) == sorted(job.id for job in jobs)
        # What was kept is what was posted, byte for byte: the provider's image, with the content
        # credentials signed into it before it was kept (compared without them, the same bytes).
        for job_id, images in surface.deliveries:
            made = await bot.engine.job(job_id)
            assert made is not None
            assert [image.data for image in images] == [k.data for k in await bot.engine.result_images(made)]
            assert [without_credentials(image.data) for image in images] == [decode_data_uri(provider.image)]


async def test_a_slot_is_given_back_when_its_result_cannot_be_downloaded(tmp_path: Path) -> None:
    surface = RecordingSurface()
    env = {"HIDREAM_MAX_RESULTS_IN_MEMORY": 1, "HIDREAM_DAILY_IMAGE_QUOTA": 1000}
    async with BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600) as bot:
        provider = holding(bot)
        gate = bot.runner.results
        good = provider.image
        provider.image = f"http://127.0.0.1:{closed_port()}/result.png"  # the download is refused
        failed = await bot.engine.submit(chat(0))
        await until(lambda: len(provider.held) == 1)
        await release_all(bot, provider)
        await until(lambda: any(job_id == failed.id for job_id, _ in surface.told))
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        assert gate.held == 0 and gate.waiting == 0
        # The one slot is free again: the next job is kept and posted.
        provider.image = good
        job = await bot.engine.submit(chat(1))
        await until(lambda: len(provider.held) == 1)
        await release_all(bot, provider)
        await until(lambda: len(surface.deliveries) == 1)
        assert surface.deliveries[0][0] == job.id and gate.held == 0


def test_setting_default_and_bounds() -> None:
    from bot.model.config import load_settings
    from bot.model.errors import ConfigError

    assert load_settings().max_results_in_memory == 2
    assert load_settings(HIDREAM_MAX_RESULTS_IN_MEMORY="8").max_results_in_memory == 8
    with pytest.raises(ConfigError, match="HIDREAM_MAX_RESULTS_IN_MEMORY"):
        load_settings(HIDREAM_MAX_RESULTS_IN_MEMORY="0")


def test_uploads_at_once_default_and_the_earlier_name() -> None:
    from bot.model.config import load_settings
    from bot.model.errors import ConfigError

    assert load_settings().upload_slots == 16
    assert load_settings(HIDREAM_MAX_UPLOADS="4").upload_slots == 4
    # The earlier name alone still sets it; beside the new one it gives way.
    assert load_settings(HIDREAM_MAX_RESULTS_IN_MEMORY="3").upload_slots == 3
    assert load_settings(HIDREAM_MAX_RESULTS_IN_MEMORY="3", HIDREAM_MAX_UPLOADS="5").upload_slots == 5
    with pytest.raises(ConfigError, match="HIDREAM_MAX_UPLOADS"):
        load_settings(HIDREAM_MAX_UPLOADS="0")


async def test_a_result_is_posted_from_its_file_and_the_spooled_copy_goes_with_its_slot(
    tmp_path: Path,
) -> None:
    """On a store that keeps no files (the object store, PostgreSQL's rows) the post reads the spooled
    download; here, SQLite's media folder: the post reads the kept file itself, and no spooled file is
    left once the job is delivered."""
    seen: list[tuple[Path | None, bytes]] = []

    class FileSurface(RecordingSurface):
        async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
            seen.extend((image.file, image.data) for image in images)
            return await super().deliver(job, images)

    surface = FileSurface()
    async with start(tmp_path, surface) as bot:
        job = await bot.engine.submit(chat(0))
        await until(lambda: len(surface.deliveries) == 1)
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        ((file, data),) = seen
        ((_, (posted,)),) = surface.deliveries
        assert data == b"" and file is not None  # a file to stream, no bytes in memory
        assert file == tmp_path / "bot.db.media" / posted.media_id.encode().hex()
        assert file.read_bytes() == posted.data
        assert [p.name for p in (tmp_path / "bot.db.media").iterdir() if p.name.startswith(".")] == []
        assert bot.runner.results.held == 0 and job.id == surface.deliveries[0][0]


def test_a_posted_files_buffer_is_freed_without_the_garbage_collector() -> None:
    """discord.File patches its buffer's `close` with the buffer's own method: a reference cycle.
    Without `release`, the buffer (and its bytes) would live until the cyclic collector ran."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        kept: list[Any] = []
        for released in (False, True):
            buffer = io.BytesIO(b"\x89PNG" + bytes(1024))
            alive = weakref.ref(buffer)
            file = discord.File(buffer, filename="a.png")
            file.close()  # as discord.py does once a request is sent
            if released:
                release([file])
                assert buffer.closed
            del file, buffer
            kept.append(alive() is not None)
        assert kept == [True, False]  # the cycle is real, and `release` breaks it
    finally:
        if enabled:
            gc.enable()
        gc.collect()


async def test_a_result_just_kept_is_posted_from_memory_and_a_resumed_delivery_reads_it_back(
    tmp_path: Path,
) -> None:
    surface = RecordingSurface()
    async with start(tmp_path, surface) as bot:
        reads: list[str] = []
        read = bot.store.media

        async def counted(media_id: str) -> Any:
            reads.append(media_id)
            return await read(media_id)

        bot.store.media = counted  # type: ignore[method-assign]
        job = await bot.engine.submit(chat(0))
        await until(lambda: len(surface.deliveries) == 1)
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        ((job_id, images),) = surface.deliveries
        assert job_id == job.id and reads == []  # posted as downloaded: no read back from the store
        kept = await read(images[0].media_id)
        assert kept is not None and kept.data == images[0].data  # and what was posted is what was kept
        gate = bot.runner.results
        assert gate.held == 0 and gate.most_held == 1
        # A delivery that did not follow its download in the same task reads the images back.
        done = await bot.store.job(job.id)
        assert done is not None
        again = await bot.engine.result_images(done)
        assert [i.data for i in again] == [i.data for i in images] and reads == [images[0].media_id]


async def test_a_slot_given_back_twice_frees_one_place_only() -> None:
    gate = ResultGate(1)
    slot = await gate.take()
    slot.release()
    slot.release()
    assert gate.held == 0
    first = await gate.take()
    second = asyncio.create_task(gate.take())
    await until(lambda: gate.waiting == 1)  # the second release above did not leave a spare place
    first.release()
    (await second).release()
    assert gate.held == 0 and gate.waiting == 0
