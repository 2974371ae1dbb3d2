"""What every provider is, and the one HTTP seam they share.

A provider module only builds its requests and parses its answers and callbacks. Status codes and
transport errors become our own errors here, once, in three layers: `HttpProvider.send` (one
exchange: transport errors), `check_status` and `read_json` (an answer: status codes, its body) and
`HttpProvider.call` (the retries: what is sent again, how often, after which delay).

Resending policy (also in docs/reliability.md): a submit is sent again only when we know the provider did not
act on it: the connection could not be opened (nothing was sent), or the provider answered 429 or
5xx. When the request was sent and the answer was lost (read timeout, connection reset after
sending), the outcome is unknown: we raise `SubmitOutcomeUnknown` and never send it again; the
runner waits for the provider's callback, which names the job's id (`callback_job_id`), and until the
job's deadline, then refunds. A job made of several requests (`requests_for`) is sent one request at
a time; a lost answer among them is `LostAnswer`, which names the requests made before it, so that
exactly one request is in doubt and the rest can be sent once it is known (`SubmitSpec.started`).
"""

from __future__ import annotations

import asyncio
import json as json_module
import logging
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

from bot.model.config import PluginSettings, Settings
from bot.model.errors import (
    BadInput,
    CallbackRejected,
    ProviderBusy,
    ProviderError,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
)
from bot.model.requests import ImageRequest, Tier
from bot.providers import capabilities as documented
from bot.providers.capabilities import Capabilities
from bot.providers.responses import check_status, read_json, retry_after
from bot.transport import NOTHING_SENT, Answer, Transport, TransportError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
OptionsT = TypeVar("OptionsT", bound=PluginSettings)
State = Literal["queued", "running", "completed", "failed"]


@dataclass(frozen=True)
class SubmitSpec:
    """Everything a provider needs to start one job."""

    job_id: str
    request: ImageRequest
    tier: Tier
    # Reference images as the provider will fetch them: signed /media/ links or data URIs.
    reference_urls: list[str] = field(default_factory=list)
    # Where to call back, or None to be polled.
    callback_url: str | None = None
    # Ids of this job's requests already made (after a lost answer was recovered): send only the rest.
    started: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultImage:
    url: str  # http(s) URL or data: URI
    nsfw: bool = False


@dataclass(frozen=True)
class ProviderStatus:
    state: State
    images: list[ResultImage] = field(default_factory=list)
    # Plain words for the requester when state == "failed".
    error: str | None = None
    queue_position: int | None = None
    seed: int | None = None


class Provider(ABC):
    """One HiDream provider. Long-lived: an async context manager."""

    name: str = ""
    # True when callbacks are signed and their body can be trusted once verified.
    signs_callbacks: bool = False
    # True when reference images may be sent inline as data: URIs (no public URL needed).
    accepts_data_uris: bool = False
    # Suggested first poll interval in seconds (the engine backs off from there).
    poll_interval: float = 5.0
    # What the provider documents (bot/providers/capabilities.py): its models, sizes, knobs and price,
    # which `validate` checks a request against. None: only the common ranges are checked.
    capabilities: Capabilities | None = None

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def tiers(self) -> tuple[Tier, ...]:
        """Model tiers this provider offers (in any mode)."""
        caps = self.capabilities
        if caps is None:
            return ("full", "dev")
        return tuple(t for t in documented.TIERS if any(t in caps.tiers(m) for m in documented.MODES))

    def validate(
        self, request: ImageRequest, tier: Tier, n_refs: int, *, catalogue: Sequence[Capabilities] = ()
    ) -> None:
        """Raise BadInput for what this provider would refuse: a model, knob or value it does not
        document (naming those of `catalogue`, every provider the bot knows, that offer the knob)."""
        if self.capabilities is None and tier not in self.tiers():
            raise BadInput(
                f"The {self.name} provider offers no `{tier}` model; use {' or '.join(self.tiers())}."
            )
        if request.keep_aspect and n_refs != 1:
            raise BadInput("`--keep-aspect` works only when editing exactly one image.")
        if self.capabilities is not None:
            documented.check(self.capabilities, request, tier, n_refs, catalogue)

    @abstractmethod
    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        """Price of this request in US dollars, from the provider's published table."""

    @abstractmethod
    def describe(self) -> list[str]:
        """Lines for `hidream-bot check`: the endpoints this provider will call."""

    @abstractmethod
    async def submit(self, spec: SubmitSpec) -> str:
        """Start a job; return the provider's id for it (opaque to the engine)."""

    @abstractmethod
    async def status(self, provider_job_id: str) -> ProviderStatus:
        """Read a job's status from the provider."""

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        """Verify a callback on its raw bytes and read it.

        Raise CallbackRejected for a bad signature or body. Return None when the callback is only a
        hint (unsigned providers): the engine then reads the status from the provider itself.
        """
        return None

    def callback_job_id(self, body: bytes) -> str | None:
        """The provider's id of the job (or of one request of it) that a callback's body names, read
        when the job does not know its id (a lost submit answer); None when it names no usable id."""
        return None

    def requests_for(self, request: ImageRequest) -> int:
        """How many requests `submit` makes for this request (APIs that make one image a request)."""
        return 1

    def join_ids(self, ids: Sequence[str]) -> str:
        """The one provider job id of a job made of these requests, as `submit` returns it."""
        return ",".join(ids)


class LostAnswer(SubmitOutcomeUnknown):
    """The answer to one of a job's several requests was lost; `started` were made (and answered)
    before it, and the ones after it were never sent."""

    def __init__(self, lost: SubmitOutcomeUnknown, started: Sequence[str]) -> None:
        super().__init__(lost.user_message, detail=lost.detail)
        self.started = list(started)


# What a provider's job id looks like: it goes into URL paths, so nothing that could leave them.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


def named_job_id(body: bytes, pick: Callable[[dict[str, Any]], object]) -> str | None:
    """The job id a callback's JSON body names (`pick` finds it), if it is one; never one that
    joins several ids or could step out of a status URL's path."""
    try:
        payload = json_module.loads(body)
    except ValueError:
        return None
    named = pick(payload) if isinstance(payload, dict) else None
    return named if isinstance(named, str) and _JOB_ID.fullmatch(named) else None


def status_to_dict(status: ProviderStatus) -> dict[str, Any]:
    return asdict(status)


def status_from_dict(data: Mapping[str, Any]) -> ProviderStatus:
    return ProviderStatus(
        state=data["state"],
        images=[ResultImage(**i) for i in data.get("images", [])],
        error=data.get("error"),
        queue_position=data.get("queue_position"),
        seed=data.get("seed"),
    )


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        # Full jitter: spreads retries of many jobs apart.
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class HttpProvider(Provider, ABC, Generic[OptionsT]):
    """A provider spoken to over HTTP through an injected, pooled `Transport` (the seam).

    `settings` are the core's (public URL, safety checker); `options` the provider's own, of its
    `settings_class`, read from the same sources when not given. `sleep` and `clock` are injected so
    tests make retries instant and check callback timestamps without waiting."""

    # The provider's own settings (its key, its base URL), with its own environment prefix.
    settings_class: type[OptionsT]
    # The provider's name as people write it, for messages that quote it; `name` when unset.
    display_name: str = ""

    def __init__(
        self,
        settings: Settings,
        client: Transport,
        *,
        options: OptionsT | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.options: OptionsT = options if options is not None else settings.section(self.settings_class)
        self.client = client
        self.retry = retry or RetryPolicy()
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._clock = clock
        self._configure()

    def _configure(self) -> None:
        """Hook: derive what this provider needs from its settings (a base URL, a key) once.

        Runs at the end of `__init__`, so subclasses keep the shared constructor signature that the
        app and the tests call."""

    async def call(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        key_name: str = "API key",
    ) -> Any:
        """Send one request, retrying what is safe to retry; return the parsed JSON body.

        `idempotent=False` (a submit): resent only when the provider cannot have acted on it.
        `key_name` names the setting in the operator's log on 401/403, never its value.
        """
        attempt = 0
        while True:
            response: Answer | None = None
            try:
                response = await self.send(
                    method, url, idempotent=idempotent, json=json, headers=headers, params=params
                )
                check_status(self.name, response, key_name)
            except RESENDABLE:
                if attempt + 1 >= self.retry.attempts:
                    raise
            else:
                # Outside the retried part: an unreadable answer may mean the job was made.
                return read_json(self.name, response)
            await self._sleep(self.retry.delay(attempt, retry_after(response)))
            attempt += 1

    async def send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One HTTP exchange, whatever its status; a transport failure becomes one of our errors."""
        sent = dict(headers or {})
        body = None
        if json is not None:
            body = encode_json(json)
            sent.setdefault("Content-Type", "application/json")
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        try:
            return await self.client.do_request(method, url, headers=sent, body=body)
        except _NOTHING_SENT as exc:
            raise ProviderUnreachable(
                f"Could not reach {self.name}; please try again in a minute.", detail=type(exc).__name__
            ) from exc
        except TransportError as exc:
            if idempotent:
                raise ProviderUnreachable(
                    f"Lost the connection to {self.name}.", detail=type(exc).__name__
                ) from exc
            # Sent, answer lost: the provider may have started (and billed) the job.
            raise SubmitOutcomeUnknown(
                f"The connection to {self.name} broke after the request was sent, so it was not sent "
                "again (that could make and bill it twice).",
                detail=type(exc).__name__,
            ) from exc

    async def submit_each(self, spec: SubmitSpec, one: Callable[[int], Awaitable[str]]) -> str:
        """Make the job's requests in order (`one(index)` makes one and returns its id), skipping
        those already `started`; their ids joined. A lost answer becomes `LostAnswer`; another
        failure after some were made names them in the log, since they are made and billed."""
        ids = list(spec.started)
        total = self.requests_for(spec.request)
        for index in range(len(ids), total):
            try:
                ids.append(await one(index))
            except SubmitOutcomeUnknown as exc:
                raise LostAnswer(exc, ids) from exc
            except Exception as exc:
                if ids:
                    if isinstance(exc, ProviderError):
                        exc.requests_made = tuple(ids)
                    log.warning(
                        "%s job %s: request %d of %d failed after %s were started",
                        self.display_name or self.name,
                        spec.job_id,
                        index + 1,
                        total,
                        self.join_ids(ids),
                    )
                raise
        return self.join_ids(ids)

    def require_job_id(self, found: object, answer: object, field: str) -> str:
        """`found`, the job id read from a submit's `answer`, when it is one.

        Otherwise the provider accepted something we cannot follow, and sending it again could bill
        it twice, so the outcome is unknown. `field` names where the id should have been."""
        if isinstance(found, str) and found:
            return found
        raise SubmitOutcomeUnknown(
            f"{self.display_name or self.name} accepted the request but did not say which job it started.",
            detail=f"answer without {field}: {str(answer)[:200]}",
        )

    def callback_object(self, body: bytes) -> dict[str, Any]:
        """A callback's body as the JSON object every provider sends; anything else is refused (400)."""
        who = self.display_name or self.name
        try:
            payload = json_module.loads(body)
        except ValueError:
            raise CallbackRejected(f"{who} callback body is not JSON", status=400) from None
        if not isinstance(payload, dict):
            raise CallbackRejected(f"{who} callback body is not a JSON object", status=400)
        return payload

    def check_hint(
        self,
        provider_job_id: str | None,
        body: bytes,
        named_id: Callable[[dict[str, Any]], object],
        *,
        separator: str | None = None,
    ) -> None:
        """Refuse an unsigned callback that cannot be for this job; believe nothing else in it.

        Such a callback is only a cue to read the status from the provider. `named_id` picks the id
        the body names; `separator` splits a job id that joins several of the provider's ids."""
        who = self.display_name or self.name
        named = named_id(self.callback_object(body))
        if not provider_job_id or not isinstance(named, str):
            return
        ours = provider_job_id.split(separator) if separator else [provider_job_id]
        if named not in ours:
            raise CallbackRejected(f"{who} callback names another job", status=400)


def encode_json(value: Any) -> bytes:
    """A request's JSON body: compact UTF-8, no NaN (which no provider's parser takes)."""
    return json_module.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# Nothing reached the provider, so a non-idempotent request is as safe to send again as any.
_NOTHING_SENT = NOTHING_SENT
# What `call` sends again: ProviderUnreachable, which `send` raises only when the provider cannot have
# acted on the request or acting twice does no harm (an idempotent call), and ProviderBusy from
# `check_status` (429/5xx: the provider did not take the work). A lost answer to a non-idempotent
# request is SubmitOutcomeUnknown instead, and is never resent.
RESENDABLE = (ProviderUnreachable, ProviderBusy)
