"""Personal defaults and tenant policy: their rows on both store backends, the words people write,
and the one place they meet a request (the engine, before admission), against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.preferences import BLOCKED, contains_blocked, parse_policy, parse_settings
from bot.model.errors import BadInput
from bot.model.requests import ChatRequest, parse_command
from bot.usecases.actor import Actor
from bot.usecases.remake import remake
from storage.preferences import Preferences, TenantPolicy
from tests.support.harness import BotHarness, sandbox_of
from tests.support.jobs import NOW
from tests.support.store_backends import OpenStore


async def test_defaults_and_policy_rows_on_both_backends(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        rows = Preferences(store)
        assert await rows.defaults("discord:g1", "discord:u1") == {}
        await rows.set_defaults("discord:g1", "discord:u1", {"ar": "16:9", "n": "2"})
        await rows.set_defaults("discord:g1", "discord:u1", {"ar": "16:9", "n": "3"})
        assert await rows.defaults("discord:g1", "discord:u1") == {"ar": "16:9", "n": "3"}
        assert await rows.defaults("discord:g2", "discord:u1") == {}  # another server: nothing
        await rows.set_defaults("discord:g1", "discord:u1", {})
        assert await rows.defaults("discord:g1", "discord:u1") == {}

        assert await rows.policy("slack:T1") == TenantPolicy()
        chosen = TenantPolicy(banned=("red fox", "owl"), nsfw="block", tier="dev", provider="fal")
        await rows.set_policy("slack:T1", chosen)
        assert await rows.policy("slack:T1") == chosen
        assert await rows.policy("slack:T2") == TenantPolicy()
        await rows.set_policy("slack:T1", TenantPolicy())
        assert await rows.policy("slack:T1") == TenantPolicy()


def test_the_parser_tells_typed_flags_from_the_rest() -> None:
    assert parse_command("a fox --ar 16:9 --n 2").request.explicit == frozenset({"ar", "n"})
    assert parse_command("a fox").request.explicit == frozenset()


def test_settings_words() -> None:
    assert parse_settings("") == "show"
    assert parse_settings("reset") == "reset"
    assert parse_settings("--ar 16:9 --n 2 --private yes") == {"ar": "16:9", "n": "2", "private": "on"}
    with pytest.raises(BadInput, match="cannot be a default"):
        parse_settings("--seed 4")
    with pytest.raises(BadInput, match="out of range"):
        parse_settings("--n 9")
    with pytest.raises(BadInput, match="use on or off"):
        parse_settings("--private maybe")


def test_policy_words_and_whole_word_matching() -> None:
    assert parse_policy("ban Red  Fox").value == "Red Fox"
    assert parse_policy("").action == "show"
    with pytest.raises(BadInput, match="policy ban"):
        parse_policy("ban")
    assert contains_blocked("A RED\nfox at dawn", ("red fox",))
    assert not contains_blocked("a redfox, a red foxglove", ("red fox",))
    assert not contains_blocked("a classic car", ("ass",))


def chat(text: str, *, user: str = "u1", workspace: str = "w1") -> ChatRequest:
    return ChatRequest(
        surface="test", user_id=user, workspace_id=workspace, request=parse_command(text).request
    )


async def test_defaults_apply_flags_win_and_tenant_tier_fills_in(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        engine = bot.engine
        answer = await engine.user_settings("test", "w1", "u1", "--ar 16:9 --n 2 --format webp")
        assert "--ar 16:9" in answer and "--n 2" in answer
        await engine.admin_policy("test", "w1", "tier dev")
        plain = await engine.submit(chat("a lighthouse"))
        typed = await engine.submit(chat("a lighthouse at noon --n 1 --size square --model full"))
        elsewhere = await engine.submit(chat("a lighthouse at dusk", workspace="w2"))
        await bot.runner.wait_idle()
        made = {j.prompt: j for j in sandbox_of(bot).received()}
        first = made["a lighthouse"]
        assert (first.num_images, first.output_format, first.model) == (2, "webp", "dev")
        assert abs(first.width / first.height - 16 / 9) < 0.02
        second = made["a lighthouse at noon"]
        assert (second.num_images, second.width, second.height, second.model) == (1, 512, 512, "full")
        assert second.output_format == "webp"  # not typed: the default still holds
        third = made["a lighthouse at dusk"]
        assert (third.num_images, third.output_format, third.model) == (1, "png", "full")
        assert plain.request.explicit is None and typed.tier == "full" and elsewhere.tier == "full"
        # A reroll keeps the request as it was made, whatever the defaults are now.
        await engine.user_settings("test", "w1", "u1", "reset")
        asker = Actor(surface=plain.surface, workspace_id=plain.workspace_id, user_id="u1")
        again = await remake(engine, asker, plain, vary=False, origin={})
        await bot.runner.wait_idle()
        assert again.request.n == 2 and again.request.format == "webp"


async def test_an_edit_keeps_its_images_shape_whatever_the_default_aspect(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        engine = bot.engine
        await engine.user_settings("test", "w1", "u1", "--ar 16:9 --format webp")
        first = await engine.submit(chat("a square lighthouse --size square"))
        await bot.runner.wait_idle()
        made = await engine.job(first.id)
        assert made is not None and made.result_media
        edit = chat("make it night").model_copy(update={"references": engine.references_of(made)})
        edited = await engine.submit(edit)
        await bot.runner.wait_idle()
        # The default format still applies; the default aspect does not reshape the edited image.
        assert edited.request.aspect is None and edited.request.width is None
        assert edited.request.format == "webp"


async def test_a_blocked_phrase_is_refused_before_any_spend(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        engine = bot.engine
        await engine.admin_policy("test", "w1", "ban red fox")
        before = await engine.quota("test", "u1", "w1")
        with pytest.raises(BadInput) as refused:
            await engine.submit(chat("a Red Fox in snow --n 4"))
        assert refused.value.user_message == BLOCKED and "red fox" not in BLOCKED
        after = await engine.quota("test", "u1", "w1")
        assert (after.used, after.remaining) == (before.used, before.remaining)
        assert sandbox_of(bot).submits == 0
        # Another workspace's policy is its own; whole words only.
        await engine.submit(chat("a red fox in snow", workspace="w2"))
        await engine.submit(chat("a redfox plush toy"))
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == 2


async def test_policy_values_are_checked_and_kept_per_tenant(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        engine = bot.engine
        with pytest.raises(BadInput, match="not a provider here"):
            await engine.admin_policy("test", "w1", "provider nosuch")
        answer = await engine.admin_policy("test", "w1", f"provider {engine.provider.name}")
        assert f"provider: {engine.provider.name}" in answer
        assert await engine.preferred_provider("test", "w1", "u1") == engine.provider.name
        assert await engine.preferred_provider("test", "w2", "u1") is None
        with pytest.raises(BadInput, match="nsfw"):
            await engine.admin_policy("test", "w1", "nsfw sometimes")
        await engine.admin_policy("test", "w1", "nsfw block")
        assert await engine.nsfw_policy("test", "w1") == "block"
        assert await engine.nsfw_policy("test", "w2") is None
        with pytest.raises(BadInput, match="not in a direct message"):
            await engine.admin_policy("test", "", "ban owl")
        assert "back to the operator's defaults" in await engine.admin_policy("test", "w1", "reset")
        assert await engine.nsfw_policy("test", "w1") is None
