"""The one parser every surface shares: every flag, every range, every message."""

from __future__ import annotations

import pytest

from bot.model.errors import BadInput
from bot.model.requests import PRESETS, build_request, check_tier_limits, parse_command, size_for_aspect


def test_plain_prompt_gets_defaults() -> None:
    parsed = parse_command("  a red fox in snow  ")
    r = parsed.request
    assert r.prompt == "a red fox in snow"
    assert (r.n, r.format, r.seed, r.steps, r.guidance, r.model, r.keep_aspect) == (
        1,
        "png",
        None,
        None,
        None,
        None,
        False,
    )
    assert r.dimensions() == PRESETS["square_hd"]
    assert parsed.urls == []


def test_every_flag_is_read_wherever_it_stands() -> None:
    r = parse_command(
        "--seed 7 a red fox --ar 16:9 --steps 30 --cfg 4.5 --n 3 --format webp --model full in snow"
    ).request
    assert r.prompt == "a red fox in snow"
    assert (r.seed, r.steps, r.guidance, r.n, r.format, r.model) == (7, 30, 4.5, 3, "webp", "full")
    assert r.aspect == (16, 9)
    w, h = r.dimensions()
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 16 / 9) < 0.02


def test_size_explicit_and_presets() -> None:
    assert parse_command("x --size 1536x640").request.dimensions() == (1536, 640)
    for name, dims in PRESETS.items():
        r = parse_command(f"x --size {name}").request
        assert r.preset == name and r.dimensions() == dims


def test_keep_aspect_and_em_dash_flags() -> None:
    r = parse_command("make it night \u2014keep-aspect \u2014seed 3").request
    assert r.keep_aspect is True and r.seed == 3 and r.prompt == "make it night"


def test_urls_become_references_and_leave_the_prompt() -> None:
    parsed = parse_command(
        "put this cat <https://example.com/cat.png|cat> on the moon https://example.org/a.jpg"
    )
    assert parsed.urls == ["https://example.com/cat.png", "https://example.org/a.jpg"]
    assert parsed.request.prompt == "put this cat on the moon"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "The prompt is empty"),
        ("   --seed 4", "The prompt is empty"),
        ("x --n 9", "`--n 9` is out of range: use a whole number from 1 to 4."),
        ("x --n 0", "`--n 0` is out of range"),
        ("x --n two", "`--n two` is not a whole number"),
        ("x --seed -1", "`--seed -1` is out of range: use a whole number from 0 to 2147483647."),
        ("x --seed 2147483648", "`--seed 2147483648` is out of range"),
        ("x --steps 0", "`--steps 0` is out of range: use a whole number from 1 to 100"),
        ("x --steps 101", "`--steps 101` is out of range"),
        ("x --cfg 21", "`--cfg 21` is out of range: use a number from 0 to 20."),
        ("x --cfg -0.5", "`--cfg -0.5` is out of range"),
        ("x --cfg high", "`--cfg high` is not a number"),
        ("x --cfg nan", "`--cfg nan` is out of range"),
        ("x --ar 5:1", "`--ar 5:1` is out of range: use an aspect ratio W:H between 1:4 and 4:1"),
        ("x --ar 1:5", "`--ar 1:5` is out of range"),
        ("x --ar wide", "`--ar wide` is not an aspect ratio"),
        ("x --ar 0:1", "`--ar 0:1` is not an aspect ratio"),
        ("x --size 100x100", "`--size 100x100` is out of range: use WxH with each side 256 to 2048"),
        ("x --size 4096x4096", "`--size 4096x4096` is out of range"),
        ("x --size 2048x256", "`--size 2048x256` is too narrow"),
        ("x --size squre_hd", "`--size squre_hd` is not a size. Did you mean `square_hd`?"),
        ("x --format gif", "`--format gif` is not allowed: use png, jpeg or webp."),
        ("x --model turbo", "`--model turbo` is not allowed: use full or dev."),
        ("x --seed", "`--seed` needs a value"),
        ("x --seed --n 2", "`--seed` needs a value"),
        ("x --seed 1 --seed 2", "`--seed` is given twice"),
        ("x --ar 1:1 --size 512x512", "Give either `--ar` or `--size`, not both."),
        ("x --sed 4", "`--sed` is not a known flag. Did you mean `--seed`?"),
        ("x --aspect-ratio 1:1", "`--aspect-ratio` is not a known flag."),
        ("x --model dev --steps 50", "`--steps 50` is too many for the dev model: use 1 to 28"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(text: str, expected: str) -> None:
    with pytest.raises(BadInput) as err:
        parse_command(text)
    assert expected in err.value.user_message


def test_prompt_length_limit() -> None:
    assert parse_command("a" * 5000).request.prompt == "a" * 5000
    with pytest.raises(BadInput, match="5001 characters long; the most allowed is 5000"):
        parse_command("a" * 5001)


def test_boundaries_are_accepted() -> None:
    r = parse_command("x --seed 0 --steps 1 --cfg 0 --n 1 --ar 1:4").request
    assert (r.seed, r.steps, r.guidance, r.n, r.aspect) == (0, 1, 0.0, 1, (1, 4))
    r = parse_command("x --seed 2147483647 --steps 100 --cfg 20 --n 4 --ar 4:1 --format jpg").request
    assert (r.seed, r.steps, r.guidance, r.n, r.format) == (2147483647, 100, 20.0, 4, "jpeg")
    assert parse_command("x --model dev --steps 28").request.steps == 28


def test_build_request_from_typed_options_matches_the_text_parser() -> None:
    typed = build_request("a fox", {"ar": "9:16", "n": "2", "model": "DEV"})
    assert typed == parse_command("a fox --ar 9:16 --n 2 --model dev").request


def test_tier_limit_applies_to_the_default_tier_too() -> None:
    r = parse_command("x --steps 40").request
    check_tier_limits(r, "full")
    with pytest.raises(BadInput, match="too many for the dev model"):
        check_tier_limits(r, "dev")


@pytest.mark.parametrize(("w", "h"), [(1, 1), (16, 9), (9, 16), (4, 1), (1, 4), (3, 2)])
def test_aspect_sizes_are_near_one_megapixel(w: int, h: int) -> None:
    width, height = size_for_aspect(w, h)
    assert width % 16 == 0 and height % 16 == 0
    assert 256 <= width <= 2048 and 256 <= height <= 2048
    assert abs(width / height - w / h) / (w / h) < 0.05
