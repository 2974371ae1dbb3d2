"""A loopback fake of Atlas Cloud's HiDream O1 1.5, built from provider-docs/atlascloud-hidream-o1-1.5.txt.

`POST /api/v1/model/generateImage` (flat body, `model` picks text-to-image or edit) and
`GET /api/v1/model/prediction/{id}`, `Authorization: Bearer`, answers wrapped as
`{"code", "message", "data"}`, statuses created -> processing -> completed | failed, images in
`outputs` (with `has_nsfw_contents`), and a callback to the body's `webhook_url` as Atlas Cloud's
"Webhooks" doc describes it: `{session_id, event_type, status: OK|ERROR, payload, error}` signed with
the fake's own Ed25519 key (over `<timestamp>.<raw body>`, headers `X-AtlasCloud-Webhook-Signature-Ed25519`,
`-Key-Id`, `-Timestamp`, `-Id`, `-Event`, and the legacy HMAC `-Signature` of the migration), the public
key published as a JWKS at `/api/v1/webhooks/jwks.json` on the API host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bot.model.requests import PRESETS
from tests.fakes.queue_common import CONTENT_TYPES, FakeJob, QueueFake, drop_connection, json_response, record

MODEL_T2I = "hidream-o1-1.5/text-to-image"
MODEL_EDIT = "hidream-o1-1.5/edit"
FIELDS = {
    "model", "prompt", "image_size", "num_inference_steps", "guidance_scale", "output_format", "seed",
    "reference_image_urls", "keep_original_aspect", "webhook_url",
}  # fmt: skip
MESSAGES = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient balance, please top up your account",
    403: "Forbidden",
    429: "Too many requests, please slow down",
    500: "Internal server error",
}
FAILURE_TEXT = "Generation failed: the content did not pass the safety check."
JWKS_PATH = "/api/v1/webhooks/jwks.json"
EVENT = "image.task.terminal"
# The HMAC secret of the legacy `-Signature` header (the bot has none: it must not rely on it).
LEGACY_SECRET = b"atlas-legacy-webhook-secret"


class Invalid(Exception):
    pass


class AtlasCloudFake(QueueFake):
    def __init__(self, api_key: str = "atlas-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.app.router.add_post("/api/v1/model/generateImage", self._submit)
        self.app.router.add_get("/api/v1/model/prediction/{id}", self._status)
        self.app.router.add_get(JWKS_PATH, self._jwks)
        self.signing_key = Ed25519PrivateKey.generate()
        self.key_id = "atlas-key-1"
        self.published: dict[str, Ed25519PrivateKey] = {self.key_id: self.signing_key}
        self.jwks_fetches = 0
        self.jwks_available = True

    def rotate_key(self) -> None:
        """A new signing key, under a new id, replaces the old one in the published JWKS."""
        self.signing_key = Ed25519PrivateKey.generate()
        self.key_id = f"atlas-key-{len(self.published) + 1}"
        self.published = {self.key_id: self.signing_key}

    def sign(
        self,
        webhook_id: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        key: Ed25519PrivateKey | None = None,
        key_id: str | None = None,
    ) -> dict[str, str]:
        """Atlas Cloud's webhook headers for this body: Ed25519 over `<timestamp>.<raw body>`."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = stamp.encode() + b"." + body
        signature = (key or self.signing_key).sign(message)
        return {
            "X-AtlasCloud-Webhook-Id": webhook_id,
            "X-AtlasCloud-Webhook-Event": EVENT,
            "X-AtlasCloud-Webhook-Timestamp": stamp,
            "X-AtlasCloud-Webhook-Key-Id": key_id or self.key_id,
            "X-AtlasCloud-Webhook-Signature-Ed25519": base64.urlsafe_b64encode(signature)
            .rstrip(b"=")
            .decode(),
            "X-AtlasCloud-Webhook-Signature": hmac.new(LEGACY_SECRET, message, hashlib.sha256).hexdigest(),
        }

    def webhook(self, job: FakeJob) -> dict[str, Any]:
        """The terminal callback's body: the prediction as a status read gives it, in an envelope."""
        data = self.envelope(job)["data"]
        failed = data["status"] == "failed"
        return {
            "session_id": job.id,
            "event_type": EVENT,
            "status": "ERROR" if failed else "OK",
            "payload": data,
            "error": data["error"] if failed else None,
        }

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if not self.jwks_available:
            return web.Response(status=503)
        keys = [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": kid,
                "use": "sig",
                "alg": "EdDSA",
                "x": base64.urlsafe_b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
                .rstrip(b"=")
                .decode(),
            }
            for kid, key in self.published.items()
        ]
        return json_response({"keys": keys})

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    @staticmethod
    def error(code: int, message: str | None = None) -> web.Response:
        return json_response({"code": code, "message": message or MESSAGES.get(code, "error")}, code)

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
        try:
            job = await self._accept(got.json())
        except (Invalid, ValueError) as exc:
            return self.error(400, str(exc))
        if job.callback_url:
            raw = json.dumps(self.webhook(job)).encode()
            self.post_callback(job.callback_url, None, self.sign(job.id, raw), body=raw)
        if cue == "lost":
            return drop_connection(request)  # the job is made (and called back); its answer is lost
        return json_response(self.envelope(job, initial=True))

    async def _accept(self, body: Any) -> FakeJob:
        check_body(body)
        refs: list[str] = body.get("reference_image_urls", [])
        sizes: list[tuple[int, int]] = []
        for url in refs:
            size = await self.fetch_reference(url)
            if isinstance(size, str):
                raise Invalid(size)
            sizes.append(size)
        if body.get("keep_original_aspect") and sizes:
            out = sizes[0]
        else:
            out = PRESETS[body.get("image_size", "landscape_4_3")]
        return self.new_job(
            "pred",
            model=body["model"],
            fmt=body.get("output_format", "png"),
            count=1,
            size=out,
            callback_url=body.get("webhook_url"),
            body=body,
        )

    async def _status(self, request: web.Request) -> web.Response:
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
        return json_response(self.envelope(job))

    def envelope(self, job: FakeJob, *, initial: bool = False) -> dict[str, Any]:
        state = "created" if initial else self.progress(job)
        state = {"queued": "created", "running": "processing"}.get(state, state)
        done = state == "completed"
        data = {
            "id": job.id,
            "model": job.model,
            "status": state,
            "outputs": self.file_urls(job) if done else [],
            "has_nsfw_contents": [job.nsfw] * job.count if done else [],
            "urls": {"get": f"{self.url}/api/v1/model/prediction/{job.id}"},
            "error": FAILURE_TEXT if state == "failed" else "",
            "created_at": "2026-05-01T12:00:00.000Z",
            "timings": {"inference": 1200 if done else 0},
        }
        return {"code": 200, "message": "success", "data": data}

    @asynccontextmanager
    async def started(self) -> AsyncIterator[AtlasCloudFake]:
        async with self.running():
            yield self


def check_body(body: Any) -> None:
    """The documented fields and ranges; anything else is refused."""
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    model = body.get("model")
    if model not in (MODEL_T2I, MODEL_EDIT):
        raise Invalid(f"model {model!r} is not available")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 5000:
        raise Invalid("prompt is required, at most 5000 characters")
    if body.get("image_size", "landscape_4_3") not in PRESETS:
        raise Invalid(f"image_size must be one of {', '.join(PRESETS)}")
    steps = body.get("num_inference_steps", 50)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= 100:
        raise Invalid("num_inference_steps must be between 1 and 100")
    guidance = body.get("guidance_scale", 5.0)
    if not isinstance(guidance, int | float) or isinstance(guidance, bool) or not 1.0 <= guidance <= 20.0:
        raise Invalid("guidance_scale must be between 1.0 and 20.0")
    if body.get("output_format", "png") not in CONTENT_TYPES:
        raise Invalid("output_format must be png, jpeg or webp")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise Invalid("seed must be an integer")
    _check_refs(body, model)
    hook = body.get("webhook_url")
    if hook is not None and (not isinstance(hook, str) or not hook.startswith(("http://", "https://"))):
        raise Invalid("webhook_url must be an http(s) URL")


def _check_refs(body: dict[str, Any], model: str) -> None:
    refs = body.get("reference_image_urls")
    if model == MODEL_T2I:
        if refs:
            raise Invalid("reference_image_urls is not accepted by text-to-image; use the edit model")
        if "keep_original_aspect" in body:
            raise Invalid("keep_original_aspect needs exactly one reference image")
        return
    if not isinstance(refs, list) or not refs or not all(isinstance(u, str) for u in refs):
        raise Invalid("reference_image_urls must list at least one image URL")
    keep = body.get("keep_original_aspect")
    if keep is not None and (not isinstance(keep, bool) or (keep and len(refs) != 1)):
        raise Invalid("keep_original_aspect needs exactly one reference image")
