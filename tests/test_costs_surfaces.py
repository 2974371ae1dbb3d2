"""Cost by channel and project through the surfaces, against their loopback fakes and a priced
sandbox: every job records the channel it was asked in (Discord, Slack); `--project` tags it, or the
channel's default project that an admin set with `policy project`; a project whose budget is spent
is refused plainly, with nothing sent to the provider and nothing charged; `policy export-prompts`
is the admins' own; and the console's jobs show in `hidream-bot report` by project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot import words
from bot.app import Bot
from bot.model.errors import BadInput
from bot.model.jobs import Job
from storage.costs import costs
from storage.quota import utc_day
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.fakes.slack import FakeSlack
from tests.support.console import Console
from tests.support.harness import BotHarness
from tests.support.priced import COST, priced
from tests.support.processes import Cli
from tests.support.slack_support import CHANNEL, running, summaries


async def jobs_of(bot: Bot) -> list[Job]:
    """Every job the bot stored, oldest first."""
    rows = await bot.store.database.fetch("SELECT id FROM jobs ORDER BY created_at")
    found = [await bot.store.job(str(r[0])) for r in rows]
    return [j for j in found if j is not None]


async def by_project(bot: Bot, tenant: str) -> list[tuple[str, int, float]]:
    today = utc_day(bot.store.now())
    found = await costs(bot.store, "project", since=today, until=today, tenant=tenant)
    return [(r.key, r.images, round(r.usd, 4)) for r in found]


# --- Discord ------------------------------------------------------------------------------------


async def test_discord_records_the_channel_and_project_and_refuses_a_spent_project(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        service = priced(bot)
        tenant = f"discord:{fake.guild_id}"

        async def told(payload: dict[str, Any], expected: str) -> str:
            before = len(fake.ephemeral_texts())
            await fake.interact(payload)
            found: list[str] = await fake.wait_for(
                lambda: [t for t in fake.ephemeral_texts()[before:] if expected in t]
            )
            return found[0]

        def policy(value: str, *, admin: bool = True) -> dict[str, Any]:
            perms = MEMBER_PERMS | MANAGE_GUILD if admin else MEMBER_PERMS
            options = {"action": "project", "value": value}
            return fake.slash_payload(options, name="hidream-policy", permissions=perms)

        async def make(prompt: str, **options: str) -> None:
            payload = await fake.interact(fake.slash_payload({"prompt": prompt, **options}))
            original = await fake.wait_for(lambda: fake.originals.get(payload["token"]))
            await fake.wait_for(lambda: with_files(fake.messages[original]))
            await bot.runner.wait_idle()

        # A member may not set the channel's project; an admin may, and a bad tag is refused plainly.
        assert await told(policy("launch", admin=False), words.POLICY_REFUSED) == words.POLICY_REFUSED
        assert "is not a project tag" in await told(policy("no spaces allowed"), "project tag")
        assert await told(policy("Launch"), "now count under") == words.channel_project_set("launch")

        await make("a red fox in snow")
        await make("a grey owl --project Owls")
        fox, owl = await jobs_of(bot)
        assert (fox.channel, fox.project) == (fake.channel_id, "launch")
        assert (owl.channel, owl.project) == (fake.channel_id, "owls")
        assert await by_project(bot, tenant) == [("launch", 1, COST), ("owls", 1, COST)]

        # The project's budget holds one more image's worth: the second of two is refused.
        await bot.store.set_project_budget(tenant, "launch", 2.5 * COST)
        await make("a red fox at dawn")
        submits, spent = service.submits, (await bot.store.quota("", tenant)).month_spent_usd
        refusal = await told(fake.slash_payload({"prompt": "a red fox at dusk"}), "monthly budget")
        assert "`launch` has used $0.08 of its $0.10 monthly budget" in refusal
        assert "nothing was spent" in refusal
        await bot.runner.wait_idle()
        assert service.submits == submits  # nothing sent to the provider
        assert (await bot.store.quota("", tenant)).month_spent_usd == spent  # nothing charged
        assert len(await jobs_of(bot)) == 3
        # Another project still has room, and the admin can clear the channel's default.
        # The typed option names the project as `--project` in the prompt does.
        await make("a red fox at dusk", project="Owls")
        assert (await jobs_of(bot))[-1].project == "owls"
        assert "project" in {
            o["name"] for c in fake.commands["global"] if c["name"] == "hidream" for o in c["options"]
        }
        assert "no default project" in await told(policy("default"), "no default project")
        await make("a plain fox")
        assert (await jobs_of(bot))[-1].project == ""
        assert await by_project(bot, tenant) == [
            ("launch", 2, 2 * COST),
            ("owls", 2, 2 * COST),
            ("", 1, COST),
        ]


# --- Slack --------------------------------------------------------------------------------------


async def test_slack_records_the_channel_and_project_and_refuses_a_spent_project(tmp_path: Path) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "socket") as run:
        bot = run.bot
        service = priced(bot)
        team = fake.slash("x")["team_id"]
        tenant = f"slack:{team}"

        async def answered(form: dict[str, str], expected: str) -> str:
            before = len(fake.responses)
            await run.send.command(form)
            found: list[dict[str, Any]] = await fake.wait_for(
                lambda: [r for r in fake.responses[before:] if expected in r["text"]]
            )
            return str(found[0]["text"])

        async def make(text: str) -> None:
            before = len(summaries(fake))
            await run.send.command(fake.slash(text))
            await fake.wait_for(lambda: len(summaries(fake)) > before)
            await bot.runner.wait_idle()

        refused = await answered(fake.slash("policy project launch", user="UBOB0001"), words.POLICY_REFUSED)
        assert refused == words.POLICY_REFUSED
        fake.admins.add("UADMIN001")
        set_ = await answered(fake.slash("policy project launch", user="UADMIN001"), "now count under")
        assert set_ == words.channel_project_set("launch")
        withheld = await answered(fake.slash("policy export-prompts off", user="UADMIN001"), "withheld")
        assert withheld == words.export_prompts_set(True)
        assert (await bot.engine.preferences.policy(tenant)).withhold_prompts
        shown = await answered(fake.slash("policy", user="UADMIN001"), "Policy here")
        assert "prompts in the audit export: withheld" in shown and "default project: `launch`" in shown

        await make("a lighthouse at dusk")
        await make("a lighthouse at noon --project harbour")
        dusk, noon = await jobs_of(bot)
        assert (dusk.channel, dusk.project) == (CHANNEL, "launch")
        assert (noon.channel, noon.project) == (CHANNEL, "harbour")

        await bot.store.set_project_budget(tenant, "harbour", 1.5 * COST)
        submits, spent = service.submits, (await bot.store.quota("", tenant)).month_spent_usd
        refusal = await answered(fake.slash("a lighthouse at night --project harbour"), "monthly budget")
        assert "`harbour` has used $0.04 of its $0.06 monthly budget" in refusal
        await bot.runner.wait_idle()
        assert service.submits == submits and len(await jobs_of(bot)) == 2
        assert (await bot.store.quota("", tenant)).month_spent_usd == spent
        assert await by_project(bot, tenant) == [("harbour", 1, COST), ("launch", 1, COST)]


# --- the console and the operator's commands ------------------------------------------------------


async def test_console_policy_project_and_a_bad_tag(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, "/policy project poster")
        await console.run(bot, "/hidream a poster of a fox")
        await console.run(bot, "/hidream a poster of an owl --project x/y")
        [job] = await jobs_of(bot)
        assert (job.channel, job.project) == ("", "poster")
        said = console.err.getvalue()
        assert "Requests in this channel now count under the project poster" in said
        assert "--project x/y is not a project tag" in said


def test_report_by_project_and_a_projects_budget_from_the_command_line(cli: Cli) -> None:
    stdin = "/hidream a red fox --project Launch --n 2\n/hidream a grey owl\n"
    made = cli("run", stdin=stdin)
    assert made.returncode == 0, made.stderr
    shown = cli("report", "--by", "project")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.split()[:3] == ["console:local", "launch", "2"] for line in lines), shown.stdout
    assert any(line.split()[:3] == ["console:local", "(none)", "1"] for line in lines), shown.stdout
    assert lines[-1].startswith("total: 3 image(s)")
    as_json = cli("report", "--by", "person", "--json")
    [row] = json.loads(as_json.stdout)["rows"]
    assert (row["tenant"], row["key"], row["images"], row["jobs"]) == ("console:local", "console:local", 3, 2)

    budget = cli("quota", "budget", "--tenant", "console:local", "--project", "launch", "--usd", "0")
    assert budget.returncode == 0 and "project launch: monthly budget set to $0.00" in budget.stdout
    shown_budget = cli("quota", "show", "--tenant", "console:local")
    assert "project launch: $0.0000 of $0.00 this month" in shown_budget.stdout
    assert cli("report", "--since", "2026-12-09", "--until", "2026-12-01").returncode == 2


def test_a_project_tag_is_checked_where_it_is_typed() -> None:
    from bot.model.requests import check_project_tag, parse_command

    assert parse_command("a fox --project Spring-Launch_2").request.project == "spring-launch_2"
    for bad in ("a/b", "x" * 33, "émigré"):
        with pytest.raises(BadInput, match="is not a project tag"):
            parse_command(f"a fox --project {bad}")
    assert check_project_tag("ok", flag="policy project") == "ok"
