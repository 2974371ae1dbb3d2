"""Several providers at once: which one a request goes to, and which one takes a job over when its
provider refuses the submit.

Routing at admission: the providers in the order `HIDREAM_PROVIDERS` gives; a request goes to the
first that can serve it (its tier, its limits, and for an edit without HIDREAM_PUBLIC_URL inline
images) and whose circuit breaker lets it through; `--provider <name>` names one instead.

Failover at submit: a refusal that says the provider did not take the work (out of credit, rate
limited, failing, unreachable) moves a job that has nothing started anywhere to the next provider
in the order that can serve it. A submit whose outcome is unknown is never moved (the first provider
may have made, and billed, it), nor a job that asked for its provider by name.

The circuit breaker is in-process: each replica keeps its own view of each provider's health.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.model.errors import (
    BadInput,
    ProviderBusy,
    ProviderError,
    ProviderOutOfCredit,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
    UnreadableAnswer,
)
from bot.model.jobs import Job
from bot.model.requests import ImageRequest, Tier, check_tier_limits
from bot.providers.base import Provider
from bot.providers.capabilities import Capabilities

# Refusals after which the provider did not take the work and another may: out of credit (402),
# rate limited or failing (429/5xx after the provider's own retries), unreachable. Not a success whose
# body could not be read (UnreadableAnswer, a ProviderBusy): that work may have been taken.
PASSABLE = (ProviderOutOfCredit, ProviderBusy, ProviderUnreachable)
FAILURES_TO_OPEN = 3
COOL_DOWN_SECONDS = 60.0

BreakerMode = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class BreakerState:
    """One provider's breaker as an operator sees it (for /metrics and the operators' page)."""

    state: BreakerMode
    consecutive_failures: int
    # When an open breaker lets one trial through (clock seconds); None when closed.
    retry_at: float | None = None


@dataclass
class _Health:
    failures: int = 0
    opened_at: float | None = None
    trial_at: float | None = None  # when the half-open trial was let through


class CircuitBreaker:
    """After `threshold` failures in a row a provider is skipped for `cool_down` seconds; then one
    trial request is let through (half-open): its success closes the breaker, its failure opens it
    again. A trial that never reports back frees the way again after another cool-down."""

    def __init__(
        self,
        threshold: int = FAILURES_TO_OPEN,
        cool_down: float = COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cool_down = cool_down
        self.clock = clock
        self._health: dict[str, _Health] = {}

    def _of(self, name: str) -> _Health:
        return self._health.setdefault(name, _Health())

    def is_open(self, name: str) -> bool:
        """Whether `name` is to be skipped now (without taking its half-open trial)."""
        health = self._of(name)
        if health.opened_at is None:
            return False
        now = self.clock()
        if now < health.opened_at + self.cool_down:
            return True
        return health.trial_at is not None and now < health.trial_at + self.cool_down

    def allows(self, name: str) -> bool:
        """Whether a request may go to `name` now; once a cool-down is over this takes the one trial."""
        if self.is_open(name):
            return False
        health = self._of(name)
        if health.opened_at is not None:
            health.trial_at = self.clock()
        return True

    def success(self, name: str) -> None:
        self._health[name] = _Health()

    def failure(self, name: str) -> None:
        health = self._of(name)
        health.failures += 1
        if health.opened_at is not None or health.failures >= self.threshold:
            health.opened_at, health.trial_at = self.clock(), None

    def states(self, names: Sequence[str] = ()) -> dict[str, BreakerState]:
        """Each provider's state (those named, and every one seen)."""
        result = {}
        for name in [*names, *(n for n in self._health if n not in names)]:
            health = self._of(name)
            if health.opened_at is None:
                result[name] = BreakerState("closed", health.failures)
                continue
            mode: BreakerMode = "open" if self.is_open(name) else "half-open"
            retry_at = health.opened_at + self.cool_down
            if health.trial_at is not None:
                retry_at = health.trial_at + self.cool_down
            result[name] = BreakerState(mode, health.failures, retry_at)
        return result


class Router:
    """Chooses a provider for each request, and the next one for a job whose provider refused it."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        order: Sequence[str],
        default_tier: Tier,
        inline_only: Callable[[], bool],
        breaker: CircuitBreaker | None = None,
        catalogue: Sequence[Capabilities] = (),
    ) -> None:
        self.providers = providers
        # Every provider the bot knows (configured or not), whose refusals name those that offer a knob.
        self.catalogue = list(catalogue) or [
            p.capabilities for p in providers.values() if p.capabilities is not None
        ]
        self.order = list(order)
        self.default_tier = default_tier
        # True when reference images must go inline (no HIDREAM_PUBLIC_URL): asked each time.
        self.inline_only = inline_only
        self.breaker = breaker or CircuitBreaker()

    def choose(self, request: ImageRequest, n_refs: int, prefer: str | None = None) -> tuple[Provider, Tier]:
        """The provider and tier for a new request: the one it names, else the first that can serve it
        (`prefer`, the tenant's choice, first). Raises BadInput (nothing spent) when no configured
        provider can serve it: the most preferred one's reason."""
        if request.provider:
            names = [self._named(request.provider)]
        elif prefer in self.order:
            names = [prefer, *(name for name in self.order if name != prefer)]
        else:
            names = self.order
        servable: list[tuple[Provider, Tier]] = []
        first_refusal: BadInput | None = None
        for name in names:
            provider = self.providers[name]
            tier = self._tier(provider, request.model)
            try:
                self.check(provider, request, tier, n_refs)
            except BadInput as exc:
                first_refusal = first_refusal or exc
                continue
            if request.provider or self.breaker.allows(name):
                return provider, tier
            servable.append((provider, tier))
        if servable:
            return servable[0]  # every one that could serve it is failing: try the preferred anyway
        assert first_refusal is not None
        raise first_refusal

    def _named(self, name: str) -> str:
        if name in self.providers:
            return name
        raise BadInput(
            f"`--provider {name}` is not configured here: use {' or '.join(self.order)}.",
            detail="not in HIDREAM_PROVIDERS",
        )

    def _tier(self, provider: Provider, asked: Tier | None) -> Tier:
        if asked is not None:
            return asked  # validated against the provider's tiers with a clear message
        offered = provider.tiers()
        return self.default_tier if self.default_tier in offered else offered[0]

    def check(self, provider: Provider, request: ImageRequest, tier: Tier, n_refs: int) -> None:
        """Raise BadInput when `provider` cannot serve the request at `tier`."""
        check_tier_limits(request, tier)
        provider.validate(request, tier, n_refs, catalogue=self.catalogue)
        if n_refs and self.inline_only() and not provider.accepts_data_uris:
            raise BadInput(
                f"Editing images with the {provider.name} provider needs the bot to be reachable from the "
                "internet: an operator must set HIDREAM_PUBLIC_URL."
            )

    def takes_over(
        self, job: Job, exc: ProviderError, started: Sequence[str], tried: Collection[str] = ()
    ) -> Provider | None:
        """The provider that takes `job` over after its provider refused the submit with `exc`: the
        first other one, in order, that can serve it and was not `tried` for it already (the job may
        have started at any of them: a tenant's preferred one, or past an open breaker); None when
        the job stays where it is (and fails)."""
        if isinstance(exc, SubmitOutcomeUnknown | UnreadableAnswer) or not isinstance(exc, PASSABLE):
            return None  # the provider may have taken the work: never sent to a second one
        if started or exc.requests_made or job.request.provider or job.provider not in self.order:
            return None
        for name in self.order:
            if name == job.provider or name in tried:
                continue
            provider = self.providers[name]
            try:
                self.check(provider, job.request, job.tier, len(job.reference_media))
            except BadInput:
                continue
            if self.breaker.allows(name):
                return provider
        return None

    def record(self, name: str, exc: BaseException | None) -> None:
        """A submit's outcome at `name`, for its breaker: a success, or a refusal of the kinds above."""
        if exc is None:
            self.breaker.success(name)
        elif isinstance(exc, PASSABLE) and not isinstance(exc, SubmitOutcomeUnknown):
            self.breaker.failure(name)

    def states(self) -> dict[str, BreakerState]:
        return self.breaker.states(self.order)
