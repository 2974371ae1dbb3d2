"""What the Slack listeners need, and nothing more. SlackAdapter builds it from its settings, so the
listeners never hold (or import) the adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.posting import Poster

if TYPE_CHECKING:
    from bot.jobs.engine import Engine


@dataclass(frozen=True)
class ListenerContext:
    engine: Engine
    poster: Poster
    # Users an operator listed as admins; Slack's own workspace admins are asked from users.info.
    admin_users: frozenset[str]
    max_image_bytes: int

    @property
    def client(self) -> AsyncWebClient:
        """For views.open, files.info, files.delete and users.info (posting goes through the poster):
        the client of the request being answered, with its workspace's token."""
        return self.poster.client

    @property
    def bot_token(self) -> str:
        """Files people share are private: the engine downloads them with the workspace's bot token."""
        return str(self.client.token or "")
