"""The worker's way into Teams: the stored conversation reference, continued proactively.

Teams keeps no history a bot could search, so a send that may have gone out before
a worker died cannot be checked: `find` says so, and the worker does not send it
again (the next reminder shows the lesson anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botbuilder.core import TurnContext

from bot.adapters.teams import cards
from bot.adapters.teams.app import TeamsAdapter, card_activity, with_retries
from bot.adapters.teams.app import Unreachable as Refused
from bot.delivery import CannotTell, Pace, Recipient, Unreachable
from bot.lessons.course import Language
from bot.lessons.messages import DigestCard, Message


class TeamsMessenger:
    """Sends planned sends to learners' personal chats through botbuilder's CloudAdapter."""

    def __init__(self, teams: TeamsAdapter) -> None:
        self.teams = teams
        self.rate = teams.settings.teams_send_rate

    async def deliver(
        self,
        to: Recipient,
        messages: list[Message],
        lang: Language,
        key: str,
        sent: dict[int, str],
        pace: Pace,
    ) -> None:
        reference = await self.teams.reference_for(to.person_id)
        if reference is None:
            raise Unreachable("no conversation with the bot yet")

        async def callback(context: TurnContext) -> None:
            for index, card in enumerate(_cards(messages, lang)):
                if index in sent:
                    continue
                activity = card_activity(card)
                await pace()
                response = await with_retries(lambda a=activity: context.send_activity(a))
                sent[index] = getattr(response, "id", None) or ""

        try:
            await self.teams.cloud.continue_conversation(reference, callback, self.teams.app_id)
        except Refused as error:
            raise Unreachable(str(error)) from None

    async def find(self, to: Recipient, key: str, since: datetime, pace: Pace) -> dict[int, str]:
        raise CannotTell("Teams keeps no history a bot can search")


def _cards(messages: list[Message], lang: Language) -> list[dict[str, Any]]:
    """The cards to send, in order; a long digest is several cards, each a part of its own."""
    found: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, DigestCard):
            found += cards.render_digest(message)
        else:
            found.append(cards.render(message, lang))
    return found
