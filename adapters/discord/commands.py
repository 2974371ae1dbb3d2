"""The application commands as Discord shows them. Handlers read the raw options (translate.py), so
the typed options here are the schema people see: names, choices and bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from bot.model.requests import GUIDANCE_MAX, N_MAX, PRESETS, SEED_MAX, STEPS_MAX

if TYPE_CHECKING:
    from adapters.discord.interactions import InteractionHandlers

ASPECTS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21"]
EDIT_MENU = "Edit with HiDream"


def register_commands(tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers) -> None:
    @tree.command(
        name="hidream",
        description="Make an image with HiDream-O1, or attach images to edit them (prompt:help for help)",
    )
    @app_commands.describe(
        prompt="What the image should show, or what to change in the attached image; help shows the help",
        image="An image to edit (add image2-image4 to combine several)",
        image2="A second image: two or more are combined (personalization)",
        image3="A third image to combine",
        image4="A fourth image to combine",
        aspect="Aspect ratio (width:height), sized to about one megapixel; or use size",
        size="A preset size (width x height), instead of an aspect ratio",
        model="Model tier: full (best quality) or dev (faster)",
        format="File format of the result",
        seed="Same seed and prompt give the same image; empty: a random seed",
        steps="Denoising steps: more is slower and finer (dev: at most 28)",
        guidance="How closely to follow the prompt (higher: more literal)",
        count=f"How many images (1-{N_MAX})",
        keep_aspect="When editing one image, keep its aspect ratio",
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

    @tree.command(
        name="hidream-help", description="How to make, edit and vary images, save subjects, set defaults"
    )
    async def help_command(interaction: discord.Interaction) -> None:
        await handlers.help(interaction)

    @tree.context_menu(name=EDIT_MENU)
    async def edit_menu(interaction: discord.Interaction, message: discord.Message) -> None:
        await handlers.context_menu(interaction)

    admin = app_commands.Group(
        name="hidream-admin",
        description="Daily image limits and grants for this server's members (needs Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @admin.command(name="usage", description="Show a member's usage today")
    @app_commands.describe(member="Whose usage to show")
    async def admin_usage(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "usage", member.id, None)

    @admin.command(name="user-limit", description="Set a member's daily limit (leave images empty to clear)")
    @app_commands.describe(
        member="Whose limit to set", images="Images per UTC day; empty: back to the default"
    )
    async def user_limit(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 0, 100_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "user-limit", member.id, images)

    @admin.command(name="server-limit", description="Set this server's daily limit (empty clears it)")
    @app_commands.describe(images="Images per UTC day for the whole server; empty: no server limit")
    async def server_limit(
        interaction: discord.Interaction, images: Range[int, 0, 1_000_000] | None = None
    ) -> None:
        await handlers.admin(interaction, "server-limit", None, images)

    @admin.command(name="grant", description="Give a member extra images for today")
    @app_commands.describe(member="Who gets the extra images", images="How many more, for today only")
    async def grant(
        interaction: discord.Interaction, member: discord.User, images: Range[int, 1, 100_000]
    ) -> None:
        await handlers.admin(interaction, "grant", member.id, images)

    @admin.command(name="reset", description="Reset a member's usage for today")
    @app_commands.describe(member="Whose usage today goes back to zero")
    async def reset(interaction: discord.Interaction, member: discord.User) -> None:
        await handlers.admin(interaction, "reset", member.id, None)

    tree.add_command(admin)
    tree.add_command(subject_commands(handlers))
    register_preference_commands(tree, handlers)


def subject_commands(handlers: InteractionHandlers) -> app_commands.Group:
    group = app_commands.Group(
        name="hidream-subject",
        description="Saved subjects: 1-4 images under a name; use with @name in a /hidream prompt",
    )

    @group.command(name="save", description="Save 1-4 attached images under a name")
    @app_commands.describe(
        name="Letters, digits, - or _ (at most 32), e.g. mascot; then write @mascot in a prompt",
        image="An image of the subject",
        image2="Another image of it (optional)",
        image3="Another image of it (optional)",
        image4="Another image of it (optional)",
    )
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
    @app_commands.describe(name="The subject's name, as in /hidream-subject list")
    async def show(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "show", name)

    @group.command(name="delete", description="Delete a subject (its creator or a server manager)")
    @app_commands.describe(name="The subject's name, as in /hidream-subject list")
    async def delete(interaction: discord.Interaction, name: Range[str, 1, 32]) -> None:
        await handlers.subjects.command(interaction, "delete", name)

    return group


def register_preference_commands(
    tree: app_commands.CommandTree[discord.Client], handlers: InteractionHandlers
) -> None:
    @tree.command(
        name="hidream-settings",
        description="Your defaults in this server (options you type still win); no options shows them",
    )
    @app_commands.describe(
        aspect="Default aspect ratio",
        size="Default preset size",
        model="Default model: full (best) or dev (faster)",
        format="Default file format",
        count="Default number of images",
        private="True: results only you can see (ephemeral, no thread)",
        reset="True: clear all your defaults here",
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
