"""The Discord surface: a discord.py client wired to the engine, started and stopped as a context manager."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands

from adapters.discord.commands import register_commands
from adapters.discord.context import HandlerContext
from adapters.discord.interactions import InteractionHandlers
from adapters.discord.messages import MessageHandler
from adapters.discord.posting import Poster
from adapters.discord.settings import DiscordSettings
from adapters.discord.translate import SURFACE
from bot.errors import ConfigError
from bot.jobs import Job, OutputImage, Post, Progress

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0


class _Client(discord.Client):
    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        super().__init__(**options)
        self.adapter = adapter

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.messages.handle(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Application commands go through the command tree; buttons and modals come here.
        if interaction.type in (discord.InteractionType.component, discord.InteractionType.modal_submit):
            await self.adapter.handlers.component(interaction)


class DiscordAdapter:
    """Implements bot.jobs.Surface for Discord. `async with adapter:` connects and syncs commands."""

    name = SURFACE

    def __init__(
        self,
        engine: Engine,
        settings: DiscordSettings,
        *,
        clock: Callable[[], float] = time.time,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        if settings.token is None:
            raise ConfigError("DISCORD_TOKEN is not set")
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._nsfw_policy = settings.nsfw_policy
        self._max_image_bytes = engine.settings.max_image_bytes
        self._guild_ready_timeout = guild_ready_timeout
        self._task: asyncio.Task[None] | None = None
        self.message_content = True
        self._build(message_content=True)

    def _build(self, *, message_content: bool) -> None:
        intents = discord.Intents.default()
        # Privileged: without it the bot reads only messages that mention it, which still works.
        intents.message_content = message_content
        self.message_content = message_content
        self.client = _Client(self, intents=intents, guild_ready_timeout=self._guild_ready_timeout)
        self.tree = app_commands.CommandTree(self.client)
        self.poster = Poster(
            self.client, nsfw_policy=self._nsfw_policy, memory=self.engine.store, clock=self.clock
        )
        context = HandlerContext(
            engine=self.engine,
            clock=self.clock,
            bot_id=lambda: self.bot_id,
            fetch_message=self._fetch_message,
            max_image_bytes=self._max_image_bytes,
        )
        self.handlers = InteractionHandlers(context)
        self.messages = MessageHandler(context)
        register_commands(self.tree, self.handlers)

    @property
    def bot_id(self) -> str:
        return str(self.client.user.id) if self.client.user else ""

    async def _fetch_message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        return dict(await self.client.http.get_message(channel_id, message_id))

    async def __aenter__(self) -> DiscordAdapter:
        # discord.py keeps both addresses on its classes; they are redirected for a proxy or a test server.
        discord.http.Route.BASE = self.settings.api_base_url.rstrip("/")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.gateway_url)
        try:
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
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        assert self.settings.token is not None
        await self.client.login(self.settings.token.get_secret_value())
        await self._sync_commands()
        self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {self._task, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._task in done:
                self._task.result()  # raises why the gateway closed
            raise ConfigError("Discord: the gateway did not become ready within 60 seconds")
        log.info(
            "discord: connected as %s (message content intent: %s)", self.client.user, self.message_content
        )

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
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.debug("discord gateway task ended with an error on shutdown", exc_info=True)

    # --- bot.jobs.Surface ----------------------------------------------------------------------
    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        return await self.poster.deliver(job, images)

    async def tell(self, job: Job, text: str) -> None:
        await self.poster.tell(job, text)

    async def progress(self, job: Job, progress: Progress) -> None:
        await self.poster.progress(job, progress)
