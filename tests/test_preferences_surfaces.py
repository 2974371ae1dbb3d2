"""Personal defaults and tenant policy end to end: real discord.py and bolt against their loopback
fakes, and the console, each through the engine and the sandbox provider."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from adapters.console import ConsoleChat
from adapters.discord.posting import Poster as DiscordPoster
from adapters.slack.posting import Poster as SlackPoster
from bot import words
from bot.jobs.preferences import BLOCKED
from bot.model.jobs import Job, OutputImage
from tests.fakes.discord import EPHEMERAL, FakeDiscord
from tests.fakes.discord_harness import discord_bot, png, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.fakes.slack import FakeSlack
from tests.support.discord import job_with
from tests.support.harness import BotHarness, sandbox_of
from tests.support.slack_support import CHANNEL, job_id_of, running, summaries

GUILD_B = "1300000000000000777"
ALICE = "1500000000000000001"


# --- Discord ------------------------------------------------------------------------------------


async def answered(fake: FakeDiscord, payload: dict[str, Any], expected: str) -> str:
    before = len(fake.ephemeral_texts())
    await fake.interact(payload)
    found: list[str] = await fake.wait_for(
        lambda: [t for t in fake.ephemeral_texts()[before:] if expected in t]
    )
    return found[0]


def policy_payload(
    fake: FakeDiscord, options: dict[str, Any], *, admin: bool, guild: str = ""
) -> dict[str, Any]:
    perms = MEMBER_PERMS | MANAGE_GUILD if admin else MEMBER_PERMS
    payload = fake.slash_payload(options, name="hidream-policy", permissions=perms)
    if guild:
        payload["guild_id"] = guild
    return payload


async def test_discord_defaults_apply_flags_win_and_private_results_are_ephemeral(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        names = {c["name"] for c in fake.commands["global"]}
        assert {"hidream-settings", "hidream-policy"} <= names
        settings = fake.slash_payload(
            {"aspect": "16:9", "count": 2, "format": "webp", "private": True}, name="hidream-settings"
        )
        shown = await answered(fake, settings, "Your defaults here")
        assert "--ar 16:9" in shown and "--n 2" in shown and "--private on" in shown

        payload = await fake.interact(fake.slash_payload({"prompt": "a red fox in snow"}))
        original = await fake.wait_for(lambda: fake.originals.get(payload["token"]))
        result = await fake.wait_for(lambda: with_files(fake.messages[original]) and fake.messages[original])
        await bot.runner.wait_idle()
        # Private: the deferred answer and so the result are ephemeral; no thread, nothing public.
        assert fake.acks[payload["id"]][0] == 5 and int(result["flags"]) & EPHEMERAL
        assert len(result["attachments"]) == 2 and original not in fake.threads
        assert not [m for m in fake.visible() if m.get("attachments")]

        typed = await fake.interact(
            fake.slash_payload({"prompt": "an owl at night", "count": 1, "size": "square"})
        )
        typed_id = await fake.wait_for(lambda: fake.originals.get(typed["token"]))
        await fake.wait_for(lambda: with_files(fake.messages[typed_id]))
        await bot.runner.wait_idle()
        made = {j.prompt: j for j in sandbox_of(bot).received()}
        fox, owl = made["a red fox in snow"], made["an owl at night"]
        assert (fox.num_images, fox.output_format) == (2, "webp")
        assert abs(fox.width / fox.height - 16 / 9) < 0.02
        assert (owl.num_images, owl.width, owl.height, owl.output_format) == (1, 512, 512, "webp")

        await answered(fake, fake.slash_payload({"reset": True}, name="hidream-settings"), "cleared")
        assert "no defaults" in await answered(
            fake, fake.slash_payload({}, name="hidream-settings"), "defaults"
        )


async def test_discord_policy_is_admins_only_per_server_and_blocks_before_any_spend(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        engine = bot.engine
        refused = await answered(
            fake,
            policy_payload(fake, {"action": "ban", "value": "red fox"}, admin=False),
            words.POLICY_REFUSED,
        )
        assert refused == words.POLICY_REFUSED
        assert (await engine.preferences.policy(f"discord:{fake.guild_id}")).banned == ()

        ban = policy_payload(fake, {"action": "ban", "value": "Red Fox"}, admin=True)
        assert "Blocked" in await answered(fake, ban, "Blocked")
        before = await engine.quota("discord", ALICE, fake.guild_id)
        blocked = await fake.interact(fake.slash_payload({"prompt": "a red fox in snow", "count": 4}))
        text = await answered_later(fake, BLOCKED)
        assert "red fox" not in text.lower()
        assert not [m for m in fake.visible() if "red fox" in str(m.get("content", "")).lower()]
        after = await engine.quota("discord", ALICE, fake.guild_id)
        assert (after.used, after.remaining) == (before.used, before.remaining)
        assert sandbox_of(bot).submits == 0 and blocked["id"] in fake.acks

        # Server B's policy is its own: the same prompt is made there.
        assert (await engine.preferences.policy(f"discord:{GUILD_B}")).banned == ()
        other = fake.slash_payload({"prompt": "a red fox in snow"})
        other["guild_id"] = GUILD_B
        await fake.interact(other)
        await fake.wait_for(lambda: sandbox_of(bot).submits == 1)
        await bot.runner.wait_idle()

        shown = await answered(fake, policy_payload(fake, {"action": "show"}, admin=True), "Policy here")
        assert "“red fox”" in shown
        await answered(
            fake, policy_payload(fake, {"action": "nsfw", "value": "allow"}, admin=True), "spoiler"
        )
        assert await engine.nsfw_policy("discord", fake.guild_id) == "allow"
        assert await engine.nsfw_policy("discord", GUILD_B) is None


async def answered_later(fake: FakeDiscord, expected: str) -> str:
    found: list[str] = await fake.wait_for(lambda: [t for t in fake.ephemeral_texts() if expected in t])
    return found[0]


async def test_discord_server_nsfw_choice_overrides_the_operator_within_discords_rules() -> None:
    async def server_says(job: Job) -> str | None:
        return {"g-block": "block", "g-allow": "allow"}.get(job.workspace_id)

    poster = DiscordPoster(
        cast(Any, None), nsfw_policy="spoiler", memory=cast(Any, None), tenant_nsfw=server_says
    )
    flagged = OutputImage("m1", png(), "image/png", 64, 48, nsfw=True)

    def in_server(guild: str) -> Job:
        return replace(job_with({"nsfw": False}), workspace_id=guild)

    assert await poster._nsfw_for(in_server("g-block")) == "block"
    assert await poster._nsfw_for(in_server("g-none")) == "spoiler"
    # "allow" outside an age-restricted channel is still a spoiler: Discord allows no more.
    assert await poster._nsfw_for(in_server("g-allow")) == "spoiler"
    slack = SlackPoster(cast(Any, None), cast(Any, None), tenant_nsfw=server_says)
    clean = OutputImage("m2", png(), "image/png", 64, 48)
    assert await slack._screened(in_server("g-block"), [flagged, clean]) == [clean]
    assert await slack._screened(in_server("g-allow"), [flagged, clean]) == [flagged, clean]


# --- Slack --------------------------------------------------------------------------------------


async def test_slack_defaults_flags_and_private_results_in_a_dm(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        await run.send.command(fake.slash("settings --ar 16:9 --n 2 --model dev --private on"))
        await fake.wait_for(lambda: [r for r in fake.responses if "Your defaults here" in r["text"]])
        await run.send.command(fake.slash("a lighthouse at dusk"))
        dm = "DUALICE01"
        found = await fake.wait_for(lambda: summaries(fake, dm))
        await run.bot.runner.wait_idle()
        job = await run.bot.engine.job(job_id_of(found[0]))
        assert job is not None and job.origin["channel"] == dm
        assert not summaries(fake, CHANNEL) and not fake.messages.get(CHANNEL)
        notices = [e for e in fake.ephemerals if e["channel"] == CHANNEL and e["user"] == "UALICE01"]
        assert notices and "direct messages" in notices[0]["text"]
        files = [f for m in fake.messages[dm] for f in m.get("files") or []]
        assert len(files) == 2

        await run.send.command(fake.slash("settings --private off"))
        await fake.wait_for(lambda: [r for r in fake.responses if "--private off" in r["text"]])
        await run.send.command(fake.slash("a lighthouse at noon --n 1 --model full --ar 1:1"))
        await fake.wait_for(lambda: summaries(fake, CHANNEL))
        await run.bot.runner.wait_idle()
        made = {j.prompt: j for j in sandbox_of(run.bot).received()}
        dusk, noon = made["a lighthouse at dusk"], made["a lighthouse at noon"]
        assert (dusk.num_images, dusk.model) == (2, "dev") and abs(dusk.width / dusk.height - 16 / 9) < 0.02
        assert (noon.num_images, noon.model, noon.width == noon.height) == (1, "full", True)
        await run.send.command(fake.slash("settings reset"))
        await fake.wait_for(lambda: [r for r in fake.responses if "cleared" in r["text"]])


async def test_slack_policy_admins_only_own_workspace_and_blocked_prompts_spend_nothing(
    tmp_path: Path,
) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        engine = run.bot.engine
        await run.send.command(fake.slash("policy ban red fox", user="UBOB0001"))
        await fake.wait_for(lambda: [r for r in fake.responses if r["text"] == words.POLICY_REFUSED])
        fake.admins.add("UADMIN001")
        await run.send.command(fake.slash("policy ban red fox", user="UADMIN001"))
        await fake.wait_for(lambda: [r for r in fake.responses if "Blocked" in r["text"]])
        await run.send.command(fake.slash("policy nsfw spoiler", user="UADMIN001"))
        await fake.wait_for(lambda: [r for r in fake.responses if r["text"] == words.NO_SPOILERS])

        before = await engine.quota("slack", "UBOB0001", fake.slash("x")["team_id"])
        await run.send.command(fake.slash("a RED FOX in snow --n 3", user="UBOB0001"))
        refusal = await fake.wait_for(lambda: [r for r in fake.responses if BLOCKED in r["text"]])
        assert "red fox" not in refusal[0]["text"].lower()
        after = await engine.quota("slack", "UBOB0001", fake.slash("x")["team_id"])
        assert (after.used, after.remaining) == (before.used, before.remaining)
        assert sandbox_of(run.bot).submits == 0 and not summaries(fake)
        # The prompt was never shown in the channel, not even in a status message removed later.
        posted = [p for name, p in fake.calls if name == "chat.postMessage"]
        assert not [p for p in posted if "red fox" in str(p.get("text", "")).lower()]
        # Another workspace is not bound by this one's list.
        await run.send.command(dict(fake.slash("a red fox in snow", user="UBOB0001"), team_id="T_OTHER"))
        await fake.wait_for(lambda: summaries(fake))
        await run.bot.runner.wait_idle()
        assert sandbox_of(run.bot).submits == 1


# --- console ------------------------------------------------------------------------------------


async def test_console_defaults_from_settings_flags_win_and_policy(tmp_path: Path) -> None:
    err = io.StringIO()
    out = io.StringIO()

    def console(bot: Any) -> ConsoleChat:
        return ConsoleChat(
            bot.engine, tmp_path / "out", runner=bot.runner, out=out, err=err, defaults="--ar 16:9 --n 2"
        )

    async with BotHarness(tmp_path, surfaces=[console]) as bot:
        chat = next(s for s in bot.surfaces if isinstance(s, ConsoleChat))
        await chat.handle("/hidream a castle on a hill")
        await chat.handle("/hidream a castle at night --n 1 --size square")
        await chat.handle("/policy ban castle at dawn")
        await chat.handle("/hidream a castle at dawn")
        await bot.runner.wait_idle()
        made = {j.prompt: j for j in sandbox_of(bot).received()}
        hill, night = made["a castle on a hill"], made["a castle at night"]
        assert hill.num_images == 2 and abs(hill.width / hill.height - 16 / 9) < 0.02
        assert (night.num_images, night.width, night.height) == (1, 512, 512)
        # The console's own words: its place is this console, not a server's admins.
        assert "a castle at dawn" not in made and words.at_the_console(BLOCKED) in err.getvalue()
        assert "this console's policy blocks" in err.getvalue() and "admins" not in err.getvalue()
        assert len(out.getvalue().split()) == 3
