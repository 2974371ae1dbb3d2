"""fal's queue API for HiDream-O1 (docs: provider-docs/fal-hidream-o1-dev-edit.md and fal's queue docs).

Four endpoints under `{FAL_QUEUE_URL}/fal-ai/hidream-o1-image`: the root (full text-to-image), `/edit`,
`/dev` and `/dev/edit`. A submit answers with `request_id`, `status_url` and `response_url`; we keep all
three in the opaque job id so polling reads exactly the URLs fal handed back.

Callbacks (`?fal_webhook=`) are signed: ED25519 over `request_id\\nuser_id\\ntimestamp\\nsha256(body)`,
with keys from fal's JWKS. They are verified on the raw bytes before anything in them is read. fal's
keys sign every account's webhooks, so the signed user id must be ours (FAL_USER_ID, from configuration:
the API key names a key, not the account); without it a signed webhook only prompts a status read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bot.model.config import PluginSettings, http_url
from bot.model.errors import BadInput, CallbackRejected, ProviderBusy, ProviderRejected
from bot.model.requests import DEFAULT_PRESET, DEV_STEPS_MAX, ImageRequest, Tier
from bot.providers.base import HttpProvider, ProviderStatus, ResultImage, SubmitSpec, named_job_id
from bot.providers.jwks import JwksCache
from bot.providers.plugin import KeyedPlugin

log = logging.getLogger(__name__)

KEY_NAME = "FAL_KEY"
APP_ID = "fal-ai/hidream-o1-image"
# fal bills per megapixel of output; like fal's own examples we count 1024x1024 as one megapixel.
PRICE_PER_MEGAPIXEL = 0.005
PIXELS_PER_MEGAPIXEL = 1024 * 1024
MAX_SIDE = 2048
DEV_DEFAULT_STEPS = DEV_STEPS_MAX
DEV_DEFAULT_GUIDANCE = 0.0
# A callback whose timestamp is further than this from our clock may be a replay.
CALLBACK_TOLERANCE_S = 300
_JOB_KEYS = ("id", "status_url", "response_url")
_HEADERS = ("request-id", "user-id", "timestamp", "signature")
_STATES: dict[str, str] = {"IN_QUEUE": "queued", "IN_PROGRESS": "running", "COMPLETED": "completed"}


def endpoint_path(tier: Tier, edit: bool) -> str:
    return "/" + APP_ID + ("/dev" if tier == "dev" else "") + ("/edit" if edit else "")


class FalSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="FAL_")

    key: SecretStr | None = None
    queue_url: str = "https://queue.fal.run"
    # Where fal publishes the keys that sign its webhooks.
    jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"

    # The fal account's user id (fal's dashboard shows it), which fal signs into each webhook: fal signs
    # every account's webhooks with the same keys, so only this tells ours from another account's.
    # Unset: a signed webhook is only a hint, and the job's status is read back with our key.
    user_id: str | None = None

    check_urls = field_validator("queue_url", "jwks_url")(http_url)


class FalProvider(HttpProvider[FalSettings]):
    settings_class = FalSettings
    name = "fal"
    signs_callbacks = True
    # fal's file inputs take base64 data URIs as well as URLs, so edits work without a public URL.
    accepts_data_uris = True
    # The doc names no interval; queue status reads are cheap and jobs take seconds.
    poll_interval = 2.0

    def _configure(self) -> None:
        self.queue_url = self.options.queue_url.rstrip("/")
        self._keys = JwksCache(self.client, self.options.jwks_url, self._clock, owner="fal")

    def validate(self, request: ImageRequest, tier: Tier, n_refs: int) -> None:
        super().validate(request, tier, n_refs)
        if tier == "dev" and request.steps is not None and request.steps > DEV_STEPS_MAX:
            raise BadInput(
                f"`--steps {request.steps}` is too many for fal's dev model: use 1 to {DEV_STEPS_MAX}, "
                "or `--model full`."
            )
        width, height = request.dimensions()
        if width > MAX_SIDE or height > MAX_SIDE:
            raise BadInput(
                f"`--size {width}x{height}` is too large for fal: each side may be at most {MAX_SIDE}."
            )

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        width, height = request.dimensions()
        return PRICE_PER_MEGAPIXEL * width * height / PIXELS_PER_MEGAPIXEL * request.n

    def describe(self) -> list[str]:
        if self.settings.public_url:
            mode = "callbacks (fal_webhook query parameter, ED25519-signed, keys from FAL_JWKS_URL)"
            if not self.options.user_id:
                mode += "; FAL_USER_ID unset, so each is checked by a status read"
        else:
            mode = f"polling the status_url of each job every {self.poll_interval:g} s"
        lines = [f"provider: fal queue at {self.queue_url}, {mode}"]
        for tier in ("full", "dev"):
            for edit in (False, True):
                lines.append(f"  POST {self.queue_url}{endpoint_path(tier, edit)}")
        lines.append(f"  GET  {self.queue_url}/{APP_ID}/requests/{{request_id}}/status (and /response)")
        if self.settings.public_url:
            lines.append(f"  GET  {self.options.jwks_url} (callback signing keys)")
        return lines

    def _headers(self) -> dict[str, str]:
        key = self.options.key
        return {"Authorization": "Key " + (key.get_secret_value() if key is not None else "")}

    def build_body(self, spec: SubmitSpec) -> dict[str, Any]:
        """The documented input: the doc's dev defaults spelled out, fal's own defaults left to fal."""
        request, tier = spec.request, spec.tier
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": image_size(request),
            "num_images": request.n,
            "output_format": request.format,
            "enable_safety_checker": self.settings.safety_checker,
        }
        steps, guidance = request.steps, request.guidance
        if tier == "dev":
            steps = DEV_DEFAULT_STEPS if steps is None else steps
            guidance = DEV_DEFAULT_GUIDANCE if guidance is None else guidance
        if steps is not None:
            body["num_inference_steps"] = steps
        if guidance is not None:
            body["guidance_scale"] = guidance
        if request.seed is not None:
            body["seed"] = request.seed
        if spec.reference_urls:
            body["reference_image_urls"] = list(spec.reference_urls)
            if request.keep_aspect and len(spec.reference_urls) == 1:
                body["keep_original_aspect"] = True
        return body

    async def submit(self, spec: SubmitSpec) -> str:
        url = self.queue_url + endpoint_path(spec.tier, bool(spec.reference_urls))
        params = {"fal_webhook": spec.callback_url} if spec.callback_url else None
        answer = await self.call(
            "POST",
            url,
            idempotent=False,
            json=self.build_body(spec),
            headers=self._headers(),
            params=params,
            key_name=KEY_NAME,
        )
        request_id = self.require_job_id(
            answer.get("request_id") if isinstance(answer, dict) else None, answer, "request_id"
        )
        job = {
            "id": request_id,
            "status_url": self._own_url(answer.get("status_url"), request_id, "/status"),
            "response_url": self._own_url(answer.get("response_url"), request_id, ""),
        }
        return json.dumps(job, separators=(",", ":"))

    def _own_url(self, given: object, request_id: str, suffix: str) -> str:
        """fal's URL for this job, but only on the configured queue host: our key goes with it."""
        if isinstance(given, str) and _same_origin(given, self.queue_url):
            return given
        return f"{self.queue_url}/{APP_ID}/requests/{request_id}{suffix}"

    async def status(self, provider_job_id: str) -> ProviderStatus:
        job = _read_job_id(provider_job_id)
        answer = await self.call(
            "GET", job["status_url"], idempotent=True, headers=self._headers(), key_name=KEY_NAME
        )
        if not isinstance(answer, dict):
            raise ProviderBusy("fal sent a status answer that could not be read.", detail=repr(answer)[:200])
        raw = str(answer.get("status") or "").upper()
        state = _STATES.get(raw)
        if state is None:
            log.warning("fal reported an unknown status %r; still waiting", raw[:40])
            return ProviderStatus(state="running")
        if state == "queued":
            position = answer.get("queue_position")
            return ProviderStatus(
                state="queued", queue_position=position if isinstance(position, int) else None
            )
        if state == "running":
            return ProviderStatus(state="running")
        if answer.get("error"):
            return ProviderStatus(state="failed", error=failure_message(answer.get("error"), None))
        return await self._result(job["response_url"])

    async def _result(self, response_url: str) -> ProviderStatus:
        try:
            output = await self.call(
                "GET", response_url, idempotent=True, headers=self._headers(), key_name=KEY_NAME
            )
        except ProviderRejected as exc:
            # A finished request whose result is a 4xx is a generation that failed, not a bad submit.
            reason = exc.user_message.partition(": ")[2]
            return ProviderStatus(state="failed", error=failure_message(reason, None))
        if not isinstance(output, dict):
            raise ProviderBusy("fal sent a result that could not be read.", detail=repr(output)[:200])
        return read_output(output)

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        signed = await self._verify(headers, body)
        payload = self.callback_object(body)
        named = {payload.get("request_id"), payload.get("gateway_request_id")}
        if signed not in named:
            raise CallbackRejected("fal callback body names another request than its signature", status=400)
        if provider_job_id is not None and _read_job_id(provider_job_id)["id"] not in named:
            raise CallbackRejected("fal callback is for another job", status=400)
        status = read_callback(payload)
        # Signed, but perhaps for another fal account: its word is read back from fal with our key.
        return status if self.options.user_id else None

    def callback_job_id(self, body: bytes) -> str | None:
        """The job id (as `submit` makes it) of the request a verified callback names, on our queue host."""
        request_id = named_job_id(body, lambda payload: payload.get("request_id"))
        if request_id is None:
            return None
        job = {
            "id": request_id,
            "status_url": self._own_url(None, request_id, "/status"),
            "response_url": self._own_url(None, request_id, ""),
        }
        return json.dumps(job, separators=(",", ":"))

    async def _verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check the signature on the raw body; return the signed request id."""
        lower = {k.lower(): v for k, v in headers.items()}
        values = [lower.get(f"x-fal-webhook-{name}", "").strip() for name in _HEADERS]
        if not all(values):
            raise CallbackRejected("fal callback without its signature headers")
        request_id, user_id, timestamp, signature_hex = values
        expected = self.options.user_id
        if expected and user_id != expected:
            raise CallbackRejected("fal callback is signed for another fal account")
        try:
            sent_at = int(timestamp)
            signature = bytes.fromhex(signature_hex)
        except ValueError:
            raise CallbackRejected("fal callback with an unreadable timestamp or signature") from None
        if abs(self._clock() - sent_at) > CALLBACK_TOLERANCE_S:
            raise CallbackRejected("fal callback timestamp is more than 300 s off (stale or replayed)")
        message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()
        if not await self._keys.verify(signature, message):
            raise CallbackRejected("fal callback signature does not match any of fal's keys")
        return request_id


def image_size(request: ImageRequest) -> str | dict[str, int]:
    """Exact pixels where the bot works the size out (a size, a ratio, the reference's shape, the
    largest size), else a preset by name. Always sent: fal's own default would be 2048x2048."""
    if request.sized:
        width, height = request.dimensions()
        return {"width": width, "height": height}
    if request.preset is not None:
        return request.preset
    return DEFAULT_PRESET


def read_output(output: Mapping[str, Any]) -> ProviderStatus:
    """The model's output (from response_url or a callback's payload) as a finished status."""
    images = output.get("images")
    if not isinstance(images, list) or not images:
        return ProviderStatus(state="failed", error="fal finished the job but returned no image.")
    flags = output.get("has_nsfw_concepts")
    flags = flags if isinstance(flags, list) else []
    result: list[ResultImage] = []
    for i, image in enumerate(images):
        url = image.get("url") if isinstance(image, dict) else None
        if isinstance(url, str) and url:
            result.append(ResultImage(url=url, nsfw=bool(flags[i]) if i < len(flags) else False))
    if not result:
        return ProviderStatus(state="failed", error="fal finished the job but returned no image.")
    seed = output.get("seed")
    return ProviderStatus(state="completed", images=result, seed=seed if isinstance(seed, int) else None)


def read_callback(payload: Mapping[str, Any]) -> ProviderStatus | None:
    status = str(payload.get("status") or "").upper()
    body = payload.get("payload")
    if status == "OK":
        if isinstance(body, dict):
            return read_output(body)
        # fal could not attach the output (`payload_error`): read it from the queue instead.
        return None
    if status == "ERROR":
        return ProviderStatus(state="failed", error=failure_message(payload.get("error"), body))
    raise CallbackRejected(f"fal callback with an unknown status {status[:20]!r}", status=400)


def failure_message(error: object, payload: object) -> str:
    """Plain words for a failed fal job, with fal's own reason where it gave a readable one."""
    reason = ""
    if isinstance(payload, dict):
        detail = payload.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            reason = str(detail[0].get("msg") or "")
        elif isinstance(detail, str):
            reason = detail
    if not reason and isinstance(error, str):
        reason = error
    reason = " ".join(reason.split())[:300]
    return "fal could not make the image" + (f": {reason}" if reason else ".")


def _read_job_id(provider_job_id: str) -> dict[str, str]:
    try:
        job = json.loads(provider_job_id)
    except ValueError:
        job = None
    if not isinstance(job, dict) or not all(isinstance(job.get(k), str) for k in _JOB_KEYS):
        raise ValueError(f"not a fal job id: {provider_job_id[:80]!r}")
    return {k: str(v) for k, v in job.items()}


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


plugin = KeyedPlugin(FalProvider, key="key", preference=30)
