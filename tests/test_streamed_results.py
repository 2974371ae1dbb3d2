"""A result is streamed end to end (issue 23, item 2): from the provider's download into the media store
and from there into the platform's upload in chunks, never whole in memory.

Measured from outside, as `make bench` measures: the bot is a process of its own (`hidream-bot run`),
the provider (tests/fakes/bench_provider.py) serves one result PNG of about 20 MB, and the Discord fake
(in this process) receives the upload. The bot's peak resident memory (VmHWM, started again from the
current RSS just before the job: 5 in /proc/<pid>/clear_refs) is read over the job's download,
signing, keeping and post. A first job of the same size warms the process first. No timing is
measured or asserted.

One step holds the image whole whatever the bot does: c2pa, which signs the content credentials into
it, keeps it in memory while it signs (about 2.7 times its size for a PNG). So the bound is what c2pa
alone takes for the same image, measured in a process of its own (`signing_alone`), plus a few MB: a
bot that held the image whole anywhere else, even once, would grow by 20 MB more (before streaming it
held several copies).

The stores: SQLite's media folder, and the object store (moto's S3 server) under SQLite. PostgreSQL's
own media rows are left out: a row's bytes go whole into its INSERT (docs/object-store.md says so).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bench.bot import python_pid, reset_peak, start_bot, status_kib, stop_bot
from tests.fakes.bench_discord import SinkDiscord
from tests.support.s3 import S3Server, create_bucket, keys, s3_server

__all__ = ["s3_server"]

SIDE = 3100  # a noise PNG of about 20 MB
# The most the bot's peak memory may grow while it handles one such result, beyond what c2pa takes:
# buffers (the download's, the upload's) through the media folder; with the object store also S3's
# multipart parts, at least 5 MiB each, of which obstore holds the one it reads and the one it sends.
ALLOWED_GROWTH_MB = 8.0
ALLOWED_GROWTH_OBJECTS_MB = 16.0


@asynccontextmanager
async def provider() -> AsyncIterator[tuple[str, int]]:
    """The bench provider serving a ~20 MB result: its URL and the result's size."""
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "tests.fakes.bench_provider", "--side", str(SIDE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        url, size = line.split()
        yield url, int(size)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


_SIGN_ALONE = """
import ctypes, sys, tempfile
from pathlib import Path
from bot.jobs.credentials import Facts, SigningKey, make_authority, sign, sign_file
from tests.fakes.bench_provider import noise_png

def kib(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1])

made = make_authority()
key = SigningKey((made["cert"] + made["ca_cert"]).encode(), made["key"].encode(), "es256", True)
facts = Facts(provider="pixazo", model="fast", prompt="noise")
sign(noise_png(side=64), "image/png", facts, key)  # c2pa warmed, as in the bot
path = Path(tempfile.mkdtemp()) / "result.png"
path.write_bytes(noise_png(side=int(sys.argv[1])))
ctypes.CDLL(None).malloc_trim(0)
open("/proc/self/clear_refs", "w").write("5")
rss = kib("VmRSS")
sign_file(path, "image/png", facts, key)
print((kib("VmHWM") - rss) / 1024)
"""


async def signing_alone() -> float:
    """What c2pa alone adds to a process's peak memory to sign one such result, in MB."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _SIGN_ALONE, str(SIDE)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


async def one_job(fake: SinkDiscord, tag: str) -> None:
    await fake.interact(fake.slash_payload({"prompt": f"noise {tag}"}))
    await fake.wait_for(lambda: tag in fake.uploaded_at, within=300)


async def growth_of_one_result(tmp_path: Path, extra: dict[str, str]) -> tuple[float, int, int]:
    """(peak memory growth in MB over one ~20 MB result, the result's size, the bytes uploaded)."""
    fake = SinkDiscord(1)
    async with provider() as (url, size), fake:
        fake.upload_limit = 64 * 1024 * 1024  # a server whose limit takes the image as it is
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/_bench/reset") as answer:
                assert answer.status == 200
        proc = await start_bot(
            tmp_path, provider_url=url, fake=fake, webhook=False, database_url="", extra=extra
        )
        try:
            pid = python_pid(proc)
            await one_job(fake, "r1j0")  # warms the process
            before_bytes = fake.uploaded_bytes
            await asyncio.sleep(0)
            reset_peak(pid)
            rss = status_kib(pid, "VmRSS")
            await one_job(fake, "r1j1")
            peak = status_kib(pid, "VmHWM")
        finally:
            await stop_bot(proc)
        return (peak - rss) / 1024, size, fake.uploaded_bytes - before_bytes


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
async def test_a_20_mb_result_passes_through_the_media_folder_without_growing_the_bot(tmp_path: Path) -> None:
    growth, size, uploaded = await growth_of_one_result(tmp_path, {})
    assert size > 19 * 1024 * 1024
    # Posted whole (with its content credentials signed in, a few KB more), never shrunk.
    assert size < uploaded < size + 64 * 1024
    signing = await signing_alone()
    print(f"peak growth {growth:.1f} MB, c2pa alone {signing:.1f} MB, result {size} bytes")
    assert growth < signing + ALLOWED_GROWTH_MB, (
        f"{growth:.1f} MB for a {size} byte result ({signing:.1f} signing)"
    )
    media = tmp_path / "bot.db.media"
    kept = [p for p in media.iterdir() if not p.name.startswith(".")]
    assert len(kept) == 2 and all(p.stat().st_size == uploaded for p in kept)
    assert [p.name for p in media.iterdir() if p.name.startswith(".")] == []  # no spooled file left


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
async def test_a_20_mb_result_passes_through_the_object_store_without_growing_the_bot(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = create_bucket(s3_server)
    spool = tmp_path / "spool"
    spool.mkdir()
    # The bot spools what it posts from the object store in the system's temporary folder.
    env = s3_server.env(bucket) | {"TMPDIR": str(spool)}
    growth, size, uploaded = await growth_of_one_result(tmp_path, env)
    assert size < uploaded < size + 64 * 1024
    signing = await signing_alone()
    print(f"peak growth {growth:.1f} MB, c2pa alone {signing:.1f} MB, result {size} bytes")
    assert growth < signing + ALLOWED_GROWTH_OBJECTS_MB, (
        f"{growth:.1f} MB for a {size} byte result ({signing:.1f} signing)"
    )
    held = keys(s3_server, bucket)
    assert len(held) == 2 and set(held.values()) == {uploaded}
    # Each spooled copy was deleted once posted.
    assert [p for p in spool.rglob("*") if p.is_file()] == []
