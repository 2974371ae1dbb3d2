"""The Discord surface: a discord.py client wired to the engine, started and stopped as a context manager."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.discord.commands import register_commands
from adapters.discord.context import HandlerContext
from adapters.discord.interactions import InteractionHandlers
from adapters.discord.messages import MessageHandler
from adapters.discord.posting import Poster, followup_origin
from adapters.discord.review import ReviewCommands, ReviewPoster
from adapters.discord.settings import DiscordSettings
from adapters.discord.translate import SURFACE
from bot.model.errors import ConfigError
from bot.model.jobs import Job, OutputImage, Post, Progress

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)
# Login, command sync and the gateway's READY together; a start that hangs ends well within 30 s
# (unsharded, or one shard; each further shard adds its IDENTIFY_INTERVAL).
START_TIMEOUT = 25.0
# Discord lets a bot (max_concurrency 1) identify one shard every 5 s; a replica's start allows for it.
IDENTIFY_INTERVAL = 5.0
_CLIENT_LOG = logging.getLogger("discord.client")
_SHARD_LOG = logging.getLogger("discord.shard")
# How discord.py logs a gateway it cannot reach: unsharded, then per shard.
_RETRIES = ("Attempting a reconnect", "Failed to connect for shard_id")
# Gateway close codes that mean a setting is wrong (Discord's documented codes).
_CLOSE_CODES = {
    4004: ("DISCORD_TOKEN", "the gateway refused the token (close code 4004): it is wrong or was reset"),
    4010: ("DISCORD_GATEWAY_URL", "the gateway refused the shard (close code 4010)"),
    4011: (
        "DISCORD_GATEWAY_URL",
        "the gateway asks for sharding (close code 4011): the bot is in too many servers",
    ),
    4012: ("DISCORD_GATEWAY_URL", "the gateway does not speak this API version (close code 4012)"),
    4013: ("DISCORD_TOKEN", "the gateway refused the requested intents (close code 4013)"),
}


def _no_voice_warnings(record: logging.LogRecord) -> bool:
    # discord.py warns on start that voice needs PyNaCl and davey; this bot has no voice.
    return "voice will NOT be supported" not in record.getMessage()


class _StartWatch(logging.Filter):
    """While the adapter starts, discord.py's retries of a gateway it cannot reach stay out of the log
    (the start succeeds, or ends with one line naming DISCORD_GATEWAY_URL); the last error is kept as
    the cause, and logged in full at DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.last_error: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(_RETRIES):
            return True
        if record.exc_info:
            self.last_error = record.exc_info[1]
        log.debug("discord gateway at start: %s", record.getMessage(), exc_info=record.exc_info)
        return False


def _cause(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Events:
    """What the bot listens to on the gateway, sharded or not."""

    adapter: DiscordAdapter

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.messages.handle(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Application commands go through the command tree; buttons and modals come here.
        if interaction.type in (discord.InteractionType.component, discord.InteractionType.modal_submit):
            await self.adapter.handlers.component(interaction)


class _Client(_Events, discord.Client):
    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter


class _ShardedClient(_Events, discord.AutoShardedClient):
    """The shards this replica runs (DISCORD_SHARD_IDS of DISCORD_SHARD_COUNT), each its own gateway
    connection; Discord sends a server's events to shard (guild_id >> 22) % shard_count only."""

    def __init__(
        self, adapter: DiscordAdapter, pause: Callable[[float], Awaitable[None]], **options: Any
    ) -> None:
        super().__init__(**options)
        self.adapter = adapter
        self._pause = pause

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # As discord.py does, with the wait injectable: the first shard at once, the next ones spaced.
        if not initial:
            await self._pause(IDENTIFY_INTERVAL)


class DiscordAdapter:
    """Implements bot.model.jobs.Surface for Discord. `async with adapter:` connects and syncs commands."""

    name = SURFACE

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        *,
        clock: Callable[[], float] = time.time,
        guild_ready_timeout: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.token is None:
            raise ConfigError("DISCORD_TOKEN is not set")
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._nsfw_policy = settings.nsfw_policy
        self._max_image_bytes = engine.settings.max_image_bytes
        self._guild_ready_timeout = guild_ready_timeout
        self._sleep = sleep
        self.shard_ids = settings.shards()
        self._task: asyncio.Task[None] | None = None
        self._phase = "api"  # then "gateway": which address a failed start names
        self.message_content = True
        self._build(message_content=True)

    def _build(self, *, message_content: bool) -> None:
        intents = discord.Intents.default()
        # Privileged: without it the bot reads only messages that mention it, which still works.
        intents.message_content = message_content
        self.message_content = message_content
        _CLIENT_LOG.addFilter(_no_voice_warnings)
        self.client = self._make_client(intents)
        self.tree = app_commands.CommandTree(self.client)
        self.poster = Poster(
            self.client,
            nsfw_policy=self._nsfw_policy,
            memory=self.engine.store,
            clock=self.clock,
            tenant_nsfw=lambda job: self.engine.nsfw_policy(job.surface, job.workspace_id),
        )
        context = HandlerContext(
            engine=self.engine,
            clock=self.clock,
            bot_id=lambda: self.bot_id,
            fetch_message=self._fetch_message,
            max_image_bytes=self._max_image_bytes,
        )
        self.reviews = ReviewPoster(self.poster)
        self.handlers = InteractionHandlers(context, ReviewCommands(context, self.reviews))
        self.messages = MessageHandler(context)
        register_commands(self.tree, self.handlers)

    def _make_client(self, intents: discord.Intents) -> discord.Client:
        if self.shard_ids is None:
            return _Client(self, intents=intents, guild_ready_timeout=self._guild_ready_timeout)
        return _ShardedClient(
            self,
            self._sleep,
            intents=intents,
            guild_ready_timeout=self._guild_ready_timeout,
            shard_count=self.settings.shard_count,
            shard_ids=self.shard_ids,
        )

    def _start_timeout(self) -> float:
        # Every shard after the first waits its turn to identify.
        return START_TIMEOUT + IDENTIFY_INTERVAL * max(0, len(self.shard_ids or [0]) - 1)

    @property
    def bot_id(self) -> str:
        return str(self.client.user.id) if self.client.user else ""

    async def _fetch_message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        return dict(await self.client.http.get_message(channel_id, message_id))

    async def __aenter__(self) -> DiscordAdapter:
        # discord.py keeps both addresses on its classes; they are redirected for a proxy or a test server.
        discord.http.Route.BASE = self.settings.api_base_url.rstrip("/")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.gateway_url)
        watch = _StartWatch()
        _CLIENT_LOG.addFilter(watch)
        _SHARD_LOG.addFilter(watch)
        try:
            async with asyncio.timeout(self._start_timeout()):
                await self._start_with_fallback()
        except BaseException as exc:
            await self.__aexit__(None, None, None)
            error = self._start_error(exc, watch.last_error) if isinstance(exc, Exception) else None
            if error is None:
                raise
            raise error from exc
        finally:
            _CLIENT_LOG.removeFilter(watch)
            _SHARD_LOG.removeFilter(watch)
        return self

    async def _start_with_fallback(self) -> None:
        try:
            await self._start()
        except discord.PrivilegedIntentsRequired:
            log.warning(
                "Discord refused the message-content intent: enable it in the Developer Portal (Bot page) "
                "for thread follow-ups without a mention; continuing with mentions only."
            )
            await self.client.close()
            self._build(message_content=False)
            await self._start()

    async def _start(self) -> None:
        assert self.settings.token is not None
        self._phase = "api"
        await self.client.login(self.settings.token.get_secret_value())
        await self._sync_commands()
        self._phase = "gateway"
        self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        try:
            await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if not self.client.is_ready():
            self._task.result()  # raises why the gateway closed
            raise ConfigError(
                "DISCORD_GATEWAY_URL: the gateway closed the connection before the bot was ready"
            )
        log.info(
            "discord: connected as %s (%s; message content intent: %s)",
            self.client.user,
            self.settings.describe_shards(),
            self.message_content,
        )

    def _start_error(self, exc: Exception, gateway_error: BaseException | None) -> ConfigError | None:
        """The one line a failed start ends with, naming the setting; None for what is not a setting's
        fault (a bug keeps its traceback)."""
        if isinstance(exc, ConfigError):
            return exc
        api, gateway = self.settings.api_base_url, self.settings.gateway_url
        if isinstance(exc, discord.LoginFailure) or (
            isinstance(exc, discord.HTTPException) and exc.status == 401
        ):
            return ConfigError(
                "DISCORD_TOKEN: Discord refused the token (401 Unauthorized): it is wrong or was reset"
            )
        if isinstance(exc, discord.ConnectionClosed):
            variable, cause = _CLOSE_CODES.get(
                exc.code, ("DISCORD_GATEWAY_URL", f"the gateway closed the connection (code {exc.code})")
            )
            return ConfigError(f"{variable}: {cause}")
        if isinstance(exc, discord.Forbidden) and self.settings.guilds():
            return ConfigError(
                f"DISCORD_GUILD_IDS: Discord refused to register the commands there ({exc.status}: {_cause(exc)}); "
                "is the bot in those servers, invited with the applications.commands scope?"
            )
        if isinstance(exc, discord.HTTPException):
            return ConfigError(
                f"DISCORD_API_BASE_URL: {api} answered {exc.status} at start-up: {_cause(exc)}"
            )
        if isinstance(exc, TimeoutError):
            if self._phase == "api":
                return ConfigError(
                    f"DISCORD_API_BASE_URL: no answer from {api} within {self._start_timeout():.0f} s"
                )
            why = f": {_cause(gateway_error)}" if gateway_error else ""
            return ConfigError(
                f"DISCORD_GATEWAY_URL: the gateway at {gateway} was not ready within {self._start_timeout():.0f} s{why}"
            )
        if self._phase == "gateway":
            return ConfigError(
                f"DISCORD_GATEWAY_URL: cannot connect to the gateway at {gateway}: {_cause(gateway_error or exc)}"
            )
        if isinstance(exc, (OSError, aiohttp.ClientError)):
            return ConfigError(f"DISCORD_API_BASE_URL: cannot reach {api}: {_cause(exc)}")
        return None

    async def _sync_commands(self) -> None:
        guild_ids = self.settings.guilds()
        if not guild_ids:
            await self.tree.sync()
            return
        for gid in guild_ids:
            guild = discord.Object(id=gid)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        task = self._task
        if task is None:
            return
        if self.shard_ids is not None and not task.done():
            # A shard that is still connecting retries for ever: discord.py does not stop it on close.
            task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.debug("discord gateway task ended with an error on shutdown", exc_info=task.exception())

    # --- bot.model.jobs.Surface ----------------------------------------------------------------------
    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        return await self.poster.deliver(job, images)

    async def tell(self, job: Job, text: str) -> None:
        await self.poster.tell(job, text)

    async def progress(self, job: Job, progress: Progress) -> None:
        await self.poster.progress(job, progress)

    async def withdraw(self, job: Job) -> int:
        return await self.poster.withdraw(job) + await self.reviews.withdraw(self.engine, job)

    async def followup_origin(self, parent: Job, thread_key: str | None) -> dict[str, Any] | None:
        return followup_origin(parent, thread_key)

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        await self.reviews.queue_for_review(job, images)

    async def tell_privately(self, job: Job, text: str) -> None:
        await self.reviews.tell_privately(job, text)
