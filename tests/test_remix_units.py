"""Remix's pure parts: the request as a person would type it (read back, it asks for the same image),
`--fresh` in any spelling a phone makes of it, and refusals in our words before anything is spent."""

from __future__ import annotations

import dataclasses

import pytest

from bot.model.errors import BadInput
from bot.usecases import remix
from tests.support.jobs import make_job


def typed(**request: object) -> str:
    job = make_job()
    job.request = job.request.with_changes(**request)
    job.seed = 42
    return remix.as_typed(job)


def test_the_request_as_typed_names_what_shapes_the_image() -> None:
    assert typed() == "a fox --seed 42"
    assert typed(aspect=(16, 9), steps=20, guidance=4.5, n=2, format="webp") == (
        "a fox --ar 16:9 --seed 42 --steps 20 --cfg 4.5 --n 2 --format webp"
    )
    assert typed(width=1024, height=768) == "a fox --size 1024x768 --seed 42"
    assert typed(preset="portrait_4_3") == "a fox --size portrait_4_3 --seed 42"
    # An edit in its image's shape: that shape, as a ratio.
    assert typed(keep_aspect=True, source=(1360, 768)) == "a fox --ar 85:48 --seed 42"
    assert typed(draft=True, model="dev") == "a fox --seed 42 --draft"
    assert typed(largest=True, model="full") == "a fox --seed 42 --upscale"
    # `--no` runs to the next flag, so it comes last.
    assert typed(negative="trees, people", subjects=("mascot",), provider="fal", project="launch") == (
        "a fox --seed 42 --subject mascot --provider fal --project launch --no trees, people"
    )


def test_the_request_as_typed_reads_back_as_the_same_request() -> None:
    job = make_job()
    job.request = job.request.with_changes(
        prompt="a fox in snow", aspect=(16, 9), steps=20, guidance=4.5, n=2, format="jpeg", negative="trees"
    )
    job.seed, job.tier = 42, "dev"
    asked = remix.read(remix.as_typed(job), keep=True)
    again = asked.request
    assert (again.prompt, again.aspect, again.seed, again.steps, again.guidance) == (
        "a fox in snow",
        (16, 9),
        42,
        20,
        4.5,
    )
    assert (again.n, again.format, again.model, again.negative, asked.keep) == (
        2,
        "jpeg",
        "dev",
        "trees",
        True,
    )


@pytest.mark.parametrize("fresh", ["--fresh", "—fresh", "–fresh", "--FRESH"])
def test_fresh_drops_the_image(fresh: str) -> None:
    asked = remix.read(f"a fox {fresh} --seed 3 https://example.com/cat.png", keep=True)
    assert dataclasses.astuple(asked)[1:] == (("https://example.com/cat.png",), False)
    assert (asked.request.prompt, asked.request.seed) == ("a fox", 3)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("a fox --seed lots", "`--seed lots` is not a whole number"),
        ("--fresh --seed 3", "The prompt is empty"),
        ("a fox --repeat 2", "leave out `--repeat`"),
        ("a fox --upscale --model dev", "`--upscale` renders on the full model"),
    ],
)
def test_a_bad_remix_is_refused_in_our_words(text: str, said: str) -> None:
    with pytest.raises(BadInput) as refused:
        remix.read(text, keep=True)
    assert said in refused.value.user_message
