"""Atlas Cloud's HiDream O1 1.5 (docs: provider-docs/atlascloud-hidream-o1-1.5.txt).

One submit endpoint, `POST /api/v1/model/generateImage`, with a flat JSON body whose `model` picks
the mode: `hidream-o1-1.5/text-to-image`, or `hidream-o1-1.5/edit` with `reference_image_urls`
(one URL edits, two or more personalize). Jobs are read back at `GET /api/v1/model/prediction/{id}`.

The documented parameters have no image count, so `--n 3` is three submits whose ids are joined
with "," into one provider job id; the job is complete when all of them are, and fails when one
fails. Each submit follows the base resend policy (never resent when its outcome is unknown; the
runner recovers a lost answer from its callback and then sends the rest); when a later one fails,
the error ends the job and the images already started are named in the log.

Callbacks (`webhook_url` in the body) are signed, as Atlas Cloud's "Webhooks" doc describes: Ed25519
over `<X-AtlasCloud-Webhook-Timestamp>.<raw body>`, the key named by `-Key-Id` among those published
at `/api/v1/webhooks/jwks.json` on the API host, the signature (base64url) in `-Signature-Ed25519`.
The legacy HMAC `-Signature` header sent during Atlas Cloud's migration is ignored: we hold no HMAC
secret. The body is `{session_id, event_type, status: OK|ERROR, payload, error}`, `payload` being the
prediction as a status read returns it and `session_id` its id (also in `-Id`). A verified terminal
callback settles a one-prediction job without reading its status; for a job of several predictions a
completed one is a cue to read them all (a failed one fails the job). Unsigned, forged, stale (more
than 5 minutes off) and replayed callbacks are refused; polling remains the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any

from pydantic_settings import SettingsConfigDict

from bot.model.errors import BadInput, CallbackRejected, ProviderBusy
from bot.model.requests import DEFAULT_PRESET, PRESETS, SEED_MAX, ImageRequest, Tier
from bot.providers.base import HttpProvider, ProviderStatus, ResultImage, SubmitSpec, named_job_id
from bot.providers.jwks import JwksCache, b64url_decode
from bot.providers.plugin import ApiKeySettings, KeyedPlugin

log = logging.getLogger(__name__)

KEY_NAME = "ATLASCLOUD_API_KEY"
SUBMIT_PATH = "/api/v1/model/generateImage"
STATUS_PATH = "/api/v1/model/prediction/{id}"
JWKS_PATH = "/api/v1/webhooks/jwks.json"
WEBHOOK_HEADER = "x-atlascloud-webhook-"
# A callback whose timestamp is further than this from our clock may be a replay.
CALLBACK_TOLERANCE_S = 300
ED25519_SIGNATURE_BYTES = 64
MODEL_T2I = "hidream-o1-1.5/text-to-image"
MODEL_EDIT = "hidream-o1-1.5/edit"
PRICE_PER_IMAGE = 0.044
STEPS_RANGE = (1, 100)
GUIDANCE_RANGE = (1.0, 20.0)
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 5.0
ID_SEPARATOR = ","
_STATES: dict[str, str] = {
    "created": "queued",
    "processing": "running",
    "completed": "completed",
    "succeeded": "completed",
    "failed": "failed",
    "timeout": "failed",
    "cancelled": "failed",
}
# An exact aspect ratio (reduced) -> the preset that has it; the doc offers presets only.
_PRESET_BY_RATIO: dict[tuple[int, int], str] = {
    (1, 1): "square_hd",
    (3, 4): "portrait_4_3",
    (9, 16): "portrait_16_9",
    (4, 3): "landscape_4_3",
    (16, 9): "landscape_16_9",
}


class AtlasCloudSettings(ApiKeySettings):
    model_config = SettingsConfigDict(env_prefix="ATLASCLOUD_")

    base_url: str = "https://api.atlascloud.ai"


class AtlasCloudProvider(HttpProvider[AtlasCloudSettings]):
    settings_class = AtlasCloudSettings
    name = "atlascloud"
    display_name = "Atlas Cloud"
    signs_callbacks = True
    # The doc: reference_image_urls are publicly accessible image URLs.
    accepts_data_uris = False
    # The doc names no interval; a few seconds keeps a one-image job responsive without hammering.
    poll_interval = 3.0

    def _configure(self) -> None:
        self._keys = JwksCache(self.client, self.base_url + JWKS_PATH, self._clock, owner="Atlas Cloud")
        # Signatures of the callbacks accepted lately -> when: the same signed callback again is a replay.
        self._seen: dict[bytes, float] = {}

    @property
    def base_url(self) -> str:
        return self.options.base_url.rstrip("/")

    def tiers(self) -> tuple[Tier, ...]:
        return ("full",)

    def validate(self, request: ImageRequest, tier: Tier, n_refs: int) -> None:
        super().validate(request, tier, n_refs)
        if request.steps is not None and not STEPS_RANGE[0] <= request.steps <= STEPS_RANGE[1]:
            raise BadInput(f"`--steps {request.steps}` is out of range for Atlas Cloud: use 1 to 100.")
        if request.guidance is not None and not GUIDANCE_RANGE[0] <= request.guidance <= GUIDANCE_RANGE[1]:
            raise BadInput(f"`--cfg {request.guidance:g}` is out of range for Atlas Cloud: use 1.0 to 20.0.")
        if request.largest:
            raise BadInput(
                "Upscale is not offered by Atlas Cloud: its sizes are presets of about one megapixel, "
                "none larger. Choose a provider that makes 2048-pixel images (`--provider`)."
            )
        preset_for(request)

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return PRICE_PER_IMAGE * request.n

    def describe(self) -> list[str]:
        hooked = bool(self.settings.public_url)
        mode = "callbacks (webhook_url in the body, Ed25519-signed)" if hooked else "polling"
        lines = [
            f"provider: Atlas Cloud at {self.base_url}, {mode}",
            f"  POST {self.base_url}{SUBMIT_PATH} (model {MODEL_T2I} or {MODEL_EDIT})",
            f"  GET  {self.base_url}{STATUS_PATH}",
        ]
        if hooked:
            lines.append(f"  GET  {self.base_url}{JWKS_PATH} (callback signing keys)")
        return lines

    def _headers(self) -> dict[str, str]:
        key = self.options.api_key
        return {"Authorization": f"Bearer {key.get_secret_value() if key is not None else ''}"}

    def build_body(self, spec: SubmitSpec, index: int = 0) -> dict[str, Any]:
        """The flat body of one submit; `index` varies the seed so `--n` images differ but repeat."""
        request = spec.request
        body: dict[str, Any] = {
            "model": MODEL_EDIT if spec.reference_urls else MODEL_T2I,
            "prompt": request.prompt,
            "num_inference_steps": request.steps if request.steps is not None else DEFAULT_STEPS,
            "guidance_scale": request.guidance if request.guidance is not None else DEFAULT_GUIDANCE,
            "output_format": request.format,
        }
        size = preset_for(request)
        if size is None and not spec.reference_urls:
            size = DEFAULT_PRESET
        if size is not None:
            body["image_size"] = size
        if request.seed is not None:
            body["seed"] = (request.seed + index) % (SEED_MAX + 1)
        if spec.reference_urls:
            body["reference_image_urls"] = list(spec.reference_urls)
            if request.keep_aspect and len(spec.reference_urls) == 1:
                body["keep_original_aspect"] = True
        if spec.callback_url:
            body["webhook_url"] = spec.callback_url
        return body

    def requests_for(self, request: ImageRequest) -> int:
        return request.n

    async def submit(self, spec: SubmitSpec) -> str:
        return await self.submit_each(spec, lambda index: self._submit_one(spec, index))

    async def _submit_one(self, spec: SubmitSpec, index: int) -> str:
        answer = await self.call(
            "POST",
            self.base_url + SUBMIT_PATH,
            idempotent=False,
            json=self.build_body(spec, index),
            headers=self._headers(),
            key_name=KEY_NAME,
        )
        data = _unwrap(answer)
        prediction_id = data.get("id") if data is not None else None
        return self.require_job_id(prediction_id, answer, "data.id")

    async def status(self, provider_job_id: str) -> ProviderStatus:
        ids = [part for part in provider_job_id.split(ID_SEPARATOR) if part]
        parts = await asyncio.gather(*(self._status_one(one) for one in ids))
        return combine(parts)

    async def _status_one(self, prediction_id: str) -> ProviderStatus:
        url = self.base_url + STATUS_PATH.format(id=prediction_id)
        answer = await self.call("GET", url, idempotent=True, headers=self._headers(), key_name=KEY_NAME)
        data = _unwrap(answer)
        if data is None:
            raise ProviderBusy(
                "Atlas Cloud sent a status answer that could not be read.", detail=repr(answer)[:200]
            )
        return read_prediction(data)

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        """A signed callback's own account of its prediction, when it settles the job by itself."""
        signed_id, signature = await self._verify(headers, body)
        envelope = self.callback_object(body)
        if envelope.get("session_id") != signed_id:
            raise CallbackRejected(
                "Atlas Cloud callback body names another prediction than its headers", status=400
            )
        ids = [part for part in (provider_job_id or "").split(ID_SEPARATOR) if part]
        if ids and signed_id not in ids:
            raise CallbackRejected("Atlas Cloud callback is for another job", status=400)
        status = read_webhook(envelope)
        self._remember(signature)
        if status.state == "failed" or (len(ids) == 1 and status.state == "completed"):
            return status
        # The job's id is not known yet (the recovery reads it back), or other predictions are part
        # of it: a status read gathers them.
        return None

    async def _verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, bytes]:
        """Check the signature on the raw body; return the prediction id the headers name, and the
        signature."""
        lower = {k.lower(): v.strip() for k, v in headers.items()}
        values = [lower.get(WEBHOOK_HEADER + name, "") for name in ("id", "timestamp", "key-id")]
        signature_text = lower.get(WEBHOOK_HEADER + "signature-ed25519", "")
        if not all(values) or not signature_text:
            raise CallbackRejected("Atlas Cloud callback without its signature headers")
        webhook_id, timestamp, key_id = values
        try:
            if not timestamp.isdigit():
                raise ValueError(timestamp)
            signature = b64url_decode(signature_text)
        except ValueError:
            raise CallbackRejected("Atlas Cloud callback with an unreadable timestamp or signature") from None
        now = self._clock()
        if abs(now - int(timestamp)) > CALLBACK_TOLERANCE_S:
            raise CallbackRejected(
                "Atlas Cloud callback timestamp is more than 300 s off (stale or replayed)"
            )
        message = timestamp.encode() + b"." + body
        if len(signature) != ED25519_SIGNATURE_BYTES or not await self._keys.verify(
            signature, message, key_id
        ):
            raise CallbackRejected("Atlas Cloud callback signature does not match Atlas Cloud's key")
        return webhook_id, signature

    def _remember(self, signature: bytes) -> None:
        """Refuse a callback accepted already. Atlas Cloud's own retry is signed anew (a new timestamp),
        so the very same signature again is a replay; those older than the tolerance are stale anyway."""
        now = self._clock()
        self._seen = {sig: at for sig, at in self._seen.items() if now - at <= 2 * CALLBACK_TOLERANCE_S}
        if signature in self._seen:
            raise CallbackRejected("Atlas Cloud callback was accepted already (replayed)", status=409)
        self._seen[signature] = now

    def callback_job_id(self, body: bytes) -> str | None:
        """The prediction's id: one request of the job, which may need several."""
        return named_job_id(body, _named_id)


def preset_for(request: ImageRequest) -> str | None:
    """The size preset a request asks for; Atlas Cloud takes presets only, so others are refused."""
    if request.preset is not None:
        return request.preset
    if request.aspect is not None:
        w, h = request.aspect
        divisor = math.gcd(w, h)
        preset = _PRESET_BY_RATIO.get((w // divisor, h // divisor))
        if preset is None:
            raise BadInput(f"`--ar {w}:{h}` is not offered by Atlas Cloud: {_allowed()}.")
        return preset
    if request.width is not None and request.height is not None:
        for name, dims in PRESETS.items():
            if dims == (request.width, request.height):
                return name
        raise BadInput(
            f"`--size {request.width}x{request.height}` is not offered by Atlas Cloud: {_allowed()}."
        )
    return None


def _allowed() -> str:
    sizes = ", ".join(f"{name} ({w}x{h})" for name, (w, h) in PRESETS.items())
    return f"use --ar 1:1, 4:3, 3:4, 16:9 or 9:16, or --size with one of {sizes}"


def _unwrap(answer: Any) -> dict[str, Any] | None:
    """Atlas Cloud wraps the prediction as `{"code", "message", "data": {...}}`; accept it bare too."""
    if not isinstance(answer, dict):
        return None
    inner = answer.get("data")
    return inner if isinstance(inner, dict) else answer


def _named_id(envelope: dict[str, Any]) -> object:
    return envelope.get("session_id")


def read_webhook(envelope: Mapping[str, Any]) -> ProviderStatus:
    """A verified callback's prediction: `payload` as a status read gives it, `status` OK or ERROR."""
    payload = envelope.get("payload")
    data = payload if isinstance(payload, dict) else {}
    if envelope.get("status") == "ERROR":
        data = {**data, "status": "failed", "error": data.get("error") or envelope.get("error")}
    return read_prediction(data)


def read_prediction(data: Mapping[str, Any]) -> ProviderStatus:
    raw = str(data.get("status") or "").lower()
    state = _STATES.get(raw)
    if state is None:
        log.warning("Atlas Cloud reported an unknown status %r; still waiting", raw[:40])
        return ProviderStatus(state="running")
    if state == "failed":
        reason = " ".join(str(data.get("error") or "").split())[:300]
        text = "Atlas Cloud could not make the image"
        return ProviderStatus(state="failed", error=f"{text}: {reason}" if reason else f"{text}.")
    if state != "completed":
        return ProviderStatus(state="queued" if state == "queued" else "running")
    outputs = data.get("outputs")
    flags = data.get("has_nsfw_contents")
    urls = [u for u in outputs if isinstance(u, str) and u] if isinstance(outputs, list) else []
    if not urls:
        return ProviderStatus(state="failed", error="Atlas Cloud finished the job but sent back no image.")
    nsfw = [bool(f) for f in flags] if isinstance(flags, list) else []
    images = [ResultImage(url=u, nsfw=i < len(nsfw) and nsfw[i]) for i, u in enumerate(urls)]
    return ProviderStatus(state="completed", images=images)


def combine(parts: list[ProviderStatus]) -> ProviderStatus:
    """Several single-image predictions as one job: any failure fails it, all done completes it."""
    for part in parts:
        if part.state == "failed":
            return part
    if parts and all(part.state == "completed" for part in parts):
        return ProviderStatus(state="completed", images=[img for part in parts for img in part.images])
    if any(part.state in ("running", "completed") for part in parts):
        return ProviderStatus(state="running")
    return ProviderStatus(state="queued")


plugin = KeyedPlugin(AtlasCloudProvider, key="api_key", preference=20)
