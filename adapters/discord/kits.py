"""`/hidream-kit save|list|show|delete|bind`: a server's style kits. Anyone may list and show them;
saving, deleting and binding one (to the channel it is typed in) needs Manage Server, which the use
case checks. Every answer is ephemeral."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import Range

from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, interaction_actor
from bot import words
from bot.usecases import kits

_TEXT_MAX = 1000


class KitCommands:
    def __init__(self, ctx: HandlerContext) -> None:
        self.engine = ctx.engine

    @guarded(refuse)
    async def command(
        self, interaction: discord.Interaction, action: str, name: str, parts: str = ""
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        book, actor = self.engine.kits, interaction_actor(interaction)
        if action == "save":
            reply = await kits.save(book, actor, name, parts)
        elif action == "show":
            reply = await kits.show(book, actor, name)
        elif action == "delete":
            reply = await kits.delete(book, actor, name)
        elif action == "bind":
            reply = await kits.bind(book, actor, name)
        else:
            reply = await kits.listing(book, actor)
        await interaction.edit_original_response(content=reply.text)


def kit_group(handlers: KitCommands) -> app_commands.Group:
    group = app_commands.Group(name="hidream-kit", description=words.COMMANDS["hidream-kit"])

    @group.command(name="save", description=words.COMMANDS["hidream-kit save"])
    @app_commands.describe(**words.OPTIONS["hidream-kit save"])
    async def save(
        interaction: discord.Interaction,
        name: Range[str, 1, 32],
        prefix: Range[str, 1, _TEXT_MAX] | None = None,
        suffix: Range[str, 1, _TEXT_MAX] | None = None,
        negative: Range[str, 1, _TEXT_MAX] | None = None,
        subject: Range[str, 1, 32] | None = None,
        flags: Range[str, 1, 200] | None = None,
    ) -> None:
        # The same words a text surface takes after `kit save <name>`, so one parser checks them.
        typed = (("--prefix", prefix), ("--suffix", suffix), ("--no", negative), ("--subject", subject))
        parts = " ".join(f"{flag} {value}" for flag, value in typed if value)
        await handlers.command(interaction, "save", name, f"{parts} {flags or ''}")

    @group.command(name="list", description=words.COMMANDS["hidream-kit list"])
    async def listing(interaction: discord.Interaction) -> None:
        await handlers.command(interaction, "list", "")

    @group.command(name="show", description=words.COMMANDS["hidream-kit show"])
    @app_commands.describe(**words.OPTIONS["hidream-kit show"])
    async def show(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.command(interaction, "show", name)

    @group.command(name="delete", description=words.COMMANDS["hidream-kit delete"])
    @app_commands.describe(**words.OPTIONS["hidream-kit delete"])
    async def delete(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.command(interaction, "delete", name)

    @group.command(name="bind", description=words.COMMANDS["hidream-kit bind"])
    @app_commands.describe(**words.OPTIONS["hidream-kit bind"])
    async def bind(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.command(interaction, "bind", name)

    return group
