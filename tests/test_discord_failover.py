"""Several providers on Discord end to end: the real discord.py against the loopback FakeDiscord, with
HIDREAM_PROVIDERS=pixazo,sandbox (the Pixazo fake out of credit): the sandbox makes the image and the
result says so; the `provider` option picks one, and an unconfigured one is refused privately."""

from __future__ import annotations

from pathlib import Path

from bot.app import Bot
from bot.model.jobs import JobState
from bot.providers.sandbox.provider import SandboxProvider
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.fakes.pixazo import PixazoFake

KEY = "pixazo-discord-key"


async def test_an_out_of_credit_provider_hands_the_job_on_and_the_result_names_who_made_it(
    tmp_path: Path,
) -> None:
    async with PixazoFake(api_key=KEY).running() as pixazo, FakeDiscord() as fake:
        env = {"HIDREAM_PROVIDERS": "pixazo,sandbox", "PIXAZO_API_KEY": KEY, "PIXAZO_BASE_URL": pixazo.url}
        async with discord_bot(tmp_path, fake, env) as (bot, _):
            hidream = next(c for c in fake.commands["global"] if c["name"] == "hidream")
            assert "provider" in [o["name"] for o in hidream["options"]]

            pixazo.fail_next(402)
            payload = await fake.interact(fake.slash_payload({"prompt": "a red fox in snow", "seed": 7}))
            original_id = await fake.wait_for(lambda: fake.originals.get(payload["token"]))
            result = await fake.wait_for(
                lambda: with_files(fake.messages.get(original_id, {})) and fake.messages[original_id]
            )
            await bot.runner.wait_idle()
            job = await bot.engine.job_for_post("discord", original_id)
            assert job is not None and (job.state, job.provider) == (JobState.DELIVERED, "sandbox")
            assert "by `sandbox`" in result["content"] and "seed `7`" in result["content"]
            assert (len(pixazo.submits), sandbox_of_engine(bot)) == (1, 1)
            assert not fake.ephemeral_texts()

            # The option names one: the job goes there, Pixazo is not asked.
            payload = await fake.interact(fake.slash_payload({"prompt": "a blue fox", "provider": "sandbox"}))
            original_id = await fake.wait_for(lambda: fake.originals.get(payload["token"]))
            await fake.wait_for(lambda: with_files(fake.messages.get(original_id, {})))
            await bot.runner.wait_idle()
            job = await bot.engine.job_for_post("discord", original_id)
            assert job is not None and job.provider == "sandbox"
            assert (len(pixazo.submits), sandbox_of_engine(bot)) == (1, 2)


async def test_an_unconfigured_provider_option_is_refused_privately(tmp_path: Path) -> None:
    async with PixazoFake(api_key=KEY).running() as pixazo, FakeDiscord() as fake:
        env = {"HIDREAM_PROVIDERS": "pixazo,sandbox", "PIXAZO_API_KEY": KEY, "PIXAZO_BASE_URL": pixazo.url}
        async with discord_bot(tmp_path, fake, env) as (bot, _):
            payload = await fake.interact(fake.slash_payload({"prompt": "a fox", "provider": "wavespeed"}))
            await fake.wait_for(lambda: fake.ephemeral_texts())
            (text,) = fake.ephemeral_texts()
            assert "`--provider wavespeed` is not configured here: use pixazo or sandbox." in text
            assert payload["token"] not in fake.originals or not with_files(
                fake.messages.get(fake.originals[payload["token"]], {})
            )
            assert (pixazo.submits, sandbox_of_engine(bot)) == ([], 0)
            quota = await bot.engine.quota("discord", payload["member"]["user"]["id"], payload["guild_id"])
            assert quota.used == 0


def sandbox_of_engine(bot: Bot) -> int:
    """How many jobs the sandbox was sent (it is not the bot's first provider here)."""
    provider = bot.engine.providers["sandbox"]
    assert isinstance(provider, SandboxProvider) and provider.service is not None
    return provider.service.submits
