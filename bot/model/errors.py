"""One exception tree for the whole bot.

HidreamError
├── UserFacingError            .user_message is safe to show to the person who asked
│   ├── BadInput               bad prompt, flag, file or URL: nothing spent, no provider call
│   │   └── MediaError         a reference image that could not be fetched or is no image
│   ├── QuotaExceeded          names the limit and when it resets
│   ├── ProviderError          the provider said no, or could not be reached
│   │   ├── ProviderRejected       HTTP 400 / 422: the provider refused the request
│   │   ├── ProviderMisconfigured  HTTP 401 / 403: our key is wrong (operator's problem)
│   │   ├── ProviderOutOfCredit    HTTP 402
│   │   ├── ProviderBusy           HTTP 429 / 5xx after bounded retries, or an unreadable answer
│   │   │   └── UnreadableAnswer       a success whose body could not be read: the work may be taken
│   │   ├── ProviderUnreachable    no connection, or a lost one on a request safe to repeat
│   │   ├── SubmitOutcomeUnknown   the connection broke after the request was sent
│   │   └── JobTimedOut            the job ran past the configured limit
│   └── StoreUnavailable       the database cannot be reached or written (a lost connection, a full
│                              disk): nothing was kept; a job's task waits and tries its step again
├── CallbackRejected           a forged, stale or malformed callback: answered 4xx, nothing changes
└── ConfigError                a bad setting, named; raised at start-up only
"""

from __future__ import annotations

from bot import words


class HidreamError(Exception):
    """Root of every error the bot raises on purpose."""


class UserFacingError(HidreamError):
    """An error whose message may be shown to the requester as is (never contains secrets)."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        super().__init__(user_message if detail is None else f"{user_message} ({detail})")
        self.user_message = user_message
        # For the operator's log only; may name a setting but never a secret's value.
        self.detail = detail


class BadInput(UserFacingError):
    """The request itself is wrong: nothing is spent and no provider is called."""


class QuotaExceeded(UserFacingError):
    """The requester has no images left for today, or their tenant reached its ceiling or budget."""

    def __init__(self, user_message: str, *, limit: str = "user", detail: str | None = None) -> None:
        super().__init__(user_message, detail=detail)
        # Which limit refused: "user" (daily quota), "tenant" (daily ceiling) or "budget" (monthly dollars).
        self.limit = limit


class MediaError(BadInput):
    """A reference image could not be fetched, is no image, or is too large."""


class ProviderError(UserFacingError):
    """The provider refused or failed; quota is given back."""

    # The ids of the job's requests that the provider had already made when this one failed: a job
    # with any is not moved to another provider (those are made and billed).
    requests_made: tuple[str, ...] = ()


class ProviderRejected(ProviderError):
    """HTTP 400/422: the provider refused what we asked for."""


class ProviderMisconfigured(ProviderError):
    """HTTP 401/403: the key is missing or wrong. The user hears the bot is misconfigured."""


class ProviderOutOfCredit(ProviderError):
    """HTTP 402."""


class ProviderBusy(ProviderError):
    """HTTP 429 or 5xx, still failing after bounded retries; or an answer that could not be read."""


class UnreadableAnswer(ProviderBusy):
    """A success (2xx) whose body could not be read: the provider may have taken, and billed, the work,
    so it is never handed to another provider."""


class ProviderUnreachable(ProviderError):
    """No connection could be opened, or one was lost on a request that is safe to repeat."""


class SubmitOutcomeUnknown(ProviderError):
    """The request was sent but the answer was lost: never sent again blindly."""


class JobTimedOut(ProviderError):
    """The job did not finish within the configured limit."""


class StoreUnavailable(UserFacingError):
    """The database could not be reached, or could not keep what was written (a connection lost or
    refused, a disk full). Raised by the store's connection seam in place of the driver's own error,
    so the core tells it apart from a bug: a request being admitted is refused with nothing kept or
    charged, and a job's task waits and then tries its step again from the stored state."""

    def __init__(self, detail: str) -> None:
        super().__init__(words.STORE_UNAVAILABLE, detail=detail)


class CallbackRejected(HidreamError):
    """A callback with a wrong token, a bad or missing signature, or a malformed body."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


class ConfigError(HidreamError):
    """A setting is invalid; the message names it."""
