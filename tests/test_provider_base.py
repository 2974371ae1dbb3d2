"""The HTTP seam every provider shares, tested once: a tiny provider over the seam's MockTransport.

Each provider's own module tests only what is its own (endpoints, bodies, headers, key name, status
and callback shapes); what `HttpProvider` does for all of them (sending, mapping answers to errors,
the resend policy and its delays, the callback-hint and missing-job-id checks) is asserted here.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict

from bot import transport
from bot.model.config import PluginSettings, Settings
from bot.model.errors import (
    CallbackRejected,
    ProviderBusy,
    ProviderMisconfigured,
    ProviderOutOfCredit,
    ProviderRejected,
    ProviderUnreachable,
    SubmitOutcomeUnknown,
)
from bot.model.requests import ImageRequest, Tier
from bot.providers.base import HttpProvider, ProviderStatus, RetryPolicy, SubmitSpec
from bot.providers.mock_transport import MockTransport, answer
from tests.fakes.queue_common import Sleeps

KEY = "echo-secret-0451"
KEY_NAME = "ECHO_API_KEY"
URL = "http://127.0.0.1:9/v1/jobs"

Cue = Callable[[transport.Request], transport.Answer]


def reply(
    code: int, body: Any = None, *, text: str | None = None, headers: dict[str, str] | None = None
) -> Cue:
    """An answer, made afresh for each request (a response's body can be read only once)."""

    def made(request: transport.Request) -> transport.Answer:
        if text is not None:
            return answer(code, text.encode(), headers)
        sent = {"Content-Type": "application/json", **(headers or {})}
        return answer(code, json.dumps({} if body is None else body).encode(), sent)

    return made


def fail(kind: type[transport.TransportError]) -> Cue:
    """A transport failure as the seam reports it, for the request that reached the transport."""

    def broken(request: transport.Request) -> transport.Answer:
        raise kind("simulated", request=request)

    return broken


class Script:
    """The MockTransport handler: answers each request with the next cue; the last one repeats."""

    def __init__(self) -> None:
        self.cues: list[Cue] = [reply(200)]
        self.requests: list[transport.Request] = []

    def play(self, *cues: Cue) -> None:
        self.cues = list(cues)

    def __call__(self, request: transport.Request) -> transport.Answer:
        self.requests.append(request)
        cue = self.cues.pop(0) if len(self.cues) > 1 else self.cues[0]
        return cue(request)


class EchoSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="ECHO_")

    region: str = "eu"


class EchoProvider(HttpProvider[EchoSettings]):
    """The least a provider needs: a submit and a status read through `call`."""

    name = "echo"
    settings_class = EchoSettings
    display_name = "Echo Cloud"

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return []

    async def submit(self, spec: SubmitSpec) -> str:
        answer = await self.call(
            "POST", URL, idempotent=False, json={"prompt": spec.request.prompt}, headers=_auth(),
            key_name=KEY_NAME,
        )  # fmt: skip
        return self.require_job_id(answer.get("id") if isinstance(answer, dict) else None, answer, "id")

    async def status(self, provider_job_id: str) -> ProviderStatus:
        answer = await self.call("GET", f"{URL}/{provider_job_id}", idempotent=True, headers=_auth())
        return ProviderStatus(state=answer["state"])


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def provider(script: Script, sleeps: Sleeps) -> AsyncIterator[EchoProvider]:
    async with MockTransport(script) as client:
        yield EchoProvider(Settings(_env_file=None), client, retry=RetryPolicy(base_delay=0), sleep=sleeps)


async def call(provider: EchoProvider, idempotent: bool) -> Any:
    method = "GET" if idempotent else "POST"
    return await provider.call(method, URL, idempotent=idempotent, headers=_auth(), key_name=KEY_NAME)


both = pytest.mark.parametrize("idempotent", [False, True], ids=["submit", "read"])


# --- busy answers and the resend policy's delays -------------------------------------------------


@both
@pytest.mark.parametrize("code", [429, 500, 502, 503])
async def test_busy_answers_are_resent_up_to_the_attempts_then_busy(
    provider, script, sleeps, code, idempotent
) -> None:
    script.play(reply(code, {"message": "slow down"}))
    with pytest.raises(ProviderBusy) as caught:
        await call(provider, idempotent)
    assert caught.value.user_message == (
        f"echo is busy or failing right now (HTTP {code}); please try again later."
    )
    assert caught.value.detail is not None and caught.value.detail.startswith(f"HTTP {code}: ")
    assert len(script.requests) == provider.retry.attempts == 4
    assert sleeps.delays == [0, 0, 0]


@both
async def test_busy_then_an_answer_is_resent_instantly(provider, script, sleeps, idempotent) -> None:
    script.play(reply(429), reply(500), reply(200, {"id": "job-1"}))
    assert await call(provider, idempotent) == {"id": "job-1"}
    assert len(script.requests) == 3
    assert sleeps.delays == [0, 0]


async def test_retry_after_is_honoured_up_to_the_longest_delay(provider, script, sleeps) -> None:
    script.play(
        reply(429, headers={"Retry-After": "7"}),
        reply(503, headers={"Retry-After": "0.5"}),
        reply(429, headers={"Retry-After": "120"}),
        reply(200, {"id": "job-1"}),
    )
    assert await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full")) == "job-1"
    assert sleeps.delays == [7.0, 0.5, provider.retry.max_delay] == [7.0, 0.5, 20.0]


async def test_without_retry_after_the_delay_doubles_up_to_the_cap(
    provider, script, sleeps, monkeypatch
) -> None:
    # Full jitter picks at random below a doubling bound; the top of the range shows the bound.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    provider.retry = RetryPolicy(attempts=5, base_delay=1, max_delay=6)
    script.play(reply(500), reply(503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}), reply(502))
    with pytest.raises(ProviderBusy):
        await call(provider, idempotent=False)
    assert sleeps.delays == [1, 2, 4, 6]


# --- answers that are refusals -------------------------------------------------------------------


@both
@pytest.mark.parametrize("code", [401, 403])
async def test_refused_credentials_name_the_setting_never_the_key(
    provider, script, sleeps, caplog, code, idempotent
) -> None:
    script.play(reply(code, {"message": "Access denied due to invalid subscription key."}))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderMisconfigured) as caught:
        await call(provider, idempotent)
    assert caught.value.user_message == (
        "The bot is misconfigured: the image provider did not accept its credentials. "
        "An operator has been told."
    )
    assert caught.value.detail == f"HTTP {code}; check {KEY_NAME}"
    assert KEY_NAME in caplog.text
    assert script.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in caplog.text and KEY not in str(caught.value)
    assert len(script.requests) == 1 and sleeps.delays == []


async def test_payment_required_is_out_of_credit(provider, script, sleeps) -> None:
    script.play(reply(402, {"error": "Insufficient Balance", "message": "Your wallet is empty."}))
    with pytest.raises(ProviderOutOfCredit) as caught:
        await call(provider, idempotent=False)
    assert caught.value.user_message == "The echo account is out of credit."
    assert len(script.requests) == 1 and sleeps.delays == []


REFUSALS = [
    pytest.param(
        400, {"error": "Model not found", "message": "Model 'hidream-o1-image' not found or is disabled"},
        "Model 'hidream-o1-image' not found or is disabled", id="pixazo-message-over-error",
    ),
    pytest.param(400, {"code": 400, "message": "Bad request"}, "Bad request", id="atlascloud"),
    pytest.param(
        400, {"code": 400, "message": "Invalid request parameters", "data": None},
        "Invalid request parameters", id="wavespeed",
    ),
    pytest.param(400, {"detail": "Bad request"}, "Bad request", id="fal-detail-text"),
    pytest.param(
        422, {"detail": [{"loc": ["body", "num_inference_steps"], "msg": "must be an integer from 1 to 28"}]},
        "must be an integer from 1 to 28", id="fal-validation-list",
    ),
    pytest.param(400, {"error": {"message": "prompt is empty"}}, "prompt is empty", id="nested-error"),
    pytest.param(404, {"msg": "no such model"}, "no such model", id="msg"),
    pytest.param(400, {"message": "  spread\n over   lines "}, "spread over lines", id="one-line"),
    pytest.param(400, {"message": "x" * 500}, "x" * 300, id="bounded"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "body", "reason"), REFUSALS)
async def test_refusal_carries_the_providers_reason(provider, script, sleeps, code, body, reason) -> None:
    script.play(reply(code, body))
    with pytest.raises(ProviderRejected) as caught:
        await call(provider, idempotent=False)
    assert caught.value.user_message == f"echo refused the request: {reason}"
    assert caught.value.detail == f"HTTP {code}"
    assert len(script.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize("answer", [reply(409, text="<html>Conflict</html>"), reply(400, ["no", "reason"])])
async def test_refusal_without_a_reason_says_so_plainly(provider, script, answer) -> None:
    script.play(answer)
    with pytest.raises(ProviderRejected) as caught:
        await call(provider, idempotent=True)
    assert caught.value.user_message == "echo refused the request."
    assert len(script.requests) == 1


@both
async def test_unreadable_answer_is_busy_and_never_resent(provider, script, sleeps, idempotent) -> None:
    script.play(reply(200, text="<html>maintenance</html>"), reply(200, {"id": "job-1"}))
    with pytest.raises(ProviderBusy) as caught:
        await call(provider, idempotent)
    assert caught.value.user_message == "echo sent an answer that could not be read."
    assert caught.value.detail == "HTTP 200: <html>maintenance</html>"
    assert len(script.requests) == 1 and sleeps.delays == []


# --- transport failures --------------------------------------------------------------------------


@both
@pytest.mark.parametrize("kind", [transport.ConnectError, transport.ConnectTimeout, transport.PoolTimeout])
async def test_no_connection_is_retried_then_unreachable(provider, script, sleeps, kind, idempotent) -> None:
    script.play(fail(kind))
    with pytest.raises(ProviderUnreachable) as caught:
        await call(provider, idempotent)
    assert caught.value.user_message == "Could not reach echo; please try again in a minute."
    assert caught.value.detail == kind.__name__
    assert isinstance(caught.value.__cause__, kind)
    assert len(script.requests) == 4 and sleeps.delays == [0, 0, 0]


async def test_a_submit_that_never_left_is_sent_again(provider, script, sleeps) -> None:
    script.play(fail(transport.ConnectError), reply(200, {"id": "job-1"}))
    assert await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full")) == "job-1"
    assert len(script.requests) == 2 and sleeps.delays == [0]


@pytest.mark.parametrize(
    "kind", [transport.ReadError, transport.RemoteProtocolError, transport.ReadTimeout, transport.WriteError]
)
async def test_answer_lost_after_sending_a_submit_is_never_resent(provider, script, sleeps, kind) -> None:
    script.play(fail(kind), reply(200, {"id": "job-1"}))
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    assert caught.value.user_message == (
        "The connection to echo broke after the request was sent, so it was not sent again "
        "(that could make and bill it twice)."
    )
    assert caught.value.detail == kind.__name__
    assert len(script.requests) == 1 and sleeps.delays == []


async def test_answer_lost_on_a_read_is_read_again(provider, script, sleeps) -> None:
    script.play(
        fail(transport.ReadError), fail(transport.RemoteProtocolError), reply(200, {"state": "running"})
    )
    assert await provider.status("job-1") == ProviderStatus(state="running")
    assert len(script.requests) == 3 and sleeps.delays == [0, 0]


async def test_answer_lost_on_every_read_is_unreachable(provider, script, sleeps) -> None:
    script.play(fail(transport.ReadTimeout))
    with pytest.raises(ProviderUnreachable) as caught:
        await provider.status("job-1")
    assert caught.value.user_message == "Lost the connection to echo."
    assert caught.value.detail == "ReadTimeout"
    assert len(script.requests) == 4 and sleeps.delays == [0, 0, 0]


# --- an answer with no job id --------------------------------------------------------------------


@pytest.mark.parametrize("answer", [{}, {"id": ""}, {"id": 7}, {"id": None}, ["job-1"]])
async def test_submit_answer_without_a_job_id_is_an_unknown_outcome(provider, script, sleeps, answer) -> None:
    script.play(reply(200, answer), reply(200, {"id": "job-2"}))
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    assert (
        caught.value.user_message == "Echo Cloud accepted the request but did not say which job it started."
    )
    assert caught.value.detail == f"answer without id: {answer}"
    assert len(script.requests) == 1 and sleeps.delays == []


def test_require_job_id_returns_the_id_and_bounds_what_it_logs(provider) -> None:
    assert provider.require_job_id("job-1", {"data": {"id": "job-1"}}, "data.id") == "job-1"
    provider.display_name = ""
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        provider.require_job_id(None, {"data": "y" * 400}, "data.id")
    assert caught.value.user_message == "echo accepted the request but did not say which job it started."
    assert caught.value.detail == "answer without data.id: " + str({"data": "y" * 400})[:200]


# --- callbacks that are only hints ---------------------------------------------------------------


def named(payload: dict[str, Any]) -> object:
    return payload.get("job")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "Echo Cloud callback body is not JSON"),
        (b"", "Echo Cloud callback body is not JSON"),
        (b"[1, 2]", "Echo Cloud callback body is not a JSON object"),
        (b'"text"', "Echo Cloud callback body is not a JSON object"),
        (b'{"job": "job-2", "state": "completed"}', "Echo Cloud callback names another job"),
    ],
)
def test_hint_that_cannot_be_this_jobs_is_refused(provider, body, reason) -> None:
    with pytest.raises(CallbackRejected) as caught:
        provider.check_hint("job-1", body, named)
    assert str(caught.value) == reason
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("job_id", "body"),
    [
        ("job-1", b'{"job": "job-1", "state": "failed"}'),
        ("job-1", b'{"state": "completed"}'),
        ("job-1", b'{"job": 7}'),
        (None, b'{"job": "job-2"}'),  # arrived before the submit's answer: nothing to compare yet
        ("", b'{"job": "job-2"}'),
    ],
)
def test_hint_that_may_be_this_jobs_is_accepted(provider, job_id, body) -> None:
    provider.check_hint(job_id, body, named)


def test_hint_may_name_any_part_of_a_job_made_of_several(provider) -> None:
    provider.check_hint("job-1,job-2", b'{"job": "job-2"}', named, separator=",")
    with pytest.raises(CallbackRejected, match="another job"):
        provider.check_hint("job-1,job-2", b'{"job": "job-3"}', named, separator=",")
    # Without a separator the job id is one id, compared whole.
    with pytest.raises(CallbackRejected, match="another job"):
        provider.check_hint("job-1,job-2", b'{"job": "job-2"}', named)


# --- the shared constructor ----------------------------------------------------------------------


async def test_configure_hook_runs_once_with_everything_set(script, sleeps) -> None:
    seen: list[tuple[object, ...]] = []

    class Configured(EchoProvider):
        def _configure(self) -> None:
            seen.append((self.settings, self.client, self.retry, self._sleep, self._clock))

    settings, retry = Settings(_env_file=None), RetryPolicy(attempts=2)
    async with MockTransport(script) as client:
        provider = Configured(settings, client, retry=retry, sleep=sleeps, clock=lambda: 42.0)
        assert seen == [(settings, client, retry, sleeps, provider._clock)]
        assert provider._clock() == 42.0
