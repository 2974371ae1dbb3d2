"""Style kits on the console, end to end against the sandbox provider: `/kit save|list|show|delete|bind`,
`--kit` applied (the provider receives the prompt between the kit's prefix and suffix, at the kit's
size, with its subject's images), the person's own flags winning over the kit's, a bound kit applied
and not removable, versions (an edited kit does not change what an earlier result used), and bad
kits, unknown names and bad flags refused in plain words with nothing spent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.app import Bot
from bot.model.jobs import Job
from bot.providers.sandbox.provider import SandboxProvider
from storage import audit
from tests.fakes.discord_harness import png
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of

SAVE = "/kit save watercolor --prefix soft watercolor of --suffix pastel palette --no text, logos --ar 16:9"


async def last_job(bot: Bot, console: Console) -> Job:
    assert console.chat is not None and console.chat.last_job_id is not None
    job = await bot.engine.job(console.chat.last_job_id)
    assert job is not None
    return job


async def spent(bot: Bot) -> int:
    return (await bot.engine.quota("console", "local", "local")).used


async def test_a_kit_is_saved_listed_shown_applied_and_deleted(tmp_path: Path) -> None:
    console = Console(tmp_path)
    mascot = png(60, 60, (10, 200, 10))
    (tmp_path / "m.png").write_bytes(mascot)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save mascot {tmp_path / 'm.png'}")
        await console.run(bot, f"{SAVE} --subject mascot")
        err = console.err.getvalue()
        assert "Saved kit watercolor v1. Use it: --kit watercolor" in err
        assert sandbox_of(bot).submits == 0 and await spent(bot) == 0  # saving spends nothing

        await console.run(bot, "/kit list")
        assert "Style kits:\nwatercolor v1" in console.err.getvalue()
        await console.run(bot, "/kit show WATERCOLOR")
        assert (
            "Kit watercolor v1: prefix: soft watercolor of; suffix: pastel palette; --no: text, logos; "
            "subject: mascot; flags: --ar 16:9." in console.err.getvalue()
        )

        made = await console.run(bot, "/hidream a fox in snow --kit watercolor")
        assert len(made) == 1
        [received] = sandbox_of(bot).received()
        assert received.prompt == "soft watercolor of a fox in snow pastel palette"
        assert (received.width, received.height) == (1360, 768)  # the kit's 16:9
        assert received.references == [mascot]  # the kit's subject
        job = await last_job(bot, console)
        assert (job.request.kit, job.request.kit_version) == ("watercolor", 1)
        # The sandbox takes no negative prompt: the kit's is left out, and the request still made.
        assert job.request.negative is None
        assert f"[{job.id[:8]}] done: 1 image(s) by sandbox" in console.err.getvalue()
        assert "(kit watercolor v1)" in console.err.getvalue()

        # The person's own flags win over the kit's.
        await console.run(bot, "/hidream a fox --kit watercolor --ar 1:1")
        received = next(j for j in sandbox_of(bot).received() if j.prompt.endswith("a fox pastel palette"))
        assert (received.width, received.height) == (1024, 1024)

        await console.run(bot, "/kit delete watercolor")
        assert (
            "Deleted kit watercolor; results made with it still say which version" in console.err.getvalue()
        )
        submits, used = sandbox_of(bot).submits, await spent(bot)
        await console.run(bot, "/hidream a fox --kit watercolor")
        assert "There is no style kit named watercolor here; nothing was spent." in console.err.getvalue()
        assert (sandbox_of(bot).submits, await spent(bot)) == (submits, used)
        assert "No style kits are saved here yet." not in console.err.getvalue()
        await console.run(bot, "/kit list")
        assert "No style kits are saved here yet." in console.err.getvalue()


async def test_a_bound_kit_applies_to_every_request_and_cannot_be_removed(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, SAVE)
        await console.run(bot, "/kit save noir --prefix black and white")
        await console.run(bot, "/kit bind watercolor")
        assert "Every request in this channel now uses the kit watercolor" in console.err.getvalue()
        await console.run(bot, "/kit list")
        assert "watercolor v1 (this channel's kit)" in console.err.getvalue()

        await console.run(bot, "/hidream a harbour")
        await console.run(bot, "/hidream a {cat, dog}")  # a set: every job of it
        await console.run(bot, "/hidream a barn --kit watercolor")  # naming the bound kit is fine
        prompts = sorted(j.prompt for j in sandbox_of(bot).received())
        assert prompts == [
            "soft watercolor of a barn pastel palette",
            "soft watercolor of a cat pastel palette",
            "soft watercolor of a dog pastel palette",
            "soft watercolor of a harbour pastel palette",
        ]

        # Another kit cannot replace the bound one: refused, nothing spent.
        submits, used = sandbox_of(bot).submits, await spent(bot)
        await console.run(bot, "/hidream a harbour --kit noir")
        assert (
            "This channel always uses the kit watercolor, so --kit noir cannot replace it; nothing was spent."
            in console.err.getvalue()
        )
        assert (sandbox_of(bot).submits, await spent(bot)) == (submits, used)

        await console.run(bot, "/kit bind none")
        assert "This channel uses no kit now" in console.err.getvalue()
        await console.run(bot, "/hidream a harbour --seed 4")
        assert (await last_job(bot, console)).request.prompt == "a harbour"


async def test_an_edited_kit_leaves_earlier_results_on_their_version(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, "/kit save house --prefix v1 style")
        await console.run(bot, "/hidream a tree --kit house")
        first = await last_job(bot, console)
        await console.run(bot, "/kit save house --prefix v2 style --model dev")
        assert "Saved kit house v2." in console.err.getvalue()
        await console.run(bot, "/hidream a tree --kit house")
        second = await last_job(bot, console)
        await console.run(bot, f"/vary {first.id[:8]}")
        await console.run(bot, f"/upscale {first.id[:8]}")
        assert (first.request.prompt, first.tier, first.request.kit_version) == ("v1 style a tree", "full", 1)
        assert (second.request.prompt, second.tier, second.request.kit_version) == (
            "v2 style a tree",
            "dev",
            2,
        )

        assert bot.store is not None
        rows = {r["job"]: r async for r in audit.rows(bot.store, since=0, until=float("inf"))}
        assert rows[first.id]["kit"] == "house v1" and rows[second.id]["kit"] == "house v2"
        # A Vary and an Upscale of the first result name its kit too (their prompts hold it).
        made_from_first = [r for r in rows.values() if r["parent"] == first.id]
        assert [r["kit"] for r in made_from_first] == ["house v1", "house v1"]


async def test_bad_kits_are_refused_in_plain_words(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        for line, said in (
            ("/kit save house --seed 5", "--seed cannot be kept in a kit: a kit keeps --ar, --size"),
            ("/kit save house --ar 9:1", "--ar 9:1 is out of range: use an aspect ratio W:H"),
            ("/kit save house --colour red", "--colour is not a known flag."),
            ("/kit save house watercolor", "watercolor belongs to no flag: put a kit's words after --prefix"),
            ("/kit save house", "A kit needs at least one of --prefix, --suffix, --no, --subject or a flag."),
            ("/kit save bad/name --prefix x", "bad/name is not a kit name: use 1 to 32 letters"),
            ("/kit save house --subject nobody", "There is no subject named nobody here."),
            ("/kit save house --prefix x --subject a --subject b", "A kit keeps one saved subject"),
            ("/kit frobnicate", "Use kit list, kit show <name>, kit save <name> --prefix"),
            ("/kit show nothing", "There is no style kit named nothing here; nothing was spent. None are"),
            ("/hidream a fox --kit bad/name", "bad/name is not a kit name"),
        ):
            await console.run(bot, line)
            assert said in console.err.getvalue(), line
        await console.run(bot, f"/kit save long --prefix {'word ' * 250}")
        assert "--prefix is 1249 characters long; the most a kit keeps is 1000." in console.err.getvalue()
        await console.run(bot, f"/kit save long --prefix {'word ' * 199}")
        await console.run(bot, f"/hidream {'fox ' * 1100} --kit long")
        assert "With the kit long the prompt is 5394 characters long; the most allowed is 5000." in (
            console.err.getvalue()
        )
        assert sandbox_of(bot).submits == 0 and await spent(bot) == 0


async def test_a_kits_negative_prompt_goes_to_a_provider_that_takes_one(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        provider = bot.provider
        assert isinstance(provider, SandboxProvider) and provider.capabilities is not None
        provider.capabilities = dataclasses.replace(provider.capabilities, negative_prompt=True)
        await console.run(bot, SAVE)
        await console.run(bot, "/hidream a fox --kit watercolor")
        assert (await last_job(bot, console)).request.negative == "text, logos"
        # The person's own `--no` wins over the kit's.
        await console.run(bot, "/hidream a fox --kit watercolor --no trees")
        assert (await last_job(bot, console)).request.negative == "trees"


async def test_a_remix_of_a_kitted_image_shows_the_persons_words_and_applies_the_kit_once(
    tmp_path: Path,
) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, SAVE)
        await console.run(bot, "/hidream a fox in snow --kit watercolor --seed 3")
        first = await last_job(bot, console)
        assert first.request.prompt == "soft watercolor of a fox in snow pastel palette"
        # The request to change, as the forms are filled: the person's own words and the kit by name.
        await console.run(bot, f"/remix {first.id[:8]}")
        shown = console.err.getvalue().rsplit(f"/remix {first.id[:8]} ", 1)[1].splitlines()[0]
        assert shown.startswith("a fox in snow ") and "--kit watercolor" in shown
        assert "soft watercolor" not in shown
        # Sent back as it stands (the form unchanged), then changed: the kit goes round it once.
        await console.run(bot, f"/remix {first.id[:8]} {shown} --fresh")
        await console.run(bot, f"/remix {first.id[:8]} {shown.replace('a fox in snow', 'a fox at dusk')}")
        prompts = [j.prompt for j in sandbox_of(bot).received()[1:]]
        assert prompts == [
            "soft watercolor of a fox in snow pastel palette",
            "soft watercolor of a fox at dusk pastel palette",
        ]
        remixed = await last_job(bot, console)
        assert (remixed.request.kit, remixed.request.kit_version, remixed.parent_job_id) == (
            "watercolor",
            1,
            first.id,
        )
