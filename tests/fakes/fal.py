"""A loopback fake of fal's queue for HiDream-O1, built from provider-docs/fal-hidream-o1-dev-edit.md.

`POST /fal-ai/hidream-o1-image[/dev][/edit]` with `Authorization: Key ...` answers `request_id`,
`status_url`, `response_url`; the status reads IN_QUEUE (with queue_position) -> IN_PROGRESS ->
COMPLETED; the response is the model output (images, seed, has_nsfw_concepts). With `?fal_webhook=`
the fake posts `{request_id, status: OK|ERROR, payload}` signed with its own ED25519 key, which it
publishes at `/.well-known/jwks.json`. Validation errors are 422 with fal's `{"detail": [...]}` shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.fakes.queue_common import (
    CONTENT_TYPES,
    FakeJob,
    QueueFake,
    drop_connection,
    image_info,
    json_response,
    make_image,
    record,
)

APP = "/fal-ai/hidream-o1-image"
# fal's ImageSize enum, as the bot's presets name them.
SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
FIELDS = {
    "prompt", "image_size", "num_inference_steps", "guidance_scale", "seed", "num_images",
    "output_format", "sync_mode", "enable_safety_checker", "keep_original_aspect",
}  # fmt: skip
MESSAGES = {
    400: "Bad request",
    401: "Invalid Key Authorization header format",
    402: "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing.",
    403: "Access denied",
    429: "Rate limit exceeded",
    500: "Internal server error",
}
FAILURE_TEXT = "The prompt was flagged by the content checker."


class Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class FalFake(QueueFake):
    def __init__(self, key: str = "fal-test-key") -> None:
        super().__init__()
        self.key = key
        self.user_id = "fake-user-7"
        self.signing_key = Ed25519PrivateKey.generate()
        self.published: list[Ed25519PublicKey] = [self.signing_key.public_key()]
        self.jwks_fetches = 0
        self.jwks_available = True
        # Where a failed job says so: in the COMPLETED status (True) or only in its response (False).
        self.error_in_status = True
        for tail in ("", "/dev", "/edit", "/dev/edit"):
            self.app.router.add_post(APP + tail, self._submit)
        self.app.router.add_get(APP + "/requests/{id}/status", self._status)
        self.app.router.add_get(APP + "/requests/{id}", self._response)
        self.app.router.add_get("/.well-known/jwks.json", self._jwks)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def rotate_key(self) -> None:
        """A new signing key replaces the old one in the published JWKS."""
        self.signing_key = Ed25519PrivateKey.generate()
        self.published = [self.signing_key.public_key()]

    def sign(
        self,
        request_id: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        key: Ed25519PrivateKey | None = None,
        user_id: str | None = None,
    ) -> dict[str, str]:
        """fal's webhook headers for this body: ED25519 over id, user, time and the body's SHA-256.
        `user_id`: another fal account's (fal signs every account's webhooks with the same keys)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        user_id = self.user_id if user_id is None else user_id
        message = "\n".join((request_id, user_id, stamp, hashlib.sha256(body).hexdigest()))
        signature = (key or self.signing_key).sign(message.encode()).hex()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": signature,
        }

    @staticmethod
    def error(code: int, message: str | None = None) -> web.Response:
        return json_response({"detail": message or MESSAGES.get(code, "error")}, code)

    async def _submit(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.submits.append(got)
        cue = self.take_cue()
        if cue == "drop":
            return drop_connection(request)
        if isinstance(cue, int):
            return self.error(cue)
        if request.headers.get("Authorization") != f"Key {self.key}":
            return self.error(401)
        tail = request.path.removeprefix(APP)
        hook = request.query.get("fal_webhook")
        try:
            if hook is not None and not hook.startswith(("http://", "https://")):
                raise Invalid("fal_webhook", "fal_webhook must be an http(s) URL")
            job = await self._accept(got.json(), dev="/dev" in tail, edit=tail.endswith("/edit"), hook=hook)
        except Invalid as exc:
            detail = [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
            return json_response({"detail": detail}, 422)
        except ValueError:
            return self.error(400, "body is not JSON")
        if job.callback_url:
            payload = self.callback_payload(job)
            body = json.dumps(payload).encode()
            self.post_callback(job.callback_url, payload, headers=self.sign(job.id, body))
        if cue == "lost":
            return drop_connection(request)  # the job is made (and called back); its answer is lost
        base = f"{self.url}{APP}/requests/{job.id}"
        return json_response(
            {
                "request_id": job.id,
                "gateway_request_id": job.id,
                "response_url": base,
                "status_url": base + "/status",
                "cancel_url": base + "/cancel",
                "queue_position": 0,
            }
        )

    async def _accept(self, body: Any, *, dev: bool, edit: bool, hook: str | None) -> FakeJob:
        check_input(body, dev=dev, edit=edit)
        sizes = [await self._reference_size(url) for url in body.get("reference_image_urls", [])]
        if body.get("keep_original_aspect"):
            out = sizes[0]
        else:
            size = body.get("image_size", {"width": 2048, "height": 2048})
            out = SIZES[size] if isinstance(size, str) else (size["width"], size["height"])
        body.setdefault("seed", random.randint(0, 2**31 - 1))
        return self.new_job(
            "fal",
            model=APP.strip("/") + ("/dev" if dev else "") + ("/edit" if edit else ""),
            fmt=body.get("output_format", "png"),
            count=body.get("num_images", 1),
            size=out,
            callback_url=hook,
            body=body,
        )

    async def _reference_size(self, url: str) -> tuple[int, int]:
        if url.startswith("data:"):
            _, _, encoded = url.partition(",")
            try:
                _, width, height = image_info(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError, OSError):
                raise Invalid("reference_image_urls", "a data URI is not a readable image") from None
            return width, height
        found = await self.fetch_reference(url)
        if isinstance(found, str):
            raise Invalid("reference_image_urls", found)
        return found

    def output(self, job: FakeJob) -> dict[str, Any]:
        width, height = job.size
        images = [
            {
                "url": url,
                "content_type": CONTENT_TYPES[job.fmt],
                "file_name": url.rsplit("/", 1)[1],
                "file_size": len(make_image(width, height, job.fmt)),
                "width": width,
                "height": height,
            }
            for url in self.file_urls(job)
        ]
        return {
            "images": images,
            "seed": job.body["seed"],
            "has_nsfw_concepts": [job.nsfw] * job.count,
            "prompt": job.body["prompt"],
            "timings": {"inference": 1.25},
        }

    def callback_payload(self, job: FakeJob) -> dict[str, Any]:
        base = {"request_id": job.id, "gateway_request_id": job.id}
        if job.outcome == "completed":
            return {**base, "status": "OK", "payload": self.output(job), "error": None}
        detail = [{"loc": ["body", "prompt"], "msg": FAILURE_TEXT, "type": "content_policy_violation"}]
        return {**base, "status": "ERROR", "error": "Invalid status code: 422", "payload": {"detail": detail}}

    def _job(self, request: web.Request) -> FakeJob | None:
        return self.jobs.get(request.match_info["id"])

    async def _status(self, request: web.Request) -> web.Response:
        got = await record(request)
        self.status_calls.append(got)
        if self.status_script:
            return self.error(self.status_script.pop(0))
        if request.headers.get("Authorization") != f"Key {self.key}":
            return self.error(401)
        job = self._job(request)
        if job is None:
            return self.error(404, "Request not found")
        job.polls += 1
        state = self.progress(job)
        response_url = f"{self.url}{APP}/requests/{job.id}"
        if state == "queued":
            return json_response({"status": "IN_QUEUE", "queue_position": 1, "response_url": response_url})
        if state == "running":
            return json_response({"status": "IN_PROGRESS", "logs": [], "response_url": response_url})
        answer: dict[str, Any] = {"status": "COMPLETED", "logs": [], "response_url": response_url}
        if job.outcome != "completed" and self.error_in_status:
            answer.update(error=FAILURE_TEXT, error_type="content_policy_violation")
        return json_response(answer)

    async def _response(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Key {self.key}":
            return self.error(401)
        job = self._job(request)
        if job is None:
            return self.error(404, "Request not found")
        if self.progress(job) in ("queued", "running"):
            return self.error(400, "Request is still in progress")
        if job.outcome != "completed":
            detail = [{"loc": ["body", "prompt"], "msg": FAILURE_TEXT, "type": "content_policy_violation"}]
            return json_response({"detail": detail}, 422)
        return json_response(self.output(job))

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if not self.jwks_available:
            return web.Response(status=503)
        keys = [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": f"fake-{i}",
                "use": "sig",
                "alg": "EdDSA",
                "x": base64.urlsafe_b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
                .rstrip(b"=")
                .decode(),
            }
            for i, key in enumerate(self.published)
        ]
        return json_response({"keys": keys})

    @asynccontextmanager
    async def started(self) -> AsyncIterator[FalFake]:
        async with self.running():
            yield self


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_input(body: Any, *, dev: bool, edit: bool) -> None:
    """Every documented field and range; anything else is refused, naming the field."""
    if not isinstance(body, dict):
        raise Invalid("body", "the input must be a JSON object")
    allowed = FIELDS | ({"reference_image_urls"} if edit else set())
    for name in body:
        if name not in allowed:
            raise Invalid(name, "extra inputs are not permitted")
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise Invalid("prompt", "field required")
    _check_size(body.get("image_size"))
    steps_max = 28 if dev else 100
    steps = body.get("num_inference_steps", 28 if dev else 50)
    if not _is_int(steps) or not 1 <= steps <= steps_max:
        raise Invalid("num_inference_steps", f"must be an integer from 1 to {steps_max}")
    guidance = body.get("guidance_scale", 0)
    if not isinstance(guidance, int | float) or isinstance(guidance, bool) or not 0 <= guidance <= 20:
        raise Invalid("guidance_scale", "must be a number from 0 to 20")
    if "seed" in body and not _is_int(body["seed"]):
        raise Invalid("seed", "must be an integer")
    n = body.get("num_images", 1)
    if not _is_int(n) or not 1 <= n <= 4:
        raise Invalid("num_images", "must be an integer from 1 to 4")
    if body.get("output_format", "png") not in ("jpeg", "png", "webp"):
        raise Invalid("output_format", "must be one of jpeg, png, webp")
    for flag in ("sync_mode", "enable_safety_checker", "keep_original_aspect"):
        if flag in body and not isinstance(body[flag], bool):
            raise Invalid(flag, "must be a boolean")
    refs = body.get("reference_image_urls")
    if edit and (not isinstance(refs, list) or not refs or not all(isinstance(u, str) for u in refs)):
        raise Invalid("reference_image_urls", "field required: a list of image URLs")
    if body.get("keep_original_aspect") and (not edit or len(refs or []) != 1):
        raise Invalid("keep_original_aspect", "needs exactly one reference image")


def _check_size(size: Any) -> None:
    if size is None or (isinstance(size, str) and size in SIZES):
        return
    if isinstance(size, dict) and set(size) == {"width", "height"}:
        if all(_is_int(v) and 1 <= v <= 2048 for v in size.values()):
            return
    raise Invalid("image_size", f"must be one of {', '.join(SIZES)} or {{width, height}} up to 2048")
