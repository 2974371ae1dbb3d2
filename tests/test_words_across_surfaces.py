"""Every surface says the same thing: each use case run through Discord (the real discord.py against
the fake), Slack (real bolt against the fake) and the console, and the words people read compared,
with each other and with bot/words.py. Only what is each person's own differs: who is mentioned, and
how long until the count resets."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from adapters.console import EXAMPLE_PROVIDER as CONSOLE_EXAMPLE
from adapters.console import HELP as CONSOLE_HELP
from adapters.console import ConsoleChat, plain
from adapters.discord.help import HELP_TEXT as DISCORD_HELP
from adapters.discord.translate import EXAMPLE_PROVIDER as DISCORD_EXAMPLE
from adapters.slack.translate import (
    ACTION_DELETE,
    ACTION_MORE,
    ACTION_PAN_RIGHT,
    ACTION_REGION,
    ACTION_REROLL,
)
from adapters.slack.translate import EXAMPLE_PROVIDER as SLACK_EXAMPLE
from adapters.slack.translate import HELP_TEXT as SLACK_HELP
from bot import words
from bot.app import Bot
from bot.model.jobs import Progress
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, png, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.fakes.slack import FakeSlack
from tests.support.console import console_in, say
from tests.support.harness import BotHarness
from tests.support.region import LINK_RE
from tests.support.slack_support import CHANNEL, job_id_of, running, summaries

BOB = "1500000000000000002"
NOBODYS_JOB = "0123456789abcdef0123456789abcdef"
EXPECTED = {
    "list, none": words.NO_SUBJECTS,
    "save": words.subject_saved("mascot", 1),
    "list": f"{words.SUBJECTS_HEADING}\n{words.subject_line('mascot', 1)}",
    "delete": words.subject_deleted("mascot"),
    "limit": words.limit_set("someone", 3),
    "grant": words.granted("someone", 2),
    "reset": words.reset("someone"),
    "limits, refused": words.LIMITS_REFUSED,
    "not found": words.NOT_FOUND,
    "policy, refused": words.POLICY_REFUSED,
    "delete, refused": words.DELETE_REFUSED,
    # The toolbox: a Pan that would make a canvas wider than 4:1 (of a 4:1 image, 2048x512 from the sandbox).
    "tool, refused": words.canvas_too_narrow(2731, 512),
    # Edit region: the requester's link to the editor (each bot's address and pass differ).
    "region": words.region_link("<link>", 30),
    # Style kits: saved and bound by an admin, listed, and another kit refused in the bound channel.
    "kit save": words.kit_saved("house", 1),
    "kit bind": words.kit_bound("house"),
    "kit list": f"{words.KITS_HEADING}\n{words.kit_line('house', 1, True)}",
    "kit bound, refused": words.kit_is_bound("house", "noir"),
}


def same_for_everyone(text: str) -> str:
    text = LINK_RE.sub("<link>", text)
    text = re.sub(r"<@[^>|]+(\|[^>]*)?>", "<@someone>", text)
    return re.sub(r"in \d+h \d+m", "in (time left)", text)


async def discord_words(tmp_path: Path) -> dict[str, str]:
    said: dict[str, str] = {}
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):

        async def ask(key: str, payload: dict[str, Any]) -> None:
            before = len(fake.ephemeral_texts())
            await fake.interact(payload)
            said[key] = (await fake.wait_for(lambda: fake.ephemeral_texts()[before:]))[0]

        def command(name: str, sub: str | None, options: dict[str, Any], **kw: Any) -> dict[str, Any]:
            payload = fake.slash_payload(options, name=name, **kw)
            if sub is not None:
                payload["data"]["options"] = [{"name": sub, "type": 1, "options": payload["data"]["options"]}]
            return payload

        def admin(
            sub: str, images: int | None, permissions: int = MEMBER_PERMS | MANAGE_GUILD
        ) -> dict[str, Any]:
            options = {"member": BOB, **({"images": images} if images is not None else {})}
            payload = command("hidream-admin", sub, options, permissions=permissions)
            payload["data"]["options"][0]["options"][0]["type"] = 6  # a user option
            payload["data"]["resolved"] = {"users": {BOB: fake.user(BOB, "bob")}}
            return payload

        await ask("list, none", command("hidream-subject", "list", {}))
        att = fake.host_file(fake.channel_id, "m.png", png(), "image/png")
        await ask("save", command("hidream-subject", "save", {"name": "mascot"}, attachments=[att]))
        await ask("list", command("hidream-subject", "list", {}))
        await ask("delete", command("hidream-subject", "delete", {"name": "mascot"}))
        await ask("usage", command("hidream-usage", None, {}))
        await ask("limit", admin("user-limit", 3))
        await ask("grant", admin("grant", 2))
        await ask("reset", admin("reset", None))
        await ask("limits, refused", admin("grant", 2, MEMBER_PERMS))
        await ask(
            "policy",
            command(
                "hidream-policy",
                None,
                {"action": "ban", "value": "red fox"},
                permissions=MEMBER_PERMS | MANAGE_GUILD,
            ),
        )
        await ask("policy, refused", command("hidream-policy", None, {"action": "show"}))
        made = await fake.interact(fake.slash_payload({"prompt": "a kite"}))
        result = await fake.wait_for(
            lambda: with_files(m := fake.messages.get(fake.originals.get(made["token"], ""), {})) and m
        )
        await bot.runner.wait_idle()
        job = await bot.engine.job_for_post("discord", result["id"])
        assert job is not None
        await ask("delete, refused", fake.click_payload(result, f"hidream:delete:{job.id}", user_id=BOB))
        await ask("region", fake.click_payload(result, f"hidream:region:{job.id}"))
        wide = await fake.interact(fake.slash_payload({"prompt": "a long train --ar 4:1"}))
        train = await fake.wait_for(
            lambda: with_files(m := fake.messages.get(fake.originals.get(wide["token"], ""), {})) and m
        )
        await bot.runner.wait_idle()
        train_job = await bot.engine.job_for_post("discord", train["id"])
        assert train_job is not None
        await ask("tool, refused", fake.click_payload(train, f"hidream:pan_right:{train_job.id}"))
        message = fake.message_payload(fake.channel_id, author=fake.bot_user(), content="")
        await ask("not found", fake.click_payload(message, f"hidream:reroll:{NOBODYS_JOB}"))
        manager = MEMBER_PERMS | MANAGE_GUILD
        await ask(
            "kit save",
            command("hidream-kit", "save", {"name": "house", "prefix": "soft"}, permissions=manager),
        )
        await ask("kit bind", command("hidream-kit", "bind", {"name": "house"}, permissions=manager))
        await ask("kit list", command("hidream-kit", "list", {}))
        await ask("kit bound, refused", fake.slash_payload({"prompt": "a kite", "kit": "noir"}))
    return said


async def slack_words(tmp_path: Path) -> dict[str, str]:
    said: dict[str, str] = {}
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        fake.admins.add("UADMIN001")

        async def command(key: str, text: str, user: str = "UALICE01") -> None:
            before = len(fake.responses)
            await run.send.command(fake.slash(text, user=user))
            said[key] = (await fake.wait_for(lambda: fake.responses[before:]))[0]["text"]

        async def private(key: str, send: Any) -> None:
            before = len(fake.ephemerals)
            await send
            said[key] = (await fake.wait_for(lambda: fake.ephemerals[before:]))[0]["text"]

        await command("list, none", "subject list")
        image = fake.add_file("m.png", png(), "image/png")
        await private(
            "save", run.send.event(fake.mention(CHANNEL, "UALICE01", "save subject mascot", files=[image]))
        )
        await command("list", "subject list")
        await command("delete", "subject delete mascot")
        await command("usage", "usage")
        await command("limit", "limit <@UBOB0001|bob> 3", user="UADMIN001")
        await command("grant", "grant <@UBOB0001|bob> 2", user="UADMIN001")
        await command("reset", "reset <@UBOB0001|bob>", user="UADMIN001")
        await command("limits, refused", "grant <@UBOB0001|bob> 2")
        await command("policy", "policy ban red fox", user="UADMIN001")
        await command("policy, refused", "policy")
        await run.send.command(fake.slash("a kite"))
        [summary] = await fake.wait_for(lambda: summaries(fake))
        await private(
            "delete, refused",
            run.send.interaction(fake.button(summary, CHANNEL, ACTION_DELETE, user="UBOB0001")),
        )
        region = f"{ACTION_REGION}:{job_id_of(summary)}"
        await private("region", run.send.interaction(fake.overflow(summary, CHANNEL, ACTION_MORE, region)))
        await run.send.command(fake.slash("a long train --ar 4:1"))
        train = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        await run.bot.runner.wait_idle()
        pan = f"{ACTION_PAN_RIGHT}:{job_id_of(train)}"
        await private("tool, refused", run.send.interaction(fake.overflow(train, CHANNEL, ACTION_MORE, pan)))
        result = {
            "ts": "1700000000.000100",
            "blocks": [{"elements": [{"action_id": ACTION_REROLL, "value": NOBODYS_JOB}]}],
        }
        await private("not found", run.send.interaction(fake.button(result, CHANNEL, ACTION_REROLL)))
        await command("kit save", "kit save house --prefix soft", user="UADMIN001")
        await command("kit bind", "kit bind house", user="UADMIN001")
        await command("kit list", "kit list")
        await command("kit bound, refused", "a kite --kit noir")
    return said


async def console_words(tmp_path: Path) -> dict[str, str]:
    err = io.StringIO()
    made: list[ConsoleChat] = []

    def factory(bot: Bot) -> ConsoleChat:
        made.append(ConsoleChat(bot.engine, tmp_path / "out", out=io.StringIO(), err=err, runner=bot.runner))
        return made[0]

    image = tmp_path / "m.png"
    image.write_bytes(png())
    said: dict[str, str] = {}
    async with BotHarness(tmp_path, surfaces=[factory]):
        for key, line in (
            ("list, none", "/subject list"),
            ("save", f"/subject save mascot {image}"),
            ("list", "/subject list"),
            ("delete", "/subject delete mascot"),
            ("usage", "/quota"),
            ("policy", "/policy ban red fox"),
            ("made", "/hidream a long train --ar 4:1"),
            ("tool, refused", "/pan right last"),
            ("region", "/region last"),
            ("kit save", "/kit save house --prefix soft"),
            ("kit bind", "/kit bind house"),
            ("kit list", "/kit list"),
            ("kit bound, refused", "/hidream a kite --kit noir"),
        ):
            start = len(err.getvalue())
            await made[0].handle(line)
            await made[0].runner.wait_idle()
            said[key] = err.getvalue()[start:].rstrip("\n").removeprefix("✗ ")
        del said["made"]
    return said


async def test_each_use_case_says_the_same_words_on_every_surface(tmp_path: Path) -> None:
    for surface in ("discord", "slack", "console"):
        (tmp_path / surface).mkdir()
    heard = {
        "discord": await discord_words(tmp_path / "discord"),
        "slack": await slack_words(tmp_path / "slack"),
        "console": await console_words(tmp_path / "console"),
    }
    for surface, said in heard.items():
        for key, text in said.items():
            shown = same_for_everyone(text)
            # The console shows the same sentence without Markdown's backticks.
            expected = EXPECTED.get(key)
            if expected is not None:
                expected = same_for_everyone(plain(expected) if surface == "console" else expected)
                assert shown == expected, (surface, key)
            others = {s: same_for_everyone(h[key]) for s, h in heard.items() if key in h}
            assert {plain(t) for t in others.values()} == {plain(shown)}, (key, others)
    assert set(heard["discord"]) == set(heard["slack"]) == set(EXPECTED) | {"usage", "policy"}
    assert set(heard["console"]) == {
        "list, none",
        "save",
        "list",
        "delete",
        "usage",
        "policy",
        "tool, refused",
        "region",
        "kit save",
        "kit bind",
        "kit list",
        "kit bound, refused",
    }
    assert "red fox" in heard["console"]["policy"]
    assert heard["console"]["usage"].startswith("You have 25 of 25 images left today")


def test_every_help_says_how_to_use_a_subject_in_the_same_words() -> None:
    assert words.subject_in_prompt("/hidream prompt:") in DISCORD_HELP
    assert words.subject_in_prompt("/hidream ") in SLACK_HELP
    assert words.subject_in_prompt("/hidream ") in CONSOLE_HELP
    for help_text in (DISCORD_HELP, SLACK_HELP, CONSOLE_HELP):
        assert "--subject mascot" in help_text and "@mascot surfing a wave" in help_text


async def test_every_surface_shows_its_help_from_words(tmp_path: Path) -> None:
    """The help each surface sends is the one bot/words.py holds for its kind of surface."""
    for surface in "dsc":
        (tmp_path / surface).mkdir()
    async with FakeDiscord() as fake, discord_bot(tmp_path / "d", fake):
        await fake.interact(fake.slash_payload({}, name="hidream-help"))
        (shown,) = await fake.wait_for(lambda: fake.ephemeral_texts())
        assert shown == words.help_with_options(DISCORD_EXAMPLE) == DISCORD_HELP
    async with FakeSlack() as slack, running(tmp_path / "s", slack, "http") as run:
        await run.send.command(slack.slash("help"))
        (reply,) = await slack.wait_for(lambda: slack.responses)
        assert reply["text"] == words.help_with_flags(SLACK_EXAMPLE) == SLACK_HELP
    made, err, factory = console_in(tmp_path / "c")
    async with BotHarness(tmp_path / "c", surfaces=[factory]):
        await made[0].handle("/help")
    # The console shows it without Markdown's backticks.
    assert err.getvalue() == plain(words.help_at_the_console(CONSOLE_EXAMPLE, sandbox=True)) + "\n"
    # On the sandbox, /help names its word for a failure; elsewhere it is the module's HELP.
    assert CONSOLE_HELP == words.help_at_the_console(CONSOLE_EXAMPLE)
    assert words.SANDBOX_FAIL not in CONSOLE_HELP and "sandbox-fail in a prompt" in err.getvalue()
    for example in (DISCORD_EXAMPLE, SLACK_EXAMPLE, CONSOLE_EXAMPLE):
        assert example == "fal"  # a provider the bot ships with, the same on each


PROGRESS = [
    Progress("queued", 3.7, 2),
    Progress("queued", 0.2, None),
    Progress("running", 12.0),
]


async def test_every_surface_shows_a_jobs_progress_in_the_same_words(tmp_path: Path) -> None:
    """The same progress, shown on each surface: the same line from bot/words.py, in each one's markup;
    and the first line of a request's message, before its job is admitted, is the same too."""
    for surface in "dsc":
        (tmp_path / surface).mkdir()
    expected = [words.progress(p.stage, p.elapsed, p.queue_position) for p in PROGRESS]
    assert expected == ["Queued, position 2 in the queue (3s)", "Queued (0s)", "Generating… (12s)"]
    async with FakeDiscord() as fake, discord_bot(tmp_path / "d", fake) as (bot, adapter):
        ask = fake.user_message_payload(f"<@{fake.bot_id}> a paper boat")
        await fake.post_user_message(ask)
        [reply] = await fake.wait_for(
            lambda: [
                m
                for m in fake.messages.values()
                if (m.get("message_reference") or {}).get("message_id") == ask["id"] and with_files(m)
            ]
        )
        await bot.runner.wait_idle()
        first = [c.body for c in fake.calls if c.method == "POST" and c.path.endswith("/messages")]
        assert first[0]["content"] == f"⏳ {words.CHECKING}"
        job = await bot.engine.job_for_post("discord", reply["id"])
        assert job is not None
        shown = []
        for p in PROGRESS:
            await adapter.progress(job, p)
            shown.append(fake.messages[job.origin["message_id"]]["content"])
        assert shown == [f"⏳ {line}" for line in expected]
    async with FakeSlack() as slack, running(tmp_path / "s", slack, "http") as run:
        await run.send.command(slack.slash("a paper boat"))
        [summary] = await slack.wait_for(lambda: summaries(slack))
        await run.bot.runner.wait_idle()
        status = slack.called("chat.postMessage")[0]
        assert status["blocks"][1]["elements"][0]["text"] == words.CHECKING
        slack_job = await run.bot.engine.job(job_id_of(summary))
        assert slack_job is not None
        shown = []
        for p in PROGRESS:
            await run.adapter.progress(slack_job, p)
            shown.append(slack.called("chat.update")[-1]["blocks"][1]["elements"][0]["text"])
        assert shown == expected
    made, err, factory = console_in(tmp_path / "c")
    async with BotHarness(tmp_path / "c", surfaces=[factory]) as bot:
        await say(made[0], "/hidream a paper boat")
        console_job = await bot.engine.job(made[0].last_job_id or "")
        assert console_job is not None
        start = len(err.getvalue())
        for p in PROGRESS:
            await made[0].progress(console_job, p)
        tag = f"[{console_job.id[:8]}] "
        assert err.getvalue()[start:].splitlines() == [tag + line for line in expected]
        await made[0].progress(console_job, Progress("delivering", 1.0))
        assert err.getvalue().splitlines()[-1] == tag + words.progress(
            "delivering", 1.0, None, delivering=words.SAVING
        )
