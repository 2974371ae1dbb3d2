"""HIDREAM_DATABASE_URL chooses PostgreSQL: a console job runs end to end with every row in the
PostgreSQL database (and no SQLite file made), and the operator's `quota show` reads it there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from PIL import Image

from tests.support.processes import Cli
from tests.support.store_backends import postgres_url


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    db = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(row) for row in await db.fetch(sql)]
    finally:
        await db.close()


def test_a_console_job_on_postgresql(
    tmp_path: Path,
    cli: Cli,
    postgres_database: str | BaseException,
) -> None:
    url = postgres_url(postgres_database)
    made = cli("run", stdin="/hidream a red fox in snow --seed 7\n", HIDREAM_DATABASE_URL=url)
    assert made.returncode == 0, made.stderr
    [path] = made.stdout.split()
    with Image.open(path) as img:
        assert img.format == "PNG"
    jobs = asyncio.run(_rows(url, "SELECT state, seed, user_id FROM jobs"))
    assert jobs == [("delivered", 7, "local")]
    assert asyncio.run(_rows(url, "SELECT count(*) FROM media")) != [(0,)]
    assert not (tmp_path / "bot.db").exists()  # nothing went to SQLite
    shown = cli("quota", "show", "--user", "console:local", HIDREAM_DATABASE_URL=url)
    assert shown.returncode == 0, shown.stderr
    assert "1 used of 25 today, 24 left" in shown.stdout
    # The URL's own settings are never printed (its password, were there one, with them).
    assert url not in made.stdout + made.stderr + shown.stdout + shown.stderr
