"""Installation tokens sealed at rest (bot/model/secrets.py, storage/installations.py), on both store
backends: no token in clear in the rows (nor anywhere in SQLite's files), keys changed by sealing every
row again under the new one, a previous release's plain rows sealed, and a wrong or missing key named
in one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.cli import secret_values
from bot.jobs.quota_policy import POLICY
from bot.model.config import Settings
from bot.model.errors import ConfigError
from bot.model.secrets import MAKE_KEY, PREFIX, Sealer
from storage.installations import BotInstall, Installations, plain_tokens
from storage.sqlite import SqliteStore
from storage.store import Store
from tests.support.jobs import NOW
from tests.support.processes import Cli
from tests.support.sealing import KEY, NEW_KEY, SEALER, key_of
from tests.support.store_backends import OpenStore

TOKEN, REFRESH = "xoxe.xoxb-T1-secret-token-4711", "xoxe-1-T1-refresh-token-0815"
GRID_TOKEN = "xoxb-T2-another-secret-token-99"


async def raw_rows(store: Store) -> list[tuple[str, str | None]]:
    return [
        (row[0], row[1])
        for row in await store.database.fetch(
            "SELECT bot_token, bot_refresh_token FROM slack_installations ORDER BY team_id"
        )
    ]


async def save_two(installs: Installations) -> None:
    await installs.save(
        BotInstall(enterprise_id="", team_id="T1", bot_token=TOKEN, bot_refresh_token=REFRESH)
    )
    await installs.save(BotInstall(enterprise_id="E1", team_id="T2", bot_token=GRID_TOKEN))


def files_under(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in folder.rglob("*") if path.is_file()]


async def tokens(installs: Installations) -> list[tuple[str, str | None]]:
    found = [await installs.find("", "T1"), await installs.find("E1", "T2")]
    return [(f.bot_token, f.bot_refresh_token) for f in found if f is not None]


async def test_the_rows_hold_no_token_in_clear(open_store: OpenStore, backend: str, tmp_path: Path) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        installs = Installations(store, SEALER)
        await save_two(installs)
        rows = await raw_rows(store)
        assert await tokens(installs) == [(TOKEN, REFRESH), (GRID_TOKEN, None)]
        while_open = files_under(tmp_path)
    assert [(t.startswith(PREFIX), r is None or r.startswith(PREFIX)) for t, r in rows] == [(True, True)] * 2
    for secret in (TOKEN, REFRESH, GRID_TOKEN, "secret-token", "refresh-token"):
        assert all(secret not in str(row) for row in rows)
    if backend == "sqlite":
        # The database file and whatever SQLite keeps beside it (its write-ahead log, while open too).
        files = files_under(tmp_path) + while_open
        assert files and all(b"secret-token" not in data and b"refresh-token" not in data for data in files)


async def test_a_new_key_seals_every_row_again_and_the_old_one_is_then_not_needed(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        await save_two(Installations(store, SEALER))
        before = await raw_rows(store)
        rotating = Installations(store, Sealer(NEW_KEY, KEY))
        assert await tokens(rotating) == [(TOKEN, REFRESH), (GRID_TOKEN, None)]  # read while keys change
        assert await rotating.reseal() == 2
        assert await rotating.reseal() == 0  # all under the new key already
        after = await raw_rows(store)
        assert all(a[0] != b[0] for a, b in zip(after, before, strict=True)) and after[0][1] != before[0][1]
        assert await tokens(Installations(store, Sealer(NEW_KEY))) == [(TOKEN, REFRESH), (GRID_TOKEN, None)]
        with pytest.raises(ConfigError, match="HIDREAM_SECRET_KEY: the secrets in the database were sealed"):
            await Installations(store, SEALER).find("", "T1")


async def test_a_previous_release_plain_rows_are_sealed(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        for team, token, refresh in (("T1", TOKEN, REFRESH), ("T2", GRID_TOKEN, None)):
            await store.write(
                "INSERT INTO slack_installations (team_id, bot_token, bot_refresh_token, installed_at) "
                "VALUES (?, ?, ?, ?)",
                team,
                token,
                refresh,
                NOW,
            )
        assert await plain_tokens(store) == 2
        installs = Installations(store, SEALER)
        assert await installs.reseal() == 2
        assert await plain_tokens(store) == 0
        rows = await raw_rows(store)
        assert all(TOKEN not in str(row) and GRID_TOKEN not in str(row) for row in rows)
        t1, t2 = await installs.find("", "T1"), await installs.find("", "T2")
        assert t1 is not None and (t1.bot_token, t1.bot_refresh_token) == (TOKEN, REFRESH)
        assert t2 is not None and t2.bot_token == GRID_TOKEN


async def test_a_key_that_opens_no_row_is_named(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        await save_two(Installations(store, SEALER))
        with pytest.raises(ConfigError) as wrong:
            await Installations(store, Sealer(NEW_KEY)).reseal()
        assert str(wrong.value).startswith("HIDREAM_SECRET_KEY: ")
        with pytest.raises(ConfigError) as neither:
            await Installations(store, Sealer(NEW_KEY, key_of("o"))).reseal()
        assert str(neither.value).startswith("HIDREAM_SECRET_KEY, HIDREAM_SECRET_KEY_OLD: neither key")
        assert await tokens(Installations(store, SEALER)) == [(TOKEN, REFRESH), (GRID_TOKEN, None)]


async def sealed_database(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "bot.db", policy=POLICY, default_limit=25) as store:
        await save_two(Installations(store, SEALER))


def test_run_with_the_wrong_key_ends_with_one_line_naming_it(cli: Cli, tmp_path: Path) -> None:
    asyncio.run(sealed_database(tmp_path))
    ran = cli("run", HIDREAM_SECRET_KEY=NEW_KEY)
    assert ran.returncode == 2
    assert ran.stderr.startswith("hidream-bot: HIDREAM_SECRET_KEY: the secrets in the database were sealed")
    assert len(ran.stderr.strip().splitlines()) == 1 and "Traceback" not in ran.stderr
    assert NEW_KEY not in ran.stderr + ran.stdout
    # With the right key beside it as the old one, the same start seals them under the new key.
    ran = cli("run", HIDREAM_SECRET_KEY=NEW_KEY, HIDREAM_SECRET_KEY_OLD=KEY)
    assert ran.returncode == 0, ran.stderr
    assert cli("run", HIDREAM_SECRET_KEY=NEW_KEY).returncode == 0


def test_a_malformed_key_is_named_with_how_to_make_one(cli: Cli) -> None:
    for variable in ("HIDREAM_SECRET_KEY", "HIDREAM_SECRET_KEY_OLD"):
        checked = cli("check", **{variable: "not-a-key-but-a-secret-all-the-same"})
        assert checked.returncode == 2
        assert checked.stderr.startswith(f"hidream-bot: invalid setting: {variable}: ")
        assert MAKE_KEY in checked.stderr and "not-a-key" not in checked.stderr + checked.stdout
        assert "Traceback" not in checked.stderr


def test_check_says_how_to_make_a_key_or_that_tokens_are_sealed(cli: Cli) -> None:
    without = cli("check")
    assert without.returncode == 0
    assert "sealing:   HIDREAM_SECRET_KEY is not set" in without.stdout and MAKE_KEY in without.stdout
    rotating = cli("check", HIDREAM_SECRET_KEY=NEW_KEY, HIDREAM_SECRET_KEY_OLD=KEY)
    assert "sealing:   installation tokens sealed with HIDREAM_SECRET_KEY;" in rotating.stdout
    assert NEW_KEY not in rotating.stdout + rotating.stderr and KEY not in rotating.stdout + rotating.stderr


def test_the_keys_are_secrets_the_log_masks() -> None:
    masked = secret_values(Settings(_env_file=None, HIDREAM_SECRET_KEY=KEY, HIDREAM_SECRET_KEY_OLD=NEW_KEY))
    assert KEY in masked and NEW_KEY in masked
    assert KEY not in repr(Settings(_env_file=None, HIDREAM_SECRET_KEY=KEY))
