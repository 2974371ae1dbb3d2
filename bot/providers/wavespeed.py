"""WaveSpeed's HiDream-O1 API (docs: provider-docs/wavespeed-hidream-o1-*.txt).

Four endpoints, `POST /api/v3/wavespeed-ai/hidream-o1-image[-dev]/{text-to-image|edit}`, each making one
image per request: `--n 3` is three requests, and the job id we hand the engine is their ids joined by
",". Results are read from `GET /api/v3/predictions/{id}/result`.

WaveSpeed's sizes are `W*H` with each side 256 to 4096 and 2560*1440 to 4096*4096 pixels in all, so the
bot's presets and aspect ratios (about one megapixel) are scaled up to the smallest valid size.

Callbacks (`?webhook=`) carry an HMAC-SHA256 signature over `{webhook-id}.{webhook-timestamp}.{body}`
keyed with WAVESPEED_WEBHOOK_SECRET (without its `whsec_` prefix). Without that secret the bot cannot
tell a genuine callback from a forged one, so each is only a hint to read the status from WaveSpeed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from bot.model.config import Settings
from bot.model.errors import BadInput, CallbackRejected, ProviderBusy
from bot.model.requests import SEED_MAX, ImageRequest, Tier
from bot.providers.base import HttpProvider, ProviderStatus, ResultImage, SubmitSpec, named_job_id
from bot.providers.plugin import ApiKeySettings, KeyedPlugin

log = logging.getLogger(__name__)

KEY_NAME = "WAVESPEED_API_KEY"
MODELS: dict[Tier, str] = {"full": "hidream-o1-image", "dev": "hidream-o1-image-dev"}
RESULT_PATH = "/api/v3/predictions/{id}/result"
# A flat price per image; the dev model costs half.
PRICES: dict[Tier, float] = {"full": 0.04, "dev": 0.02}
SIDE_MIN, SIDE_MAX = 256, 4096
PIXELS_MIN, PIXELS_MAX = 2560 * 1440, 4096 * 4096
MAX_REFERENCE_BYTES = 50 * 1024 * 1024
ASPECT_MIN, ASPECT_MAX = 0.25, 4.0
CALLBACK_TOLERANCE_S = 300
_STATES: dict[str, str] = {
    "created": "queued",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
}


def endpoint_path(tier: Tier, edit: bool) -> str:
    return f"/api/v3/wavespeed-ai/{MODELS[tier]}/" + ("edit" if edit else "text-to-image")


def output_size(request: ImageRequest) -> tuple[int, int]:
    """The W*H to ask for: an exact `--size` as given, a preset or ratio scaled into WaveSpeed's range."""
    width, height = request.dimensions()
    if request.width is not None and request.preset is None and request.aspect is None:
        return width, height
    if width * height >= PIXELS_MIN:
        return width, height
    scale = math.sqrt(PIXELS_MIN / (width * height))
    # Rounded up to a multiple of 16 so the total never falls below the minimum.
    return (
        min(SIDE_MAX, math.ceil(width * scale / 16) * 16),
        min(SIDE_MAX, math.ceil(height * scale / 16) * 16),
    )


class WaveSpeedSettings(ApiKeySettings):
    model_config = SettingsConfigDict(env_prefix="WAVESPEED_")

    base_url: str = "https://api.wavespeed.ai"
    # Signing secret of the account's webhooks (whsec_...).
    webhook_secret: SecretStr | None = None


class WaveSpeedProvider(HttpProvider[WaveSpeedSettings]):
    settings_class = WaveSpeedSettings
    name = "wavespeed"
    display_name = "WaveSpeed"
    signs_callbacks = True
    # The edit doc takes "public URL or base64 data URI" for each source image.
    accepts_data_uris = True
    # The doc names no interval; a result read is one cheap GET per image.
    poll_interval = 2.0

    def _configure(self) -> None:
        self.base_url = self.options.base_url.rstrip("/")
        secret = self.options.webhook_secret
        raw = secret.get_secret_value() if secret is not None else ""
        self._hmac_key = raw.removeprefix("whsec_").encode() if raw else None
        self.signs_callbacks = self._hmac_key is not None

    def validate(self, request: ImageRequest, tier: Tier, n_refs: int) -> None:
        super().validate(request, tier, n_refs)
        if request.steps is not None:
            raise BadInput(f"`--steps {request.steps}` is not offered by WaveSpeed: leave it out.")
        if request.guidance is not None:
            raise BadInput(f"`--cfg {request.guidance:g}` is not offered by WaveSpeed: leave it out.")
        width, height = output_size(request)
        if not (SIDE_MIN <= width <= SIDE_MAX and SIDE_MIN <= height <= SIDE_MAX) or not (
            PIXELS_MIN <= width * height <= PIXELS_MAX
        ):
            raise BadInput(
                f"`--size {width}x{height}` is outside what WaveSpeed makes: each side {SIDE_MIN} to "
                f"{SIDE_MAX} and 2560x1440 to 4096x4096 pixels in all (e.g. `--size 2048x2048`), "
                "or give `--ar W:H` and the bot picks a valid size."
            )

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return PRICES[tier] * request.n

    def describe(self) -> list[str]:
        if not self.settings.public_url:
            mode = f"polling each prediction every {self.poll_interval:g} s"
        elif self._hmac_key is not None:
            mode = "callbacks (webhook query parameter, HMAC-signed with WAVESPEED_WEBHOOK_SECRET)"
        else:
            mode = "callbacks as hints only (WAVESPEED_WEBHOOK_SECRET unset: each is checked by polling)"
        lines = [f"provider: WaveSpeed at {self.base_url}, one request per image, {mode}"]
        for tier in ("full", "dev"):
            for edit in (False, True):
                lines.append(f"  POST {self.base_url}{endpoint_path(tier, edit)}")
        lines.append(f"  GET  {self.base_url}{RESULT_PATH}")
        return lines

    def _headers(self) -> dict[str, str]:
        key = self.options.api_key
        return {"Authorization": "Bearer " + (key.get_secret_value() if key is not None else "")}

    def build_body(self, spec: SubmitSpec, index: int) -> dict[str, Any]:
        """The body of the index-th of n requests. A fixed seed steps by one so the images differ."""
        request = spec.request
        width, height = output_size(request)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "size": f"{width}*{height}",
            # Always explicit: the bot's own default (png) holds for every provider, and a stored request
            # no longer tells whether the user chose it, so WaveSpeed's jpeg default never applies.
            "output_format": request.format,
            "enable_sync_mode": False,
            "enable_base64_output": False,
        }
        if request.seed is not None:
            body["seed"] = (request.seed + index) % (SEED_MAX + 1)
        if spec.reference_urls:
            body["images"] = list(spec.reference_urls)
        return body

    async def submit(self, spec: SubmitSpec) -> str:
        for ref in spec.reference_urls:
            check_reference(ref)
        url = self.base_url + endpoint_path(spec.tier, bool(spec.reference_urls))
        params = {"webhook": spec.callback_url} if spec.callback_url else None

        async def one(index: int) -> str:
            answer = await self.call(
                "POST",
                url,
                idempotent=False,
                json=self.build_body(spec, index),
                headers=self._headers(),
                params=params,
                key_name=KEY_NAME,
            )
            return self._prediction_id(answer)

        return await self.submit_each(spec, one)

    def requests_for(self, request: ImageRequest) -> int:
        return request.n

    async def status(self, provider_job_id: str) -> ProviderStatus:
        ids = [part for part in provider_job_id.split(",") if part]
        if not ids:
            raise ValueError("empty WaveSpeed job id")
        predictions = await asyncio.gather(*(self._result(pid) for pid in ids))
        return combine(predictions)

    async def _result(self, prediction_id: str) -> Mapping[str, Any]:
        url = self.base_url + RESULT_PATH.format(id=prediction_id)
        answer = await self.call("GET", url, idempotent=True, headers=self._headers(), key_name=KEY_NAME)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ProviderBusy("WaveSpeed sent a result that could not be read.", detail=repr(answer)[:200])
        return data

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        if self._hmac_key is not None:
            self._verify(headers, body)
        try:
            payload = json.loads(body)
        except ValueError:
            raise CallbackRejected("WaveSpeed callback body is not JSON", status=400) from None
        data = payload.get("data") if isinstance(payload, dict) and "data" in payload else payload
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise CallbackRejected("WaveSpeed callback body is not a prediction", status=400)
        ids = provider_job_id.split(",") if provider_job_id else None
        if ids is not None and data["id"] not in ids:
            raise CallbackRejected("WaveSpeed callback is for another job", status=400)
        if self._hmac_key is None:
            return None
        status = read_prediction(data)
        # One callback speaks for one prediction; when the job has several (or we do not yet know how
        # many), a finished one is only a cue to read them all.
        if status.state == "completed" and (ids is None or len(ids) > 1):
            return None
        return status

    def callback_job_id(self, body: bytes) -> str | None:
        """The prediction's id: one request of the job, which may need several."""
        return named_job_id(body, _named_id)

    def _prediction_id(self, answer: object) -> str:
        data = answer.get("data") if isinstance(answer, dict) else None
        pid = data.get("id") if isinstance(data, dict) else None
        # The job's ids are joined with ",": one inside an id would read as two predictions.
        return self.require_job_id(None if isinstance(pid, str) and "," in pid else pid, answer, "data.id")

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        assert self._hmac_key is not None
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("webhook-id", "").strip()
        timestamp = lower.get("webhook-timestamp", "").strip()
        signatures = lower.get("webhook-signature", "").split()
        if not (webhook_id and timestamp and signatures):
            raise CallbackRejected("WaveSpeed callback without its signature headers")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise CallbackRejected("WaveSpeed callback with an unreadable timestamp") from None
        if abs(self._clock() - sent_at) > CALLBACK_TOLERANCE_S:
            raise CallbackRejected("WaveSpeed callback timestamp is more than 300 s off (stale or replayed)")
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        expected = hmac.new(self._hmac_key, signed, hashlib.sha256).hexdigest()
        for entry in signatures:
            version, _, value = entry.partition(",")
            if version == "v3" and hmac.compare_digest(value.strip().lower(), expected):
                return
        raise CallbackRejected("WaveSpeed callback signature does not match")


def _named_id(payload: dict[str, Any]) -> object:
    data = payload.get("data") if "data" in payload else payload
    return data.get("id") if isinstance(data, dict) else None


def read_prediction(data: Mapping[str, Any]) -> ProviderStatus:
    """One prediction (from polling or a callback) as a status."""
    raw = str(data.get("status") or "").lower()
    state = _STATES.get(raw)
    if state is None:
        log.warning("WaveSpeed reported an unknown status %r; still waiting", raw[:40])
        return ProviderStatus(state="running")
    if state == "failed":
        return ProviderStatus(state="failed", error=failure_message(data.get("error")))
    if state != "completed":
        return ProviderStatus(state=state)  # type: ignore[arg-type]
    outputs = data.get("outputs")
    flags = data.get("has_nsfw_contents")
    flags = flags if isinstance(flags, list) else []
    images = [
        ResultImage(url=url, nsfw=bool(flags[i]) if i < len(flags) else False)
        for i, url in enumerate(outputs if isinstance(outputs, list) else [])
        if isinstance(url, str) and url
    ]
    if not images:
        return ProviderStatus(state="failed", error="WaveSpeed finished the job but returned no image.")
    return ProviderStatus(state="completed", images=images)


def combine(predictions: list[Mapping[str, Any]]) -> ProviderStatus:
    """n one-image predictions as one job: failed if any failed, completed when all are."""
    statuses = [read_prediction(p) for p in predictions]
    for status in statuses:
        if status.state == "failed":
            return status
    if all(s.state == "completed" for s in statuses):
        return ProviderStatus(state="completed", images=[img for s in statuses for img in s.images])
    if any(s.state != "queued" for s in statuses):
        return ProviderStatus(state="running")
    return ProviderStatus(state="queued")


def failure_message(error: object) -> str:
    reason = " ".join(str(error).split())[:300] if isinstance(error, str) else ""
    return "WaveSpeed could not make the image" + (f": {reason}" if reason else ".")


def check_reference(ref: str) -> None:
    """An inline image must meet the edit doc's limits; a URL is WaveSpeed's to fetch and judge."""
    if not ref.startswith("data:"):
        return
    header, _, encoded = ref.partition(",")
    if not header.endswith(";base64"):
        raise BadInput("A reference image could not be sent to WaveSpeed (it is not base64-encoded).")
    if len(encoded) * 3 // 4 > MAX_REFERENCE_BYTES:
        raise BadInput("A reference image is larger than WaveSpeed's limit of 50 MB.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as image:
            width, height = image.size
    except (binascii.Error, ValueError, UnidentifiedImageError):
        raise BadInput("A reference image could not be read as an image.") from None
    if not ASPECT_MIN <= width / height <= ASPECT_MAX:
        raise BadInput(
            f"A reference image is {width}x{height}: WaveSpeed edits images with an aspect ratio "
            "between 1:4 and 4:1."
        )


class WaveSpeedPlugin(KeyedPlugin[WaveSpeedSettings]):
    def warnings(self, settings: WaveSpeedSettings, core: Settings) -> list[str]:
        if core.public_url and settings.webhook_secret is None:
            return [
                "WAVESPEED_WEBHOOK_SECRET is empty: callbacks cannot be verified and only prompt a status read"
            ]
        return []


plugin = WaveSpeedPlugin(WaveSpeedProvider, key="api_key", preference=40)
