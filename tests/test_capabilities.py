"""Each provider's capability table and the checks a request passes come from the same data
(bot/providers/capabilities.py): what `hidream-bot providers` prints as offered is accepted, what it
prints as not offered is refused, naming the providers whose tables offer it."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.model.errors import BadInput
from bot.model.requests import ImageRequest, parse_command
from bot.plugins import catalogue
from bot.providers import capabilities as documented
from bot.providers.capabilities import KNOBS, Capabilities, Span, check, table

REAL = ("pixazo", "atlascloud", "fal", "wavespeed")


def lines_of(printed: str, label: str) -> dict[str, str]:
    """One provider's block of the printed table, by its row names."""
    block = next(b for b in printed.split("\n\n") if b.startswith(label + " "))
    rows: dict[str, str] = {}
    for line in block.splitlines()[1:]:
        name, _, value = line.strip().partition(":")
        rows[name] = value.strip()
    return rows


def request_with(flag: str) -> ImageRequest:
    values = {
        "--no": "--no trees",
        "--steps": "--steps 20",
        "--cfg": "--cfg 5",
        "--keep-aspect": "--keep-aspect",
    }
    return parse_command(f"a harbour {values[flag]}").request


def test_the_command_prints_every_installed_providers_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers"]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == table(catalogue()).strip()
    names = [c.name for c in catalogue()]
    assert set(REAL) | {"sandbox"} <= set(names)
    for caps in catalogue():
        rows = lines_of(printed, caps.label)
        for mode in documented.MODES:
            for tier in caps.tiers(mode):
                assert caps.models[(mode, tier)] in rows[mode]
        assert rows["sizes"] == caps.sizes and rows["price"] == caps.price
    atlas = lines_of(printed, "Atlas Cloud")
    assert atlas["text-to-image"] == "full: hidream-o1-1.5/text-to-image"
    assert "dev" not in atlas["edit"]
    assert lines_of(printed, "WaveSpeed")["not offered"] == "--no, --steps, --cfg"
    assert lines_of(printed, "Pixazo")["price"] == "$0.01 per image, dev $0.005, at every resolution"


@pytest.mark.parametrize("name", REAL)
def test_what_the_table_offers_is_accepted_and_the_rest_refused(name: str) -> None:
    known = catalogue(fallbacks=False)
    caps = next(c for c in known if c.name == name)
    not_offered = lines_of(table([caps]), caps.label).get("not offered", "").split(", ")
    for knob in KNOBS:
        request = request_with(knob.flag)
        n_refs = 1 if knob.flag == "--keep-aspect" else 0
        if knob.flag in not_offered:
            with pytest.raises(BadInput) as caught:
                check(caps, request, "full", n_refs, known)
            takers = [c.label for c in known if c.offers(knob, "full")]
            message = caught.value.user_message
            assert message.startswith(f"`{knob.flag}") and f"not offered by {caps.label}" in message
            assert all(label in message for label in takers)
            assert ("nor by any other provider" in message) == (not takers)
        else:
            check(caps, request, "full", n_refs, known)


def test_changing_the_data_changes_both_the_table_and_the_checks() -> None:
    made_up = Capabilities(
        name="tiny",
        label="Tiny",
        models={("text-to-image", "full"): "tiny-1"},
        sizes="512x512 only",
        price="$1 per image",
        steps={"full": Span(1, 10)},
        negative_prompt=True,
        formats=("png",),
    )
    rows = lines_of(table([made_up]), "Tiny")
    assert rows == {
        "text-to-image": "full: tiny-1",
        "edit": "not offered",
        "sizes": "512x512 only",
        "knobs": "--steps (full 1 to 10), --no, --format png, --n 1-4",
        "not offered": "--cfg, --keep-aspect",
        "price": "$1 per image",
    }
    check(made_up, parse_command("x --no people --steps 10").request, "full", 0)
    refusals = {
        "x --steps 11": "`--steps 11` is out of range for Tiny's full model: use 1 to 10.",
        "x --format webp": "`--format webp` is not offered by Tiny: use png.",
        "x --cfg 3": "`--cfg 3` is not offered by Tiny, which takes no guidance scale",
    }
    for text, words in refusals.items():
        with pytest.raises(BadInput) as caught:
            check(made_up, parse_command(text).request, "full", 0)
        assert caught.value.user_message.startswith(words)
    with pytest.raises(BadInput, match="no `full` model for edits"):
        check(made_up, parse_command("x").request, "full", 1)
    with pytest.raises(BadInput, match="Tiny has one model for text-to-image \\(tiny-1\\): no `dev` model"):
        check(made_up, parse_command("x --draft").request, "dev", 0)
