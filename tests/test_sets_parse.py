"""How a command becomes a set of jobs, with no I/O: `{a, b}` choices (several multiply), `--repeat`
(a fixed seed steps by one), `--yes`, `--draft`, `--no`; the limits, refused in plain words; Discord's
slash command with typed options; and the one-job paths refusing `--repeat`."""

from __future__ import annotations

import pytest

from adapters.discord import translate
from bot.model.errors import BadInput
from bot.model.requests import expand_choices, parse_command, parse_set
from tests.fakes.discord_payloads import Payloads


def test_choices_multiply_in_order_and_flags_may_be_chosen_too() -> None:
    assert expand_choices("a {red, blue} fox in {snow,rain}") == [
        "a red fox in snow",
        "a red fox in rain",
        "a blue fox in snow",
        "a blue fox in rain",
    ]
    assert expand_choices("no braces here") == ["no braces here"]
    parsed = parse_set("a fox --ar {1:1, 16:9} --yes")
    assert [c.request.aspect for c in parsed.commands] == [(1, 1), (16, 9)]
    assert parsed.confirmed and not parse_set("a fox").confirmed


def test_repeat_steps_a_fixed_seed_and_leaves_a_free_one_free() -> None:
    assert [c.request.seed for c in parse_set("x --seed 2147483646 --repeat 3").commands] == [
        2147483646,
        2147483647,
        0,
    ]
    assert [c.request.seed for c in parse_set("x --repeat 2").commands] == [None, None]
    assert len(parse_set("{a, b, c} --repeat 4").commands) == 12


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{a,b,c,d,e} {f,g,h}", "That asks for 15 images in one set; a set makes at most 12"),
        ("{a,b,c,d} --repeat 4", "That asks for 16 images in one set; a set makes at most 12"),
        ("a {red,,blue} fox", "A choice in `{...}` is empty"),
        ("a {red, blue fox", "A `{` or `}` is not closed"),
        ("a fox --repeat 0", "`--repeat 0` is out of range: use a whole number from 1 to 8"),
        ("a fox --draft --model full", "`--draft` makes the image on the Dev model"),
        ("a fox --no", "`--no` needs a value"),
    ],
)
def test_what_cannot_be_a_set_is_refused_plainly(text: str, words: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_set(text)
    assert caught.value.user_message.startswith(words)


def test_draft_and_no_are_part_of_the_request() -> None:
    request = parse_set("a fox --no trees, people --ar 16:9 --draft").first.request
    assert (request.prompt, request.negative, request.aspect) == ("a fox", "trees, people", (16, 9))
    assert request.draft and request.model == "dev"
    # A draft names its model: a personal default model does not replace it.
    assert request.explicit is not None and {"model", "draft", "no"} <= request.explicit
    assert "repeat" not in (parse_set("x --repeat 2").first.request.explicit or set())


def test_one_job_paths_refuse_repeat() -> None:
    assert parse_command("x --repeat 1").request.prompt == "x"
    with pytest.raises(BadInput, match=r"Sets .* are made from a new command"):
        parse_command("make it blue --repeat 3")


def test_discords_slash_command_makes_a_set_with_its_typed_options() -> None:
    maker = Payloads()
    payload = maker.slash_payload(
        {"prompt": "a {red, blue} fox --repeat 2 --yes", "seed": 5, "aspect": "4:3"}
    )
    chats, confirmed = translate.slash_set(payload, origin={"k": 1}, max_bytes=1 << 20)
    assert confirmed
    assert [(c.request.prompt, c.request.seed, c.request.aspect) for c in chats] == [
        ("a red fox", 5, (4, 3)),
        ("a red fox", 6, (4, 3)),
        ("a blue fox", 5, (4, 3)),
        ("a blue fox", 6, (4, 3)),
    ]
    assert all(c.origin == {"k": 1} and c.surface == "discord" for c in chats)
