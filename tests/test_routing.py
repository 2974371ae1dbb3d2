"""bot/jobs/routing.py on its own: the circuit breaker with an injected clock, the router's choice among
providers, and the store's `move_job` moving a job's provider and cost on both backends."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from bot.jobs.routing import CircuitBreaker, Router
from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    ProviderBusy,
    ProviderMisconfigured,
    ProviderOutOfCredit,
    ProviderRejected,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
    UnreadableAnswer,
)
from bot.model.jobs import Job, JobState
from bot.model.requests import ImageRequest, parse_command
from bot.providers.aiohttp_transport import provider_client
from bot.providers.atlascloud import AtlasCloudProvider
from bot.providers.base import Provider
from bot.providers.pixazo import PixazoProvider
from bot.providers.sandbox.provider import SandboxProvider
from storage.store import Store
from tests.support.jobs import NOW, make_job
from tests.support.routing import Clock
from tests.support.store_backends import OpenStore, raw_job


def test_breaker_opens_after_failures_in_a_row_and_half_opens_after_the_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cool_down=60.0, clock=clock)
    breaker.failure("a")
    breaker.failure("a")
    breaker.success("a")  # a success in between: the count starts again
    breaker.failure("a")
    breaker.failure("a")
    assert breaker.allows("a") and breaker.states()["a"].state == "closed"
    breaker.failure("a")
    assert not breaker.allows("a")
    assert breaker.states(["a", "b"]) == {
        "a": breaker.states()["a"],
        "b": breaker.states()["b"],
    }
    assert dataclasses.astuple(breaker.states()["a"]) == ("open", 3, 1060.0)
    assert breaker.states()["b"].state == "closed" and breaker.allows("b")

    clock.now = 1059.0
    assert not breaker.allows("a")
    clock.now = 1060.0
    assert breaker.states()["a"].state == "half-open"
    assert breaker.allows("a")  # the one trial
    assert not breaker.allows("a")  # no second one while it is out
    breaker.failure("a")  # the trial failed: open again for a whole cool-down
    assert breaker.states()["a"].state == "open" and not breaker.allows("a")
    clock.now = 1120.0
    assert breaker.allows("a")
    breaker.success("a")
    assert dataclasses.astuple(breaker.states()["a"]) == ("closed", 0, None)
    assert breaker.allows("a") and breaker.allows("a")


def test_a_trial_that_never_reports_back_frees_the_way_after_another_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cool_down=10.0, clock=clock)
    breaker.failure("a")
    clock.now += 10
    assert breaker.allows("a")
    clock.now += 9
    assert not breaker.allows("a")
    clock.now += 1
    assert breaker.allows("a")


def providers(public_url: str = "") -> dict[str, Provider]:
    settings = Settings(_env_file=None, HIDREAM_PUBLIC_URL=public_url)
    client = provider_client()
    made: list[Provider] = [
        PixazoProvider(settings, client),
        AtlasCloudProvider(settings, client),
        SandboxProvider(settings, client, base_url="http://127.0.0.1:1/sandbox", token="t"),
    ]
    return {p.name: p for p in made}


def router(order: list[str], *, public_url: str = "", breaker: CircuitBreaker | None = None) -> Router:
    return Router(providers(public_url), order, "full", lambda: not public_url, breaker)


def ask(text: str) -> ImageRequest:
    return parse_command(text).request


def test_the_first_provider_that_can_serve_a_request_gets_it() -> None:
    r = router(["atlascloud", "pixazo", "sandbox"])
    assert [(p.name, t) for p, t in [r.choose(ask("a fox"), 0)]] == [("atlascloud", "full")]
    # Atlas Cloud offers no dev model; Pixazo does.
    assert r.choose(ask("a fox --model dev"), 0)[0].name == "pixazo"
    # Atlas Cloud takes presets only; Pixazo any size up to 2048.
    assert r.choose(ask("a fox --size 800x600"), 0)[0].name == "pixazo"
    # An edit without a public URL needs inline images: only the sandbox takes them.
    assert r.choose(ask("make it blue"), 1)[0].name == "sandbox"
    assert router(["atlascloud", "pixazo"], public_url="https://bot.example").choose(ask("x"), 1)[0].name == (
        "atlascloud"
    )


def test_a_tenants_preferred_provider_comes_first_when_it_can_serve_the_request() -> None:
    r = router(["atlascloud", "pixazo", "sandbox"])
    assert r.choose(ask("a fox"), 0, "pixazo")[0].name == "pixazo"
    # It cannot serve this one (no inline images without a public URL): the operator's order decides.
    assert r.choose(ask("make it blue"), 1, "pixazo")[0].name == "sandbox"
    # A choice that is not configured (any more) is ignored; a person's --provider wins over it.
    assert r.choose(ask("a fox"), 0, "fal")[0].name == "atlascloud"
    assert r.choose(ask("a fox --provider atlascloud"), 0, "pixazo")[0].name == "atlascloud"


def test_nobody_can_serve_it_the_preferred_providers_reason_is_given() -> None:
    with pytest.raises(BadInput, match="HIDREAM_PUBLIC_URL"):
        router(["pixazo", "atlascloud"]).choose(ask("make it blue"), 1)
    with pytest.raises(BadInput, match="Atlas Cloud"):
        router(["atlascloud"]).choose(ask("a fox --ar 7:5"), 0)


def test_provider_flag_picks_one_and_an_unconfigured_one_is_refused() -> None:
    r = router(["atlascloud", "pixazo"])
    assert r.choose(ask("a fox --provider pixazo"), 0)[0].name == "pixazo"
    with pytest.raises(BadInput, match=r"`--provider fal` is not configured here: use atlascloud or pixazo"):
        r.choose(ask("a fox --provider fal"), 0)
    # What the named provider cannot do is refused, not sent elsewhere.
    with pytest.raises(BadInput, match="no `dev` model"):
        r.choose(ask("a fox --provider atlascloud --model dev"), 0)
    with pytest.raises(BadInput, match="not a provider name"):
        ask("a fox --provider ../x")


def test_an_open_breaker_is_skipped_unless_every_provider_is_failing() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cool_down=60.0, clock=clock)
    r = router(["atlascloud", "pixazo"], breaker=breaker)
    breaker.failure("atlascloud")
    assert r.choose(ask("a fox"), 0)[0].name == "pixazo"
    # Named explicitly: it is tried whatever its breaker says.
    assert r.choose(ask("a fox --provider atlascloud"), 0)[0].name == "atlascloud"
    breaker.failure("pixazo")
    assert r.choose(ask("a fox"), 0)[0].name == "atlascloud"
    assert set(r.states()) == {"atlascloud", "pixazo"}


def job_at(provider: str, request: ImageRequest, refs: int = 0) -> Job:
    job = make_job()
    job.provider = provider
    job.request = request
    job.reference_media = [f"m{i}" for i in range(refs)]
    return job


@pytest.mark.parametrize(
    "refusal",
    [
        ProviderOutOfCredit("no credit"),
        ProviderBusy("busy"),
        ProviderUnreachable("down"),
    ],
)
def test_refusals_that_took_no_work_move_the_job_to_the_next_that_can_serve_it(refusal: Exception) -> None:
    r = router(["pixazo", "atlascloud", "sandbox"])
    assert isinstance(refusal, ProviderBusy | ProviderOutOfCredit | ProviderUnreachable)
    taker = r.takes_over(job_at("pixazo", ask("a fox")), refusal, [])
    assert taker is not None and taker.name == "atlascloud"
    # A size Atlas Cloud does not offer: the sandbox is next.
    taker = r.takes_over(job_at("pixazo", ask("a fox --size 800x600")), refusal, [])
    assert taker is not None and taker.name == "sandbox"
    # A job that started at the last one (a tenant's choice, or past open breakers) goes to the first
    # that was not tried; once every other one refused it too, it stays and fails.
    taker = r.takes_over(job_at("sandbox", ask("a fox")), refusal, [])
    assert taker is not None and taker.name == "pixazo"
    assert r.takes_over(job_at("sandbox", ask("a fox")), refusal, [], {"pixazo", "atlascloud"}) is None


def test_what_is_never_moved() -> None:
    r = router(["pixazo", "atlascloud"])
    job = job_at("pixazo", ask("a fox"))
    for refusal in (
        SubmitOutcomeUnknown("lost"),
        UnreadableAnswer("a 200 with a body that is no JSON"),
        ProviderRejected("bad prompt"),
        ProviderMisconfigured("bad key"),
    ):
        assert r.takes_over(job, refusal, []) is None
    assert r.takes_over(job, ProviderBusy("busy"), ["pz_1"]) is None  # some requests were made
    made = ProviderBusy("busy")
    made.requests_made = ("pz_1",)
    assert r.takes_over(job, made, []) is None
    assert r.takes_over(job_at("pixazo", ask("a fox --provider pixazo")), ProviderBusy("busy"), []) is None


def test_only_refusals_that_took_no_work_count_against_a_breaker() -> None:
    breaker = CircuitBreaker(threshold=1)
    r = router(["pixazo"], breaker=breaker)
    for neutral in (SubmitOutcomeUnknown("lost"), ProviderRejected("bad"), ProviderMisconfigured("key")):
        r.record("pixazo", neutral)
    assert r.states()["pixazo"].state == "closed"
    r.record("pixazo", ProviderOutOfCredit("no credit"))
    assert r.states()["pixazo"].state == "open"


async def test_move_job_changes_provider_and_cost_on_the_job_and_its_ledger_row(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        job = make_job(job_id=secrets.token_hex(16))
        job.cost_usd = 0.01
        job.provider = "pixazo"
        await store.admit(job, workspace_key="test:w1", dedup_key=None)
        # Only a job that is being submitted can move.
        assert not await store.move_job(
            job.id, from_provider="pixazo", to_provider="atlascloud", cost_usd=0.044
        )
        assert await store.transition(job.id, JobState.SUBMITTING)
        # Only from the provider it is at.
        assert not await store.move_job(job.id, from_provider="fal", to_provider="atlascloud", cost_usd=0.044)
        assert await store.move_job(job.id, from_provider="pixazo", to_provider="atlascloud", cost_usd=0.044)
        moved = await store.job(job.id)
        assert moved is not None and (moved.provider, round(moved.cost_usd, 6)) == ("atlascloud", 0.044)
        row, ledger = await raw_job(store, job.id)
        assert (row["provider"], ledger) == ("atlascloud", "reserved")
        await walk_rest(store, job.id)
        images, dollars = await store.spend("test:u1", scope="user")
        assert (images, round(dollars, 6)) == (1, 0.044)
        # Once it runs at its provider it stays there.
        assert not await store.move_job(
            job.id, from_provider="atlascloud", to_provider="pixazo", cost_usd=0.01
        )


async def walk_rest(store: Store, job_id: str) -> None:
    for state in (JobState.RUNNING, JobState.COMPLETED, JobState.DELIVERING, JobState.DELIVERED):
        assert await store.transition(job_id, state)
