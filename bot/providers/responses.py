"""Mapping, the provider seam's middle part: an HTTP answer from a provider as the bot's own errors
(busy, out of credit, misconfigured, refused with the provider's reason, unreadable), and the delay a
429 or 503 asks for. `bot.providers.base` sends and retries; these decide what an answer means."""

from __future__ import annotations

import logging
from typing import Any

from bot.model.errors import (
    ProviderBusy,
    ProviderError,
    ProviderMisconfigured,
    ProviderOutOfCredit,
    ProviderRejected,
    UnreadableAnswer,
)
from bot.transport import Answer

log = logging.getLogger(__name__)


def check_status(provider: str, response: Answer, key_name: str) -> None:
    """Raise our error for an HTTP error status: busy for 429/5xx, `map_status` for other 4xx."""
    code = response.status
    if code == 429 or code >= 500:
        raise ProviderBusy(
            f"{provider} is busy or failing right now (HTTP {code}); please try again later.",
            detail=_snippet(response),
        )
    if code >= 400:
        raise map_status(provider, response, key_name)


def read_json(provider: str, response: Answer) -> Any:
    """A successful answer's JSON body."""
    try:
        return response.json()
    except ValueError as exc:
        raise UnreadableAnswer(
            f"{provider} sent an answer that could not be read.", detail=_snippet(response)
        ) from exc


def map_status(provider: str, response: Answer, key_name: str) -> ProviderError:
    """A 4xx answer as one of our errors, with the provider's own reason where it gave one."""
    code = response.status
    if code in (401, 403):
        log.error("%s answered HTTP %s: check the setting %s", provider, code, key_name)
        return ProviderMisconfigured(
            "The bot is misconfigured: the image provider did not accept its credentials. "
            "An operator has been told.",
            detail=f"HTTP {code}; check {key_name}",
        )
    if code == 402:
        return ProviderOutOfCredit(f"The {provider} account is out of credit.", detail="HTTP 402")
    reason = provider_reason(response)
    return ProviderRejected(
        f"{provider} refused the request" + (f": {reason}" if reason else "."), detail=f"HTTP {code}"
    )


def provider_reason(response: Answer) -> str:
    """The human-readable reason in an error body, if any (bounded, single line)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text = ""
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                text = value["message"]
                break
            if isinstance(value, list) and value and isinstance(value[0], dict):
                text = str(value[0].get("msg") or value[0].get("message") or "")
                break
    return " ".join(text.split())[:300]


def retry_after(response: Answer | None) -> float | None:
    """Retry-After in seconds; its HTTP-date form (or no header) leaves the delay to the policy."""
    raw = response.headers.get("retry-after") if response is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _snippet(response: Answer) -> str:
    return f"HTTP {response.status}: {response.text[:200]}"
