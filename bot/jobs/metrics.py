"""What `GET /metrics` tells Prometheus: this replica's counters, and the database's global figures.

Two kinds of figure, because several replicas may share one database and each serves its own /metrics:
- What this replica did (jobs it finished, callbacks it answered, refusals, provider errors, time to
  deliver) are process counters: each event happens on exactly one replica, so `sum()` over the
  replicas gives the whole.
- What only the database knows (the queue, unfinished jobs by state, images and dollars spent) is read
  from the store at scrape time. Every replica reports the same value: aggregate those with `max()`.
  The store is asynchronous and prometheus_client's collectors are not, so the server awaits
  `StoreFigures.refresh` before it renders the text, and the collector yields what that read.

Every figure lives in a CollectorRegistry of the bot's own (never prometheus_client's global one), so
several bots in one process (tests, benchmarks) keep separate counts. No label names a tenant or a
user: their number is unbounded, and the operators' page is where spend per tenant is shown.

The text leaves out prometheus_client's automatic `_created` series (the time each counter or histogram
child was made): `hidream_jobs_created` reads like a count of jobs, and Prometheus needs none of them.
They are dropped from this registry's output only (`WithoutCreated`), not switched off for the whole
process with prometheus_client's global `disable_created_metrics()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.model.errors import ProviderError, QuotaExceeded
from bot.model.jobs import SPENT, UNFINISHED, Job, JobState
from storage.quota import utc_day
from storage.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds from admission to delivery: the sandbox's instant jobs up to the default 15-minute deadline.
DELIVER_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900)
# What a refused callback's status says about it: few values, so a label can carry them.
CALLBACK_REASONS = {400: "malformed", 401: "signature", 403: "signature", 404: "unknown_token"}


BREAKER_STATES = ("closed", "open", "half-open")


@dataclass
class Figures:
    """The database's global figures at one scrape."""

    unfinished: dict[str, int] = field(default_factory=dict)
    # (provider, period) -> (images, dollars), period "today" (UTC) or "total".
    spent: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)


class StoreFigures(Collector):
    """The figures that must be global, read from the store by `refresh` (awaited before each render)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.figures = Figures()

    async def refresh(self) -> None:
        self.figures = await read_figures(self.store)

    def describe(self) -> list[Metric]:
        return []  # the families are only known once read; nothing to check for clashes at registration

    def collect(self) -> Iterator[Metric]:
        unfinished = GaugeMetricFamily(
            "hidream_jobs_unfinished",
            "Unfinished jobs in the database by state (all replicas)",
            labels=["state"],
        )
        for state in sorted(s.value for s in UNFINISHED):
            unfinished.add_metric([state], self.figures.unfinished.get(state, 0))
        yield unfinished
        yield GaugeMetricFamily(
            "hidream_queue_depth",
            "Jobs waiting in the database for a provider to take them (all replicas)",
            value=self.figures.unfinished.get(JobState.QUEUED.value, 0),
        )
        images = GaugeMetricFamily(
            "hidream_images_spent",
            "Images delivered and counted as spent, by provider; period today (UTC) or total",
            labels=["provider", "period"],
        )
        dollars = GaugeMetricFamily(
            "hidream_spend_usd",
            "Dollars spent at providers, by provider; period today (UTC) or total",
            labels=["provider", "period"],
        )
        for (provider, period), (count, usd) in sorted(self.figures.spent.items()):
            images.add_metric([provider, period], count)
            dollars.add_metric([provider, period], usd)
        yield images
        yield dollars


class Breakers(Collector):
    def __init__(self, health: Callable[[], dict[str, tuple[str, int]]]) -> None:
        self.health = health

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "hidream_provider_breaker",
            "Each provider's circuit breaker on this replica: 1 for its current state",
            labels=["provider", "state"],
        )
        failures = GaugeMetricFamily(
            "hidream_provider_failures_in_a_row",
            "Submits refused in a row by each provider (out of credit, rate-limited, failing, unreachable)",
            labels=["provider"],
        )
        for name, (mode, count) in self.health().items():
            for each in BREAKER_STATES:
                state.add_metric([name, each], 1.0 if mode == each else 0.0)
            failures.add_metric([name], float(count))
        yield state
        yield failures


async def read_figures(store: Store) -> Figures:
    figures = Figures()
    unfinished = sorted(UNFINISHED)
    # Only unfinished states: the index on state reads those rows, never the history of finished jobs.
    for state, count in await store.database.read_apart(
        f"SELECT state, COUNT(*) FROM jobs WHERE state IN ({', '.join('?' for _ in unfinished)}) GROUP BY state",
        *unfinished,
    ):
        figures.unfinished[str(state)] = int(count)
    marks = ", ".join("?" for _ in SPENT)
    # A job row keeps its provider after retention clears its bulky data; a missing one is "unknown".
    rows = await store.database.read_apart(
        "SELECT COALESCE(j.provider, 'unknown'), l.day = ?, SUM(l.images), SUM(l.cost_usd) "
        "FROM ledger l LEFT JOIN jobs j ON j.id = l.job_id "
        f"WHERE l.state IN ({marks}) GROUP BY 1, 2",
        utc_day(store.now()),
        *SPENT,
    )
    for provider, today, count, usd in rows:
        periods = ("today", "total") if today else ("total",)
        for period in periods:
            had = figures.spent.get((str(provider), period), (0, 0.0))
            figures.spent[(str(provider), period)] = (had[0] + int(count), had[1] + float(usd))
    return figures


class WithoutCreated(Collector):
    """A registry's families without the `<name>_created` samples of counters, histograms and summaries."""

    KINDS = ("counter", "histogram", "summary", "gaugehistogram")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.type in self.KINDS:
                created = f"{family.name}_created"
                kept = Metric(family.name, family.documentation, family.type, family.unit)
                kept.samples = [s for s in family.samples if s.name != created]
                family = kept
            yield family


class Metrics:
    """The bot's registry and the hooks the engine, the runner and the server call where events happen."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter(
            "hidream_jobs", "Jobs this replica brought to a final state", ["state", "provider"], registry=r
        )
        self.deliver_seconds = Histogram(
            "hidream_deliver_seconds",
            "Seconds from a job's admission to its delivery, for jobs this replica delivered",
            ["provider"],
            buckets=DELIVER_BUCKETS,
            registry=r,
        )
        self.provider_errors = Counter(
            "hidream_provider_errors", "Errors from providers by class", ["provider", "error"], registry=r
        )
        self.refusals = Counter(
            "hidream_quota_refusals",
            "Requests refused by a limit (user's daily quota, tenant's ceiling, monthly budget)",
            ["limit"],
            registry=r,
        )
        self.callbacks = Counter(
            "hidream_callbacks",
            "Provider callbacks this replica answered, accepted or refused (with the reason)",
            ["outcome", "reason"],
            registry=r,
        )
        self.active = Gauge(
            "hidream_active_jobs", "Jobs this replica is working on now (holding a slot)", registry=r
        )
        self.store_figures = StoreFigures(store)
        r.register(self.store_figures)

    def watch_providers(self, health: Callable[[], dict[str, tuple[str, int]]]) -> None:
        """Where each provider's circuit breaker is read at each scrape: name -> (state, failures in a
        row), state `closed`, `open` or `half-open` (this replica's: each keeps its own breakers)."""
        self.registry.register(Breakers(health))

    def watch(self, active_jobs: Callable[[], int]) -> None:
        """Where the active-jobs gauge reads its value (the runner's slots), at each scrape."""
        self.active.set_function(lambda: float(active_jobs()))

    async def render(self) -> bytes:
        """The text Prometheus scrapes: the store's figures read now, then every family."""
        await self.store_figures.refresh()
        return generate_latest(WithoutCreated(self.registry))

    # --- hooks ------------------------------------------------------------------------------------

    def finished(self, job: Job, state: JobState, now: float) -> None:
        self.jobs.labels(state=state.value, provider=job.provider).inc()
        if state is JobState.DELIVERED:
            self.deliver_seconds.labels(provider=job.provider).observe(max(0.0, now - job.created_at))

    def provider_error(self, provider: str, error: ProviderError | str) -> None:
        name = error if isinstance(error, str) else type(error).__name__
        self.provider_errors.labels(provider=provider, error=name).inc()

    def refused(self, exc: QuotaExceeded) -> None:
        self.refusals.labels(limit=exc.limit).inc()

    def callback(self, status: int) -> None:
        if status < 300:
            self.callbacks.labels(outcome="accepted", reason="").inc()
        else:
            reason = CALLBACK_REASONS.get(status, "unavailable" if status >= 500 else "other")
            self.callbacks.labels(outcome="refused", reason=reason).inc()
