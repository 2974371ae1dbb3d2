"""The help every surface gives (`/hidream-help` and `/hidream prompt:help` on Discord, `/hidream help`
on Slack, `/help` on the console): private, spends nothing, and names each feature with an example.
Also every Discord command and option describes itself within Discord's 100 characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.discord.help import asks_for_help
from bot.app import Bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord
from tests.fakes.discord_harness import discord_bot
from tests.fakes.slack import FakeSlack
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of, sqlite_of
from tests.support.slack_support import running

# Each feature of the help, and what its line must show on each surface (an example to copy).
DISCORD_FEATURES = {
    "flags": "aspect:16:9",
    "edit by attachment": "image",
    "edit by reply": "reply to an image",
    "saved subjects": "/hidream-subject save name:mascot",
    "subject by name": "@mascot",
    "undo": "undo",
    "history": "history",
    "vary": "Vary",
    "defaults": "/hidream-settings aspect:16:9",
    "policy": "/hidream-policy action:ban",
    "limits": "/hidream-admin",
    "usage": "/hidream-usage",
    "provider": "provider:fal",
    "projects": "--project <tag>",
    "a channel's project": "`project` (a tag, or default)",
    "prompts in the audit export": "`export-prompts` (on, off)",
    "style kits": "/hidream-kit save",
    "remix": "Remix",
    "region edits": "Edit region",
    "approvals": "`review` (`@role to #queue`)",
}
SLACK_FEATURES = {
    "flags": "--ar 16:9",
    "edit": "@HiDream make it blue",
    "saved subjects": "save subject mascot",
    "subject by name": "/hidream @mascot surfing a wave",
    "subject by flag": "--subject mascot",
    "undo": "@HiDream undo",
    "history": "@HiDream history",
    "vary": "*Vary*",
    "defaults": "/hidream settings --ar 16:9",
    "policy": "/hidream policy ban",
    "limits": "/hidream limit @user",
    "usage": "/hidream usage",
    "provider": "--provider fal",
    "projects": "--project <tag>",
    "a channel's project": "/hidream policy project <tag>|default",
    "prompts in the audit export": "/hidream policy export-prompts off",
    "style kits": "/hidream kit save house",
}
CONSOLE_FEATURES = {
    "flags": "--ar 16:9",
    "edit": "/edit last make it blue",
    "saved subjects": "/subject save mascot",
    "subject by name": "/hidream @mascot surfing a wave",
    "subject by flag": "--subject mascot",
    "undo": "/undo",
    "history": "/history",
    "vary": "/vary",
    "defaults": "HIDREAM_CONSOLE_DEFAULTS",
    "policy": "/policy ban",
    "usage": "/quota",
    "provider": "--provider fal",
    "projects": "--project <tag>",
    "a channel's project": "project <tag>|default",
    "prompts in the audit export": "export-prompts on|off",
    "style kits": "/kit save <name>",
}


def missing(text: str, features: dict[str, str]) -> list[str]:
    return [name for name, example in features.items() if example not in text]


async def job_count(bot: Bot) -> int:
    async with sqlite_of(bot.store).transaction() as db:
        cur = await db.execute("SELECT COUNT(*) FROM jobs")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def described(commands: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, description) of every command, sub-command and option, depth first."""
    found: list[tuple[str, str]] = []
    stack = list(commands)
    while stack:
        item = stack.pop()
        if item.get("type") in (2, 3) and "options" not in item:
            continue  # a context menu: Discord shows only its name
        found.append((str(item["name"]), str(item.get("description", ""))))
        stack.extend(item.get("options") or [])
    return found


async def test_discord_help_command_answers_privately_naming_every_feature(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        assert "hidream-help" in {c["name"] for c in fake.commands["global"]}
        payload = await fake.interact(fake.slash_payload({}, name="hidream-help"))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert fake.acks[payload["id"]][0] == 4  # answered at once, not deferred
        assert len(texts) == 1 and len(texts[0]) <= 2000
        assert missing(texts[0], DISCORD_FEATURES) == []
        assert all(int(m["flags"]) & EPHEMERAL for m in fake.messages.values())
        assert sandbox_of(bot).submits == 0 and await job_count(bot) == 0


async def test_discord_prompt_help_answers_the_help_and_makes_no_job(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        payload = await fake.interact(fake.slash_payload({"prompt": "  Help "}))
        texts = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert fake.acks[payload["id"]][0] == 4
        assert missing(texts[0], DISCORD_FEATURES) == []
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == 0 and await job_count(bot) == 0
        status = await bot.engine.quota("discord", payload["member"]["user"]["id"], fake.guild_id)
        assert status.used == 0
        assert all(int(m["flags"]) & EPHEMERAL for m in fake.messages.values())


def test_only_the_word_help_is_the_help() -> None:
    def payload(prompt: str) -> dict[str, Any]:
        return {"data": {"options": [{"name": "prompt", "type": 3, "value": prompt}]}}

    assert asks_for_help(payload("help")) and asks_for_help(payload("HELP?"))
    assert not asks_for_help(payload("help me paint a fox"))
    assert not asks_for_help(payload("the word help in neon"))
    assert not asks_for_help({"data": {"options": []}})


async def test_every_discord_command_and_option_describes_itself(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake):
        found = described(fake.commands["global"])
        names = {name for name, _ in found}
        assert {"hidream", "hidream-help", "hidream-subject", "hidream-settings", "hidream-policy"} <= names
        # discord.py writes "…" where a description was left out; Discord refuses more than 100.
        vague = [name for name, text in found if text.strip() in ("", "…")]
        too_long = [name for name, text in found if len(text) > 100]
        assert vague == [] and too_long == []


async def test_slack_help_names_every_feature(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "http") as run:
        assert await run.send.command(fake.slash("help")) == 200
        (reply,) = await fake.wait_for(lambda: fake.responses)
        assert missing(reply["text"], SLACK_FEATURES) == []
        assert reply.get("response_type", "ephemeral") == "ephemeral"
        assert await run.job_count() == 0 and sandbox_of(run.bot).submits == 0


async def test_console_help_names_every_feature(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        assert await console.run(bot, "/help") == []
        assert missing(console.err.getvalue(), CONSOLE_FEATURES) == []
        assert sandbox_of(bot).submits == 0 and await job_count(bot) == 0
