"""Pixazo's HiDream O1 gateway (docs: provider-docs/pixazo-hidream-o1.txt).

Four endpoints, one per tier and mode, each at `/{model}/v1/{model}-request`:
hidream-o1-image, hidream-o1-image-edit, hidream-o1-image-dev, hidream-o1-image-dev-edit.
Every job is read back from the one status endpoint `GET /v2/requests/status/{request_id}`.

Pixazo does not sign its callbacks (the `X-Webhook-URL` header only names where to post), so a
callback is a hint: the engine reads the job's status from Pixazo before believing anything.

Resending: a submit goes out again only on 429/5xx or when the connection could not be opened; when
the answer to a sent submit is lost, the job is `SubmitOutcomeUnknown` and is never sent again
(Pixazo bills per request). The status read is safe to repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic_settings import SettingsConfigDict

from bot.model.errors import BadInput, ProviderBusy
from bot.model.requests import DEFAULT_PRESET, DEV_STEPS_MAX, ImageRequest, Tier
from bot.providers.base import HttpProvider, ProviderStatus, ResultImage, SubmitSpec, named_job_id
from bot.providers.plugin import ApiKeySettings, KeyedPlugin

log = logging.getLogger(__name__)

KEY_NAME = "PIXAZO_API_KEY"
STATUS_PATH = "/v2/requests/status/{request_id}"
# Price per image in US dollars, the same at every resolution.
PRICES: dict[Tier, float] = {"full": 0.01, "dev": 0.005}
# The doc's defaults: the distilled dev model is tuned for 28 steps and no guidance.
DEFAULT_STEPS: dict[Tier, int] = {"full": 50, "dev": 28}
DEFAULT_GUIDANCE: dict[Tier, float] = {"full": 5.0, "dev": 0.0}
FULL_GUIDANCE = (1.0, 15.0)
MAX_SIDE = 2048
_STATES: dict[str, str] = {
    "QUEUED": "queued",
    "PROCESSING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "ERROR": "failed",
}


def model_id(tier: Tier, edit: bool) -> str:
    """The model name that also forms the endpoint's path."""
    return "hidream-o1-image" + ("-dev" if tier == "dev" else "") + ("-edit" if edit else "")


def endpoint_path(tier: Tier, edit: bool) -> str:
    model = model_id(tier, edit)
    return f"/{model}/v1/{model}-request"


class PixazoSettings(ApiKeySettings):
    model_config = SettingsConfigDict(env_prefix="PIXAZO_")

    base_url: str = "https://gateway.pixazo.ai"


class PixazoProvider(HttpProvider[PixazoSettings]):
    settings_class = PixazoSettings
    name = "pixazo"
    display_name = "Pixazo"
    signs_callbacks = False
    # Reference images must be URLs Pixazo can download (the dev-edit doc asks for public HTTPS).
    accepts_data_uris = False
    # The doc suggests polling every 5 to 10 seconds.
    poll_interval = 5.0

    @property
    def base_url(self) -> str:
        return self.options.base_url.rstrip("/")

    def validate(self, request: ImageRequest, tier: Tier, n_refs: int) -> None:
        super().validate(request, tier, n_refs)
        if request.guidance is not None and tier == "full":
            lo, hi = FULL_GUIDANCE
            if not lo <= request.guidance <= hi:
                raise BadInput(
                    f"`--cfg {request.guidance:g}` is out of range for Pixazo's full model: "
                    f"use {lo:g} to {hi:g}."
                )
        if tier == "dev" and request.steps is not None and request.steps > DEV_STEPS_MAX:
            raise BadInput(
                f"`--steps {request.steps}` is too many for Pixazo's dev model: use 1 to {DEV_STEPS_MAX}."
            )
        width, height = request.dimensions()
        if width > MAX_SIDE or height > MAX_SIDE:
            raise BadInput(
                f"`--size {width}x{height}` is too large for Pixazo: each side may be at most {MAX_SIDE}."
            )

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return PRICES[tier] * request.n

    def describe(self) -> list[str]:
        mode = "callbacks (X-Webhook-URL header)" if self.settings.public_url else "polling every 5 s"
        lines = [f"provider: Pixazo at {self.base_url}, {mode}"]
        for tier in ("full", "dev"):
            for edit in (False, True):
                lines.append(f"  POST {self.base_url}{endpoint_path(tier, edit)}")
        lines.append(f"  GET  {self.base_url}{STATUS_PATH}")
        return lines

    def _headers(self, callback_url: str | None = None) -> dict[str, str]:
        key = self.options.api_key
        headers = {
            "Cache-Control": "no-cache",
            "Ocp-Apim-Subscription-Key": key.get_secret_value() if key is not None else "",
        }
        if callback_url:
            headers["X-Webhook-URL"] = callback_url
        return headers

    def build_body(self, spec: SubmitSpec) -> dict[str, Any]:
        """The documented JSON body: every field explicit, the doc's defaults where the user gave none."""
        request, tier = spec.request, spec.tier
        edit = bool(spec.reference_urls)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "num_inference_steps": request.steps if request.steps is not None else DEFAULT_STEPS[tier],
            "guidance_scale": request.guidance if request.guidance is not None else DEFAULT_GUIDANCE[tier],
            "num_images": request.n,
            "output_format": request.format,
            "enable_safety_checker": self.settings.safety_checker,
        }
        size = image_size(request, edit)
        if size is not None:
            body["image_size"] = size
        if request.seed is not None:
            body["seed"] = request.seed
        if edit:
            body["reference_image_urls"] = list(spec.reference_urls)
            if request.keep_aspect and len(spec.reference_urls) == 1:
                body["keep_original_aspect"] = True
        return body

    async def submit(self, spec: SubmitSpec) -> str:
        edit = bool(spec.reference_urls)
        url = self.base_url + endpoint_path(spec.tier, edit)
        answer = await self.call(
            "POST",
            url,
            idempotent=False,
            json=self.build_body(spec),
            headers=self._headers(spec.callback_url),
            key_name=KEY_NAME,
        )
        request_id = answer.get("request_id") if isinstance(answer, dict) else None
        return self.require_job_id(request_id, answer, "request_id")

    async def status(self, provider_job_id: str) -> ProviderStatus:
        url = self.base_url + STATUS_PATH.format(request_id=provider_job_id)
        answer = await self.call("GET", url, idempotent=True, headers=self._headers(), key_name=KEY_NAME)
        if not isinstance(answer, dict):
            raise ProviderBusy(
                "Pixazo sent a status answer that could not be read.", detail=repr(answer)[:200]
            )
        return read_status(answer)

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        """Unsigned, so only a hint; refuse what cannot be a Pixazo callback for this job."""
        self.check_hint(provider_job_id, body, _named_id)
        return None

    def callback_job_id(self, body: bytes) -> str | None:
        return named_job_id(body, _named_id)


def _named_id(payload: dict[str, Any]) -> object:
    """The status document names its job as `request_id` (the submit's answer names it the same)."""
    return payload.get("request_id")


def image_size(request: ImageRequest, edit: bool) -> str | dict[str, int] | None:
    """Exact pixels where the bot works the size out (a size, a ratio, the reference's shape, the
    largest size), else a preset by name; an edit with no size asked leaves it to Pixazo."""
    if request.sized:
        width, height = request.dimensions()
        return {"width": width, "height": height}
    if request.preset is not None:
        return request.preset
    return None if edit else DEFAULT_PRESET


def read_status(answer: Mapping[str, Any]) -> ProviderStatus:
    """One status document (from polling or a callback) as a ProviderStatus."""
    raw = str(answer.get("status") or "").upper()
    state = _STATES.get(raw)
    if state is None:
        log.warning("Pixazo reported an unknown status %r; still waiting", raw[:40])
        return ProviderStatus(state="running")
    if state == "failed":
        return ProviderStatus(state="failed", error=failure_message(raw, answer.get("error")))
    if state != "completed":
        return ProviderStatus(state="queued" if state == "queued" else "running")
    output = answer.get("output")
    urls = output.get("media_url") if isinstance(output, dict) else None
    if isinstance(urls, str):
        urls = [urls]
    images = [ResultImage(url=u) for u in urls or [] if isinstance(u, str) and u]
    if not images:
        return ProviderStatus(state="failed", error="Pixazo finished the job but sent back no image.")
    return ProviderStatus(state="completed", images=images)


def failure_message(raw_status: str, error: object) -> str:
    reason = " ".join(str(error).split())[:300] if error else ""
    if raw_status == "ERROR":
        text = "Pixazo had a system error and could not make the image (you were not charged for it)"
    else:
        text = "Pixazo could not make the image"
    return f"{text}: {reason}" if reason else f"{text}."


plugin = KeyedPlugin(PixazoProvider, key="api_key", preference=10)
