"""The sandbox service's jobs: the submit body's rules, where it may send requests, and the files a
job lives in.

A job is state_dir/<id>.json plus its reference images as <id>.ref<k>, written before the submit is
answered (references first, so a job file always has them beside it). Rendered images are cached as
<id>.<index>.<format>. All of a job's files go when it is older than the service's retention.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from bot.model.requests import MAX_REFERENCES
from bot.providers.sandbox import art as sandbox_art

log = logging.getLogger(__name__)

FAIL_MESSAGE = "The sandbox was asked to fail (the prompt says sandbox-fail)."
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
PROMPT_MAX = 5000
_FAIL_RE = re.compile(r"(?<![\w-])sandbox-fail(?![\w-])", re.IGNORECASE)
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# A media id or a callback token of the bot's (secrets.token_urlsafe), and a signed link's query.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_QUERY_RE = re.compile(r"[A-Za-z0-9_.~%&=+-]{0,1000}")
_FIELDS = {
    "prompt", "width", "height", "seed", "num_images", "output_format", "model",
    "reference_image_urls", "keep_original_aspect", "webhook_url",
}  # fmt: skip


class Invalid(Exception):
    """A submit body the sandbox refuses; the message starts with the field's name."""


@dataclass(frozen=True)
class OwnServer:
    """The bot's own server: the one place the sandbox sends requests to (reference images from its
    /media/ links, callbacks to its /webhooks/), so a submit cannot point it anywhere else in the
    operator's network. `aliases` are other base URLs of the same server (HIDREAM_PUBLIC_URL); a link
    under one of them is sent straight to `url`."""

    url: str
    aliases: tuple[str, ...] = ()

    def local(self, link: str, route: str) -> str | None:
        """`link` as a URL on `url` when it is `<a base of ours>/<route>/<id>[?query]`, else None."""
        for base in (self.url, *self.aliases):
            head = f"{base.rstrip('/')}/{route}/"
            if not base or not link.startswith(head):
                continue
            token, sep, query = link[len(head) :].partition("?")
            if _TOKEN_RE.fullmatch(token) and _QUERY_RE.fullmatch(query):
                return f"{self.url.rstrip('/')}/{route}/{token}{sep}{query}"
        return None


@dataclass
class SandboxJob:
    """One sandbox job as stored. Its reference images live in their own files: `references` is
    filled only when they are read back (JobFiles.load(..., references=True)); the jobs a service
    keeps in memory hold none."""

    id: str
    prompt: str
    width: int
    height: int
    seed: int
    num_images: int
    output_format: str
    model: str
    keep_original_aspect: bool
    webhook_url: str | None
    submitted_at: float
    # Origin of the submit request: image URLs in a callback are built without a request at hand.
    base_url: str
    n_refs: int = 0
    callback_done: bool = False
    references: list[bytes] = field(default_factory=list, repr=False)

    @property
    def fails(self) -> bool:
        return bool(_FAIL_RE.search(self.prompt))

    def art(self) -> sandbox_art.ArtSpec:
        return sandbox_art.ArtSpec(
            self.prompt, self.seed, self.width, self.height, self.model, self.output_format,
            self.keep_original_aspect,
        )  # fmt: skip

    def image_urls(self, base_url: str) -> list[str]:
        ext = self.output_format
        return [f"{base_url}/sandbox/v1/files/{self.id}/{i}.{ext}" for i in range(self.num_images)]


def parse_body(body: Any, *, now: float, base_url: str) -> tuple[SandboxJob, list[str]]:
    """A new job (without its references yet) and the reference URLs, or Invalid naming the field."""
    if not isinstance(body, dict):
        raise Invalid("body: must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise Invalid(f"{unknown[0]}: unknown field")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= PROMPT_MAX or not prompt.strip():
        raise Invalid(f"prompt: must be a string of 1 to {PROMPT_MAX} characters")
    webhook = body.get("webhook_url")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        raise Invalid("webhook_url: must be an http(s) URL")
    keep = body.get("keep_original_aspect", False)
    if not isinstance(keep, bool):
        raise Invalid("keep_original_aspect: must be true or false")
    refs = body.get("reference_image_urls", [])
    if not isinstance(refs, list) or not all(isinstance(u, str) for u in refs):
        raise Invalid("reference_image_urls: must be a list of URLs")
    if len(refs) > MAX_REFERENCES:
        raise Invalid(f"reference_image_urls: at most {MAX_REFERENCES} images")
    if keep and len(refs) != 1:
        raise Invalid("keep_original_aspect: needs exactly one reference image")
    job = SandboxJob(
        id=secrets.token_hex(16),
        prompt=prompt,
        width=_int(body, "width", 256, 4096),
        height=_int(body, "height", 256, 4096),
        seed=_int(body, "seed", 0, 2**32 - 1),
        num_images=_int(body, "num_images", 1, 4),
        output_format=_choice(body, "output_format", ("png", "jpeg", "webp")),
        model=_choice(body, "model", ("full", "dev")),
        keep_original_aspect=keep,
        webhook_url=webhook,
        submitted_at=now,
        base_url=base_url,
    )
    return job, refs


def _int(body: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name}: is required")
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise Invalid(f"{name}: must be a whole number from {lo} to {hi}")
    return value


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value is None:
        raise Invalid(f"{name}: is required")
    if value not in allowed:
        raise Invalid(f"{name}: must be one of {', '.join(allowed)}")
    return str(value)


def decode_data_uri(name: str, url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise Invalid(f"{name}: malformed data: URI")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(f"{name}: malformed base64 in data: URI") from exc


class JobFiles:
    """The jobs of one state directory. Blocking file I/O: call from a thread where it may be slow."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    def ids(self) -> Iterator[str]:
        for path in sorted(self.dir.glob("*.json")):
            if _ID_RE.match(path.stem):
                yield path.stem

    def save(self, job: SandboxJob, references: Sequence[bytes]) -> None:
        for i, data in enumerate(references):
            write_atomic(self.dir / f"{job.id}.ref{i}", data)
        self.save_record(job)

    def save_record(self, job: SandboxJob) -> None:
        record = asdict(job)
        del record["references"]
        write_atomic(self.dir / f"{job.id}.json", json.dumps(record).encode())

    def load(self, job_id: str, *, references: bool = False) -> SandboxJob | None:
        """The stored job, or None for an unknown (or malformed) id."""
        if not _ID_RE.match(job_id):
            return None
        path = self.dir / f"{job_id}.json"
        try:
            job = SandboxJob(**json.loads(path.read_text(encoding="utf-8")))
            if references:
                job.references = self.references(job)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("sandbox: unreadable job file %s: %s", path.name, exc)
            return None
        return job

    def references(self, job: SandboxJob) -> list[bytes]:
        return [(self.dir / f"{job.id}.ref{i}").read_bytes() for i in range(job.n_refs)]

    def image(self, job: SandboxJob, index: int) -> bytes:
        """Rendered once, then read back (rendering is deterministic, so two racing renders agree)."""
        path = self.dir / f"{job.id}.{index}.{job.output_format}"
        if path.exists():
            return path.read_bytes()
        data = sandbox_art.render(job.art(), self.references(job), index)
        write_atomic(path, data)
        return data

    def sweep(self, cutoff: float) -> list[str]:
        """Delete the jobs submitted before `cutoff` (record, references, rendered images), except one
        whose callback is still to be sent, and files of no job last changed before it (a write cut
        short). Returns the ids of the jobs deleted."""
        groups: dict[str, list[Path]] = {}
        for path in self.dir.iterdir():
            job_id = path.name.partition(".")[0]
            if _ID_RE.match(job_id):
                groups.setdefault(job_id, []).append(path)
            elif path.name.endswith(".tmp") and _mtime(path) < cutoff:
                path.unlink(missing_ok=True)
        removed = []
        for job_id, paths in groups.items():
            record = self.dir / f"{job_id}.json"
            job = self.load(job_id) if record in paths else None
            if job is not None and job.webhook_url and not job.callback_done:
                continue
            when = job.submitted_at if job is not None else max(_mtime(p) for p in paths)
            if when >= cutoff:
                continue
            # The record first: from then on the job is unknown, whatever else a crash leaves behind.
            record.unlink(missing_ok=True)
            for path in paths:
                path.unlink(missing_ok=True)
            removed.append(job_id)
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
