"""Who asks, and what they see: every use case takes an `Actor` and returns a `Reply`, so a surface
only parses its payload into the one and renders the other."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.model.jobs import Job, tenant_of
from bot.usecases.actions import Action


@dataclass(frozen=True)
class Actor:
    """The person behind a request, as their surface vouches for them."""

    surface: str
    # The server or workspace asked in; empty in a direct message or on the console.
    workspace_id: str
    user_id: str
    # May manage the tenant (its limits, its policy, anyone's subjects).
    admin: bool = False
    # May manage messages where they ask (delete and undo anyone's results there).
    moderator: bool = False
    channel_id: str = ""
    age_restricted: bool = False
    # The channel `channel_id` is a thread of (empty outside a thread): a channel's policies, such as
    # its review, hold in its threads too.
    parent_channel_id: str = ""

    @property
    def tenant(self) -> str:
        return tenant_of(self.surface, self.workspace_id, self.user_id)

    @property
    def home_channel(self) -> str:
        """The channel whose policies hold where the actor asks: a thread's parent, else the channel."""
        return self.parent_channel_id or self.channel_id

    @property
    def key(self) -> str:
        """The person's mark on what they make (a subject's creator)."""
        return f"{self.surface}:{self.user_id}"

    def owns(self, job: Job) -> bool:
        """Whether the job counts in this actor's tenant: the only jobs a lookup may hand them."""
        return (
            job.surface == self.surface
            and tenant_of(job.surface, job.workspace_id, job.user_id) == self.tenant
        )


@dataclass(frozen=True)
class Picture:
    """An image a reply shows, with the file name a surface gives it."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Reply:
    """What a person is told: `private` answers reach the asker alone; `actions` are the buttons
    (bot/usecases/actions.py) a surface offers under the text where it can."""

    text: str
    private: bool = True
    images: tuple[Picture, ...] = ()
    actions: tuple[Action, ...] = field(default=())
