"""Tenant banned phrases matched however they are written: the evasions the audit tried (and more of
their kind) are caught, and words that merely contain a short banned word stay allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.preferences import BLOCKED, contains_blocked
from bot.model.errors import BadInput
from bot.model.phrases import contains_banned, plain
from bot.model.requests import ChatRequest, parse_command
from tests.support.harness import BotHarness, sandbox_of

BANNED = ("nude", "red fox", "sex", "rapist", "ass")

EVASIONS = {
    "zero-width space": "a nu\u200bde portrait",
    "soft hyphen": "a nu\u00adde portrait",
    "zero-width joiner": "a nu\u200dde portrait",
    "zero-width non-joiner": "a nu\u200cde portrait",
    "word joiner": "a nu\u2060de portrait",
    "byte order mark": "a nu\ufeffde portrait",
    "right-to-left override": "a nu\u202ede\u202c portrait",
    "zero-width spaces between every letter": "s\u200be\u200bx scene",
    "fullwidth letters": "a ｎｕｄｅ portrait",
    "fullwidth capitals and space": "a ＲＥＤ　ＦＯＸ in snow",
    "Cyrillic e": "a nud\u0435 portrait",
    "Cyrillic s, e and x": "\u0455\u0435\u0445 scene",
    "Cyrillic capitals": "\u0405\u0415\u0425 scene",
    "Greek capitals": "a \u039dUD\u0395 portrait",
    "Armenian u": "a n\u057dde portrait",
    "mathematical bold": "a \U0001d427\U0001d42e\U0001d41d\U0001d41e portrait",
    "circled letters": "a \u24dd\u24e4\u24d3\u24d4 portrait",
    "small capitals": "a \u0274\u1d1c\u1d05\u1d07 portrait",
    "accents": "a n\u00fcd\u00e9 portrait",
    "strike-through marks": "a n\u0336u\u0336d\u0336e\u0336 portrait",
    "hyphens between letters": "a n-u-d-e portrait",
    "spaces between letters": "a n u d e portrait",
    "dots between letters": "a n.u.d.e portrait",
    "underscores between letters": "a n_u_d_e portrait",
    "underscore between words": "a red_fox in snow",
    "hyphen between words": "a red-fox in snow",
    "braille blank between words": "a red\u2800fox in snow",
    "both words spelled out": "a r e d f o x in snow",
    "one word spelled out": "a r-e-d fox in snow",
    "spelled out with capitals and dots": "a N.U.D.E. portrait",
}

ALLOWED = [
    "a walk in Sussex",
    "Essex marshes at dawn",
    "a sextant on a ship's deck",
    "the therapist's office",
    "a redfox plush toy",
    "a red foxglove in bloom",
    "a classic car",
    "a bass guitar",
    "denude the hills in autumn",
    "grape vines and rapids",
    "a red car next to a fox",
    "Москва зимой",  # plain Russian is left alone
]


@pytest.mark.parametrize("prompt", EVASIONS.values(), ids=EVASIONS.keys())
def test_every_evasion_is_caught(prompt: str) -> None:
    assert contains_banned(prompt, BANNED)
    assert contains_blocked(prompt, BANNED)  # what the tenant's policy calls


@pytest.mark.parametrize("prompt", ALLOWED)
def test_words_that_contain_a_banned_word_stay_allowed(prompt: str) -> None:
    assert not contains_banned(prompt, BANNED)


def test_the_plain_form() -> None:
    assert plain("ＲＥＤ\u200b_Ｆох") == "red_fox"
    assert plain("İstanbul Ῥόδος") == "istanbul poδoσ"  # marks dropped after folding, too


def test_a_banned_phrase_is_read_the_same_way() -> None:
    # Whatever an admin typed is brought to the same form as the prompts.
    assert contains_banned("a red fox", ("ＲＥＤ ｆｏｘ",))
    assert contains_banned("a nude", ("nud\u0435",))
    assert not contains_banned("anything", ("", "\u200b", "--"))


def chat(text: str) -> ChatRequest:
    return ChatRequest(surface="test", user_id="u1", workspace_id="w1", request=parse_command(text).request)


async def test_an_evasion_is_refused_before_any_spend_and_sussex_goes_through(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        engine = bot.engine
        await engine.admin_policy("test", "w1", "ban red fox")
        await engine.admin_policy("test", "w1", "ban sex")
        for prompt in ("a red_fox in snow", "a ｒｅｄ ｆｏｘ", "s\u00ade\u00adx", "a r-e-d f-o-x"):
            with pytest.raises(BadInput) as refused:
                await engine.submit(chat(prompt))
            assert refused.value.user_message == BLOCKED, prompt
        assert (await engine.quota("test", "u1", "w1")).used == 0
        assert sandbox_of(bot).submits == 0
        await engine.submit(chat("a foggy morning in Sussex"))
        await bot.runner.wait_idle()
        assert sandbox_of(bot).submits == 1
