"""A loopback fake of Pixazo's HiDream O1 gateway, built from provider-docs/pixazo-hidream-o1.txt.

Four submit endpoints `POST /{model}/v1/{model}-request`, the status endpoint
`GET /v2/requests/status/{request_id}`, `Ocp-Apim-Subscription-Key` auth, the documented fields and
ranges (anything else is answered 400), QUEUED -> PROCESSING -> COMPLETED | FAILED | ERROR, result
files as real images, and an unsigned callback to `X-Webhook-URL` carrying the status document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from bot.model.requests import PRESETS
from tests.fakes.queue_common import CONTENT_TYPES, FakeJob, QueueFake, drop_connection, json_response, record

MODELS = ("hidream-o1-image", "hidream-o1-image-edit", "hidream-o1-image-dev", "hidream-o1-image-dev-edit")
FIELDS = {
    "prompt", "reference_image_urls", "image_size", "num_inference_steps", "guidance_scale", "seed",
    "num_images", "output_format", "sync_mode", "enable_safety_checker", "keep_original_aspect",
}  # fmt: skip
ERROR_BODIES: dict[int, dict[str, Any]] = {
    400: {"error": "Model not found", "message": "Model 'hidream-o1-image' not found or is disabled"},
    401: {"statusCode": 401, "message": "Access denied due to invalid subscription key."},
    402: {"error": "Insufficient Balance", "message": "Your wallet does not have enough balance."},
    403: {"statusCode": 403, "message": "Forbidden: this key may not call this model."},
    429: {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."},
    500: {"error": "Internal Server Error", "message": "Something went wrong."},
}
FAILURE_TEXT = {
    "FAILED": "The prompt was flagged by the content filter.",
    "ERROR": "Worker crashed while loading the model.",
}


class Invalid(Exception):
    pass


class PixazoFake(QueueFake):
    def __init__(self, api_key: str = "pixazo-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.app.router.add_post("/{model}/v1/{endpoint}", self._submit)
        self.app.router.add_get("/v2/requests/status/{request_id}", self._status)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Ocp-Apim-Subscription-Key") == self.api_key

    async def _submit(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.submits.append(got)
        cue = self.take_cue()
        if cue == "drop":
            return drop_connection(request)
        if isinstance(cue, int):
            body = ERROR_BODIES.get(cue, {"error": "Bad Request", "message": "The request was refused."})
            return json_response(body, cue)
        if not self._authorized(request):
            return json_response(ERROR_BODIES[401], 401)
        model = request.match_info["model"]
        if model not in MODELS or request.match_info["endpoint"] != f"{model}-request":
            return json_response({"error": "Model not found", "message": f"Model '{model}' not found"}, 400)
        try:
            job = await self._accept(model, got.json(), request.headers.get("X-Webhook-URL"))
        except (Invalid, ValueError) as exc:
            return json_response({"error": "Bad Request", "message": str(exc)}, 400)
        if job.callback_url:
            self.post_callback(job.callback_url, self.document(job))
        if cue == "lost":
            return drop_connection(request)  # the job is made (and called back); its answer is lost
        return json_response(
            {
                "request_id": job.id,
                "status": "QUEUED",
                "polling_url": f"{self.url}/v2/requests/status/{job.id}",
            },
            202,
        )

    async def _accept(self, model: str, body: Any, callback_url: str | None) -> FakeJob:
        dev = "-dev" in model
        edit = model.endswith("-edit")
        check_body(body, dev=dev, edit=edit)
        refs: list[str] = body.get("reference_image_urls", [])
        ref_sizes: list[tuple[int, int]] = []
        for url in refs:
            size = await self.fetch_reference(url)
            if isinstance(size, str):
                raise Invalid(size)
            ref_sizes.append(size)
        out = output_size(body.get("image_size"), dev, body.get("keep_original_aspect", False), ref_sizes)
        return self.new_job(
            model,
            model=model,
            fmt=body.get("output_format", "png"),
            count=body.get("num_images", 1),
            size=out,
            callback_url=callback_url,
            body=body,
        )

    async def _status(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.status_calls.append(got)
        if self.status_script:
            code = self.status_script.pop(0)
            return json_response(ERROR_BODIES.get(code, {"error": "Error", "message": "error"}), code)
        if not self._authorized(request):
            return json_response(ERROR_BODIES[401], 401)
        job = self.jobs.get(request.match_info["request_id"])
        if job is None:
            return json_response({"error": "Not Found", "message": "Request not found"}, 404)
        job.polls += 1
        return json_response(self.document(job))

    def document(self, job: FakeJob) -> dict[str, Any]:
        """The status document, as polled and as posted to the webhook."""
        state = {"queued": "QUEUED", "running": "PROCESSING", "completed": "COMPLETED"}.get(
            self.progress(job), self.progress(job)
        )
        doc: dict[str, Any] = {
            "request_id": job.id,
            "status": state,
            "model_id": job.model,
            "error": FAILURE_TEXT.get(state),
            "output": None,
            "created_at": "2026-03-31T10:00:00.000Z",
            "updated_at": "2026-03-31T10:00:15.000Z",
        }
        if state == "COMPLETED":
            doc["output"] = {"media_url": self.file_urls(job), "media_type": CONTENT_TYPES[job.fmt]}
            doc["completed_at"] = "2026-03-31T10:00:15.000Z"
        return doc

    @asynccontextmanager
    async def started(self) -> AsyncIterator[PixazoFake]:
        async with self.running():
            yield self


def check_body(body: Any, *, dev: bool, edit: bool) -> None:
    """Every documented field and range; anything undocumented is refused."""
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Invalid("prompt is required")
    refs = body.get("reference_image_urls", [])
    if not isinstance(refs, list) or not all(isinstance(u, str) for u in refs):
        raise Invalid("reference_image_urls must be an array of URLs")
    if edit and not refs:
        raise Invalid("reference_image_urls is required for editing")
    _check_int(body, "num_inference_steps", 1, 1000)
    _check_int(body, "num_images", 1, 4)
    _check_int(body, "seed", 0, 2**63)
    guidance = body.get("guidance_scale")
    if guidance is not None:
        lo, hi = (0.0, 20.0) if dev else (1.0, 15.0)
        if not isinstance(guidance, int | float) or isinstance(guidance, bool) or not lo <= guidance <= hi:
            raise Invalid(f"guidance_scale must be between {lo:g} and {hi:g}")
    if body.get("output_format", "png") not in CONTENT_TYPES:
        raise Invalid("output_format must be one of jpeg, png, webp")
    for flag in ("sync_mode", "enable_safety_checker", "keep_original_aspect"):
        if flag in body and not isinstance(body[flag], bool):
            raise Invalid(f"{flag} must be a boolean")
    if body.get("keep_original_aspect") and len(refs) != 1:
        raise Invalid("keep_original_aspect needs exactly one reference image")
    _check_size(body.get("image_size"))


def _check_int(body: dict[str, Any], name: str, lo: int, hi: int) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi):
        raise Invalid(f"{name} must be an integer between {lo} and {hi}")


def _check_size(size: Any) -> None:
    if size is None or (isinstance(size, str) and size in PRESETS):
        return
    if not isinstance(size, dict) or set(size) != {"width", "height"}:
        raise Invalid(f"image_size must be one of {', '.join(PRESETS)} or {{width, height}}")
    for side in ("width", "height"):
        value = size[side]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2048:
            raise Invalid(f"image_size.{side} must be at most 2048")


def output_size(size: Any, dev: bool, keep_aspect: bool, refs: list[tuple[int, int]]) -> tuple[int, int]:
    """The size the result will have: presets, custom sizes snapped as the doc says, or the reference's."""
    if keep_aspect and refs:
        return refs[0]
    if isinstance(size, str):
        return PRESETS[size]
    if isinstance(size, dict):
        step = 32 if dev else 16
        return max(step, size["width"] // step * step), max(step, size["height"] // step * step)
    if refs:
        return min(refs[0][0], 2048), min(refs[0][1], 2048)
    return PRESETS["square_hd"]
