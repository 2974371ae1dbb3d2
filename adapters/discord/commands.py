"""The application commands as Discord shows them. Handlers read the raw options (translate.py), so
the typed options here are the schema people see: names, choices and bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from adapters.discord.kits import kit_group
from adapters.discord.translate import EXAMPLE_PROVIDER
from bot import words
from bot.model.requests import GUIDANCE_MAX, N_MAX, PRESETS, SEED_MAX, STEPS_MAX

if TYPE_CHECKING:
    from adapters.discord.interactions import InteractionHandlers

ASPECTS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21"]
EDIT_MENU = words.EDIT_MENU


def register_commands(tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers) -> None:
    @tree.command(name="hidream", description=words.COMMANDS["hidream"])
    @app_commands.describe(**words.make_options(N_MAX, EXAMPLE_PROVIDER))
    @app_commands.choices(
        aspect=[Choice(name=a, value=a) for a in ASPECTS],
        size=[Choice(name=f"{p} ({w}x{h})", value=p) for p, (w, h) in PRESETS.items()],
        model=[Choice(name="full", value="full"), Choice(name="dev", value="dev")],
        format=[Choice(name=f, value=f) for f in ("png", "jpeg", "webp")],
    )
    async def hidream(
        interaction: discord.Interaction,
        prompt: Range[str, 1, 5000],
        image: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        aspect: str | None = None,
        size: str | None = None,
        model: str | None = None,
        format: str | None = None,
        seed: Range[int, 0, SEED_MAX] | None = None,
        steps: Range[int, 1, STEPS_MAX] | None = None,
        guidance: Range[float, 0.0, GUIDANCE_MAX] | None = None,
        count: Range[int, 1, N_MAX] | None = None,
        keep_aspect: bool | None = None,
        subject: Range[str, 1, 200] | None = None,
        provider: Range[str, 1, 40] | None = None,
        upscale: bool | None = None,
        project: Range[str, 1, 32] | None = None,
        kit: Range[str, 1, 32] | None = None,
    ) -> None:
        await handlers.slash(interaction)

    @tree.command(name="hidream-usage", description=words.COMMANDS["hidream-usage"])
    async def usage(interaction: discord.Interaction) -> None:
        await handlers.usage(interaction, None)

    @tree.command(name="hidream-help", description=words.COMMANDS["hidream-help"])
    async def help_command(interaction: discord.Interaction) -> None:
        await handlers.help(interaction)

    @tree.context_menu(name=EDIT_MENU)
    async def edit_menu(interaction: discord.Interaction, message: discord.Message) -> None:
        await handlers.context_menu(interaction)

    admin = app_commands.Group(
        name="hidream-admin",
        description=words.COMMANDS["hidream-admin"],
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @admin.command(name="usage", description=words.COMMANDS["hidream-admin usage"])
    @app_commands.describe(**words.OPTIONS["hidream-admin usage"])
    async def admin_usage(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "usage", member.id, None)

    @admin.command(name="user-limit", description=words.COMMANDS["hidream-admin user-limit"])
    @app_commands.describe(**words.OPTIONS["hidream-admin user-limit"])
    async def user_limit(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 0, 100_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "user-limit", member.id, images)

    @admin.command(name="server-limit", description=words.COMMANDS["hidream-admin server-limit"])
    @app_commands.describe(**words.OPTIONS["hidream-admin server-limit"])
    async def server_limit(
        interaction: discord.Interaction, images: Range[int, 0, 1_000_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "server-limit", None, images)

    @admin.command(name="grant", description=words.COMMANDS["hidream-admin grant"])
    @app_commands.describe(**words.OPTIONS["hidream-admin grant"])
    async def grant(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 1, 100_000]
    ) -> None:
        await handlers.admin(interaction, "grant", member.id, images)

    @admin.command(name="reset", description=words.COMMANDS["hidream-admin reset"])
    @app_commands.describe(**words.OPTIONS["hidream-admin reset"])
    async def reset(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "reset", member.id, None)

    tree.add_command(admin)
    tree.add_command(subject_commands(handlers))
    tree.add_command(kit_group(handlers.kits))
    register_preference_commands(tree, handlers)


def subject_commands(handlers: InteractionHandlers) -> app_commands.Group:
    group = app_commands.Group(
        name="hidream-subject",
        description=words.COMMANDS["hidream-subject"],
    )

    @group.command(name="save", description=words.COMMANDS["hidream-subject save"])
    @app_commands.describe(**words.OPTIONS["hidream-subject save"])
    async def save(
        interaction: discord.Interaction,
        name: Range[str, 1, 32],
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
    ) -> None:
        await handlers.subjects.command(interaction, "save", name)

    @group.command(name="list", description=words.COMMANDS["hidream-subject list"])
    async def listing(interaction: discord.Interaction) -> None:
        await handlers.subjects.command(interaction, "list", "")

    @group.command(name="show", description=words.COMMANDS["hidream-subject show"])
    @app_commands.describe(**words.OPTIONS["hidream-subject show"])
    async def show(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "show", name)

    @group.command(name="delete", description=words.COMMANDS["hidream-subject delete"])
    @app_commands.describe(**words.OPTIONS["hidream-subject delete"])
    async def delete(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "delete", name)

    return group


def register_preference_commands(
    tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers
) -> None:
    @tree.command(name="hidream-settings", description=words.COMMANDS["hidream-settings"])
    @app_commands.describe(**words.OPTIONS["hidream-settings"])
    @app_commands.choices(
        aspect=[Choice(name=a, value=a) for a in ASPECTS],
        size=[Choice(name=f"{p} ({w}x{h})", value=p) for p, (w, h) in PRESETS.items()],
        model=[Choice(name="full", value="full"), Choice(name="dev", value="dev")],
        format=[Choice(name=f, value=f) for f in ("png", "jpeg", "webp")],
    )
    async def settings(
        interaction: discord.Interaction,
        aspect: str | None = None,
        size: str | None = None,
        model: str | None = None,
        format: str | None = None,
        count: Range[int, 1, N_MAX] | None = None,
        private: bool | None = None,
        reset: bool | None = None,
    ) -> None:
        options = {"aspect": aspect, "size": size, "model": model, "format": format, "count": count}
        await handlers.settings(interaction, {**options, "private": private, "reset": reset})

    @tree.command(name="hidream-policy", description=words.COMMANDS["hidream-policy"])
    @app_commands.describe(**words.OPTIONS["hidream-policy"])
    @app_commands.choices(
        action=[
            Choice(name=a, value=a)
            for a in (
                "show",
                "ban",
                "unban",
                "nsfw",
                "tier",
                "provider",
                "export-prompts",
                "project",
                "credentials-prompt",
                "review",
                "reset",
            )
        ]
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def policy(interaction: discord.Interaction, action: str, value: str | None = None) -> None:
        await handlers.policy(interaction, action, value)
