"""What the worker needs from a chat platform to deliver a planned send, and nothing more.

Adapters implement `Messenger`; the worker knows only this module. The errors say
what the worker should do next: pause the organisation (RateLimited), give up on
the person (Unreachable), put the organisation's rows back for later (WorkspaceDown).
Any other exception leaves the row marked "sending", to be checked before a resend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.lessons.course import Language
from bot.lessons.messages import Message

Pace = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Recipient:
    """Whom a planned send goes to, as the platform knows them."""

    person_id: int
    organisation_id: int
    platform: str
    workspace: str  # the Slack team id or the Teams tenant id
    user_id: str
    language: str | None
    timezone: str | None


class RateLimited(Exception):
    """The platform asked this organisation to wait (HTTP 429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


class Unreachable(Exception):
    """The platform will not deliver to this person (not found, blocked, deactivated)."""


class WorkspaceDown(Exception):
    """Nothing can be sent to this organisation now (token revoked, app uninstalled)."""


class CannotTell(Exception):
    """The platform keeps no history the worker could check for an earlier send."""


class Messenger(Protocol):
    """A chat platform as the worker sees it."""

    rate: float  # messages per second per organisation

    async def deliver(
        self,
        to: Recipient,
        messages: list[Message],
        lang: Language,
        key: str,
        sent: dict[int, str],
        pace: Pace,
    ) -> None:
        """Send each message not yet in `sent`, tagged with `key`, adding its platform id there.

        `pace` is awaited before every platform call; a RateLimited raised half-way is
        retried with the same `sent`, so no part goes twice.
        """
        ...

    async def find(self, to: Recipient, key: str, since: datetime, pace: Pace) -> dict[int, str]:
        """Parts of an earlier send tagged `key` since `since`, by index; CannotTell if unknown."""
        ...
