"""Counts what one job costs on its way: store calls, transactions and SQL statements, and the HTTP
exchanges with the provider and with Discord. A whole bot runs against loopback fakes (FakeDiscord, a
queue provider fake) on SQLite; counting starts once the bot is up and ends once the job is posted
and its task has ended, so startup and background rounds stay out of the figures.

Used by tests/test_round_trips.py (which asserts the counts that matter) and printed by
`uv run --frozen python -m tests.support.round_trips` for docs/benchmarks.md ("Round trips per job").
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.discord import DiscordAdapter, DiscordSettings
from bot.app import Bot
from storage.sqlite import SqliteStore
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import with_files
from tests.fakes.fal import FalFake
from tests.fakes.queue_common import QueueFake
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.harness import BotHarness, sqlite_of

# Store methods that are not calls of their own (helpers the others go through).
_NOT_CALLS = {"transaction", "exclusive", "db"}


@dataclass
class Trips:
    """What one job took. `provider`: each request the provider fake answered, as "METHOD kind"."""

    store_calls: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    statements: int = 0
    provider: Counter[str] = field(default_factory=Counter)
    discord: Counter[str] = field(default_factory=Counter)
    on: bool = True

    def clear(self) -> None:
        self.store_calls.clear()
        self.provider.clear()
        self.discord.clear()
        self.transactions = self.statements = 0

    def row(self) -> dict[str, int]:
        return {
            "store calls": sum(self.store_calls.values()),
            "transactions": self.transactions,
            "SQL statements": self.statements,
            "provider HTTP": sum(self.provider.values()),
            "Discord HTTP": sum(self.discord.values()),
        }


def _provider_kind(path: str) -> str:
    if path.endswith("/status") or ("/predictions/" in path and path.endswith("/result")):
        return "status"
    if "/requests/" in path:
        return "result"
    if "/files/" in path:
        return "download"
    if "jwks" in path:
        return "keys"
    return "other"


def count_provider(fake: QueueFake, trips: Trips) -> None:
    """Count every request the fake answers (call before the fake runs: its app is not frozen yet)."""

    @web.middleware
    async def counting(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        kind = "submit" if request.method == "POST" else _provider_kind(request.path)
        trips.provider[f"{request.method} {kind}"] += 1
        return await handler(request)

    fake.app.middlewares.append(counting)


def count_store(store: SqliteStore, trips: Trips) -> None:
    """Wrap the store's public coroutines, its transactions and its connection's statements."""
    for name in dir(type(store)):
        if name.startswith("_") or name in _NOT_CALLS:
            continue
        method = getattr(store, name)
        if asyncio.iscoroutinefunction(method):
            setattr(store, name, _counted(method, name, trips))
    transaction = store.database.transaction

    def counted_transaction() -> Any:
        trips.transactions += trips.on
        return transaction()

    store.database.transaction = counted_transaction  # type: ignore[method-assign]
    db = store.db
    execute = db.execute

    def counted_execute(sql: str, *args: Any) -> Any:
        if sql.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            trips.statements += trips.on
        return execute(sql, *args)

    db.execute = counted_execute  # type: ignore[method-assign,assignment]


def _counted(method: Callable[..., Awaitable[Any]], name: str, trips: Trips) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        trips.store_calls[name] += trips.on
        return await method(*args, **kwargs)

    return call


def provider_env(fake: QueueFake) -> dict[str, Any]:
    if isinstance(fake, FalFake):
        return {"HIDREAM_PROVIDER": "fal", "FAL_KEY": fake.key, "FAL_QUEUE_URL": fake.url,
                "FAL_JWKS_URL": fake.jwks_url, "FAL_USER_ID": fake.user_id}  # fmt: skip
    assert isinstance(fake, WaveSpeedFake)
    return {"HIDREAM_PROVIDER": "wavespeed", "WAVESPEED_API_KEY": fake.api_key,
            "WAVESPEED_BASE_URL": fake.url, "WAVESPEED_WEBHOOK_SECRET": fake.secret}  # fmt: skip


@asynccontextmanager
async def counted_bot(
    tmp_path: Path, provider: str, *, webhook: bool
) -> AsyncIterator[tuple[Bot, FakeDiscord, QueueFake, Trips]]:
    """A bot on Discord and `provider` ("fal" or "wavespeed"), every round trip counted in `Trips`."""
    trips = Trips()
    fake: QueueFake = FalFake() if provider == "fal" else WaveSpeedFake()
    count_provider(fake, trips)
    made: list[DiscordAdapter] = []

    def factory(bot: Bot) -> DiscordAdapter:
        made.append(
            DiscordAdapter(bot.engine, bot.settings.section(DiscordSettings), guild_ready_timeout=0.05)
        )
        return made[0]

    async with fake.running(), FakeDiscord() as discord:
        env = {
            "DISCORD_TOKEN": discord.token,
            "DISCORD_API_BASE_URL": discord.api_url,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            # No lease renewal or look for free jobs while a job is counted.
            "HIDREAM_LEASE_SECONDS": 600,
            **provider_env(fake),
        }
        # Webhook mode polls only if no callback came in an hour: the callback alone finishes the job.
        async with BotHarness(tmp_path, env, [factory], callbacks=webhook, callback_grace=3600.0) as bot:
            bot.provider.poll_interval = 0.01  # polling mode: no waiting between reads, same reads
            count_store(sqlite_of(bot.store), trips)
            yield bot, discord, fake, trips


async def one_job(bot: Bot, discord: FakeDiscord, trips: Trips) -> str:
    """Run one `/hidream` from the Discord slash command to its posted image; the job's id."""
    await bot.runner.wait_idle()
    trips.clear()
    # Discord counted from here: the calls before were the bot's startup.
    start = len(discord.calls)
    payload = await discord.interact(discord.slash_payload({"prompt": "a red fox in snow"}))
    message = await discord.wait_for(
        lambda: (
            (m := discord.messages.get(discord.originals.get(payload["token"], ""))) and with_files(m) and m
        )
    )
    await bot.runner.wait_idle()
    for call in discord.calls[start:]:
        trips.discord[f"{call.method} {_discord_kind(call.path)}"] += 1
    trips.on = False  # what the test asks from here is not the job's
    job = await bot.engine.job_for_post("discord", message["id"])
    trips.on = True
    assert job is not None
    return job.id


def _discord_kind(path: str) -> str:
    if "/callback" in path:
        return "acknowledge"
    return path


async def measure() -> dict[str, Trips]:
    found: dict[str, Trips] = {}
    for provider in ("fal", "wavespeed"):
        for webhook in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                async with counted_bot(Path(tmp), provider, webhook=webhook) as (bot, discord, _, trips):
                    await one_job(bot, discord, trips)
                    found[f"{provider}, {'signed callback' if webhook else 'polling'}"] = trips
    return found


def main() -> None:
    found = asyncio.run(measure())
    heads = list(next(iter(found.values())).row())
    print("| job | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(heads))
    for name, trips in found.items():
        print(f"| {name} | " + " | ".join(str(v) for v in trips.row().values()) + " |")
    for name, trips in found.items():
        print(f"\n{name}:\n  store: {dict(trips.store_calls)}\n  provider: {dict(trips.provider)}"
              f"\n  discord: {dict(trips.discord)}", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
