"""A loopback fake of WaveSpeed's HiDream-O1 API, built from provider-docs/wavespeed-hidream-o1-*.txt.

`POST /api/v3/wavespeed-ai/hidream-o1-image[-dev]/{text-to-image|edit}` with `Authorization: Bearer`
makes one prediction (one image) and answers `{code, message, data}`; `GET /api/v3/predictions/{id}/result`
reads it: created -> processing -> completed | failed, image URLs in `outputs`. With `?webhook=` the fake
posts the prediction signed the documented way: `webhook-signature: v3,<hex>` = HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret minus its `whsec_` prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from tests.fakes.queue_common import FakeJob, QueueFake, drop_connection, image_info, json_response, record

MODELS = {"hidream-o1-image": "full", "hidream-o1-image-dev": "dev"}
COMMON_FIELDS = {"prompt", "size", "output_format", "seed", "enable_sync_mode", "enable_base64_output"}
SIDE_MIN, SIDE_MAX = 256, 4096
PIXELS_MIN, PIXELS_MAX = 2560 * 1440, 4096 * 4096
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MESSAGES = {
    400: "Invalid request parameters",
    401: "Unauthorized: invalid API key",
    402: "Insufficient balance, please top up",
    403: "Forbidden",
    429: "Too many requests",
    500: "Internal server error",
}
FAILURE_TEXT = "The content did not pass the safety review."


class Invalid(Exception):
    pass


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    key = secret.removeprefix("whsec_").encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v3,{digest}"


class WaveSpeedFake(QueueFake):
    def __init__(self, api_key: str = "ws-test-key", secret: str = "whsec_fake-secret-0123") -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = secret
        self.app.router.add_post("/api/v3/wavespeed-ai/{model}/{mode}", self._submit)
        self.app.router.add_get("/api/v3/predictions/{id}/result", self._result)

    def sign(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        webhook_id = uuid.uuid4().hex
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signature(secret or self.secret, webhook_id, stamp, body),
        }

    @staticmethod
    def error(code: int, message: str | None = None) -> web.Response:
        return json_response(
            {"code": code, "message": message or MESSAGES.get(code, "error"), "data": None}, code
        )

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _submit(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.submits.append(got)
        cue = self.take_cue()
        if cue == "drop":
            return drop_connection(request)
        if isinstance(cue, int):
            return self.error(cue)
        if not self._authorized(request):
            return self.error(401)
        model, mode = request.match_info["model"], request.match_info["mode"]
        if model not in MODELS or mode not in ("text-to-image", "edit"):
            return self.error(404, f"model wavespeed-ai/{model}/{mode} not found")
        hook = request.query.get("webhook")
        try:
            if hook is not None and not hook.startswith(("http://", "https://")):
                raise Invalid("webhook must be an http(s) URL")
            job = await self._accept(
                got.json(), f"wavespeed-ai/{model}/{mode}", edit=mode == "edit", hook=hook
            )
        except Invalid as exc:
            return self.error(400, str(exc))
        except ValueError:
            return self.error(400, "body is not JSON")
        if job.callback_url:
            payload = self.prediction(job, final=True)
            self.post_callback(job.callback_url, payload, headers=self.sign(json.dumps(payload).encode()))
        if cue == "lost":
            return drop_connection(request)  # the job is made (and called back); its answer is lost
        return json_response({"code": 200, "message": "success", "data": self.prediction(job, initial=True)})

    async def _accept(self, body: Any, model: str, *, edit: bool, hook: str | None) -> FakeJob:
        width, height = check_body(body, edit=edit)
        for url in body.get("images", []):
            await self._check_image(url)
        return self.new_job(
            "ws",
            model=model,
            fmt=body.get("output_format", "jpeg"),
            count=1,
            size=(width, height),
            callback_url=hook,
            body=body,
        )

    async def _check_image(self, url: str) -> None:
        if url.startswith("data:"):
            _, _, encoded = url.partition(",")
            try:
                data = base64.b64decode(encoded, validate=True)
                _, width, height = image_info(data)
            except (binascii.Error, ValueError, OSError):
                raise Invalid("images: a data URI is not a readable image") from None
            if len(data) > MAX_IMAGE_BYTES:
                raise Invalid("images: each image may be at most 50MB")
        else:
            found = await self.fetch_reference(url)
            if isinstance(found, str):
                raise Invalid(f"images: {found}")
            width, height = found
        if not 0.25 <= width / height <= 4.0:
            raise Invalid("images: aspect ratio must be between 1:4 and 4:1")

    def prediction(self, job: FakeJob, *, initial: bool = False, final: bool = False) -> dict[str, Any]:
        state = "created" if initial else job.outcome if final else self.progress(job)
        state = {"queued": "created", "running": "processing"}.get(state, state)
        done = state == "completed"
        return {
            "id": job.id,
            "model": job.model,
            "outputs": self.file_urls(job) if done else [],
            "urls": {"get": f"{self.url}/api/v3/predictions/{job.id}/result"},
            "has_nsfw_contents": [job.nsfw] if done else [],
            "status": state,
            "created_at": "2026-05-01T12:34:56.789Z",
            "error": FAILURE_TEXT if state == "failed" else "",
            "timings": {"inference": 2300 if done else 0},
        }

    async def _result(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.status_calls.append(got)
        if self.status_script:
            return self.error(self.status_script.pop(0))
        if not self._authorized(request):
            return self.error(401)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "prediction not found")
        job.polls += 1
        return json_response({"code": 200, "message": "success", "data": self.prediction(job)})

    @asynccontextmanager
    async def started(self) -> AsyncIterator[WaveSpeedFake]:
        async with self.running():
            yield self


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_body(body: Any, *, edit: bool) -> tuple[int, int]:
    """Every documented field and range; returns the output size."""
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    unknown = set(body) - COMMON_FIELDS - ({"images"} if edit else set())
    if unknown:
        raise Invalid(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise Invalid("prompt is required")
    match = re.fullmatch(r"(\d+)\*(\d+)", str(body.get("size", "2048*2048")))
    if match is None:
        raise Invalid("size must be WIDTH*HEIGHT")
    width, height = int(match.group(1)), int(match.group(2))
    if not (SIDE_MIN <= width <= SIDE_MAX and SIDE_MIN <= height <= SIDE_MAX):
        raise Invalid("size: each side must be between 256 and 4096")
    if not PIXELS_MIN <= width * height <= PIXELS_MAX:
        raise Invalid("size: total pixels must be within [2560*1440, 4096*4096]")
    if body.get("output_format", "jpeg") not in ("png", "jpeg", "webp"):
        raise Invalid("output_format must be png, jpeg or webp")
    if "seed" in body and (not _is_int(body["seed"]) or not -1 <= body["seed"] <= 2147483647):
        raise Invalid("seed must be an integer from -1 to 2147483647")
    for flag in ("enable_sync_mode", "enable_base64_output"):
        if flag in body and not isinstance(body[flag], bool):
            raise Invalid(f"{flag} must be a boolean")
    images = body.get("images")
    if edit and (not isinstance(images, list) or not images or not all(isinstance(u, str) for u in images)):
        raise Invalid("images is required: a list of image URLs or data URIs")
    return width, height
