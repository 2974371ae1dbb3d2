"""The application commands as Discord shows them. Handlers read the raw options (translate.py), so
the typed options here are the schema people see: names, choices and bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from bot.requests import GUIDANCE_MAX, N_MAX, PRESETS, SEED_MAX, STEPS_MAX

if TYPE_CHECKING:
    from adapters.discord.interactions import InteractionHandlers

ASPECTS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21"]
EDIT_MENU = "Edit with HiDream"


def register_commands(tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers) -> None:
    @tree.command(name="hidream", description="Make an image with HiDream-O1; attach images to edit them")
    @app_commands.describe(
        prompt="What the image should show (or, with an image attached, what to change)",
        image="An image to edit",
        image2="A second image: two or more are combined (personalization)",
        image3="A third image",
        image4="A fourth image",
        aspect="Aspect ratio, about one megapixel",
        size="A preset size",
        model="full (best) or dev (faster)",
        format="File format of the result",
        seed="Same seed and prompt give the same image",
        steps="Denoising steps (dev: at most 28)",
        guidance="How closely to follow the prompt",
        count="How many images",
        keep_aspect="Keep the edited image's aspect ratio",
        subject="Saved subjects to use as references, comma-separated (or write @name in the prompt)",
        provider="A provider this bot is configured with, by name (e.g. fal); default: the first that can",
    )
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
    ) -> None:
        await handlers.slash(interaction)

    @tree.command(name="hidream-usage", description="How many images you have left today")
    async def usage(interaction: discord.Interaction) -> None:
        await handlers.usage(interaction, None)

    @tree.context_menu(name=EDIT_MENU)
    async def edit_menu(interaction: discord.Interaction, message: discord.Message) -> None:
        await handlers.context_menu(interaction)

    admin = app_commands.Group(
        name="hidream-admin",
        description="Image limits for this server (needs Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @admin.command(name="usage", description="Show a member's usage today")
    async def admin_usage(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "usage", member.id, None)

    @admin.command(name="user-limit", description="Set a member's daily limit (leave images empty to clear)")
    async def user_limit(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 0, 100_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "user-limit", member.id, images)

    @admin.command(name="server-limit", description="Set this server's daily limit (empty clears it)")
    async def server_limit(
        interaction: discord.Interaction, images: Range[int, 0, 1_000_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "server-limit", None, images)

    @admin.command(name="grant", description="Give a member extra images for today")
    async def grant(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 1, 100_000]
    ) -> None:
        await handlers.admin(interaction, "grant", member.id, images)

    @admin.command(name="reset", description="Reset a member's usage for today")
    async def reset(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "reset", member.id, None)

    tree.add_command(admin)
    tree.add_command(subject_commands(handlers))
    register_preference_commands(tree, handlers)


def subject_commands(handlers: InteractionHandlers) -> app_commands.Group:
    group = app_commands.Group(
        name="hidream-subject",
        description="Saved subjects: 1-4 images kept under a name; use them with @name in a prompt",
    )

    @group.command(name="save", description="Save 1-4 attached images under a name")
    @app_commands.describe(name="Letters, digits, - or _ (at most 32)", image="An image of the subject")
    async def save(
        interaction: discord.Interaction,
        name: Range[str, 1, 32],
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
    ) -> None:
        await handlers.subjects.command(interaction, "save", name)

    @group.command(name="list", description="The subjects saved here")
    async def listing(interaction: discord.Interaction) -> None:
        await handlers.subjects.command(interaction, "list", "")

    @group.command(name="show", description="Post a subject's images")
    async def show(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "show", name)

    @group.command(name="delete", description="Delete a subject (its creator or a server manager)")
    async def delete(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "delete", name)

    return group


def register_preference_commands(
    tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers
) -> None:
    @tree.command(name="hidream-settings", description="Your defaults in this server; no options shows them")
    @app_commands.describe(
        aspect="Default aspect ratio",
        size="Default preset size",
        model="Default model: full (best) or dev (faster)",
        format="Default file format",
        count="Default number of images",
        private="Results only you can see",
        reset="Clear all your defaults here",
    )
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

    @tree.command(name="hidream-policy", description="This server's image policy (needs Manage Server)")
    @app_commands.describe(
        action="show, ban/unban a phrase, NSFW handling, default tier or provider, reset",
        value="The phrase, or spoiler|block|allow|default, full|dev|default, a provider name",
    )
    @app_commands.choices(
        action=[
            Choice(name=a, value=a) for a in ("show", "ban", "unban", "nsfw", "tier", "provider", "reset")
        ]
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    async def policy(interaction: discord.Interaction, action: str, value: str | None = None) -> None:
        await handlers.policy(interaction, action, value)
