"""The worker's way into Slack: a DM per learner, tagged so a resend can be recognised.

Every message of a planned send carries Slack message metadata with the send's key
and its part number. If a worker dies after Slack accepted a message but before the
database heard of it, the next worker finds the key in the DM's history and does not
post it again. 429s become RateLimited, so the worker pauses only this workspace.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import blocks
from bot.delivery import Pace, RateLimited, Recipient, Unreachable, WorkspaceDown
from bot.lessons.course import Language
from bot.lessons.messages import DigestCard, Message
from bot.settings import Settings

logger = logging.getLogger(__name__)

EVENT_TYPE = "nis2_planned_send"
PERSON_ERRORS = frozenset(
    {"user_not_found", "user_not_visible", "cannot_dm_bot", "user_disabled", "channel_not_found"}
)
WORKSPACE_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "team_access_not_granted",
        "missing_scope",
        "no_permission",
        "team_is_restricted",
    }
)
HISTORY_PAGES = 5


class SlackMessenger:
    """Posts planned sends to learners' DMs, one Web API client per workspace."""

    def __init__(self, settings: Settings, installation_store: Any = None) -> None:
        self.settings = settings
        self.rate = settings.slack_send_rate
        self.installation_store = installation_store
        self.clients: dict[str, AsyncWebClient] = {}
        self.session: aiohttp.ClientSession | None = None

    async def client(self, team_id: str) -> AsyncWebClient:
        """The workspace's client; 429s are not retried inside it but handed to the worker."""
        if team_id not in self.clients:
            if self.session is None:  # one connection pool, not a new one per call
                self.session = aiohttp.ClientSession()
            self.clients[team_id] = AsyncWebClient(
                token=await self._token(team_id),
                session=self.session,
                base_url=self.settings.slack_api_url or AsyncWebClient.BASE_URL,
                retry_handlers=[
                    AsyncConnectionErrorRetryHandler(max_retry_count=2),
                    AsyncServerErrorRetryHandler(max_retry_count=2),
                ],
            )
        return self.clients[team_id]

    async def _token(self, team_id: str) -> str | None:
        if self.installation_store is None:
            return self.settings.slack_bot_token
        bot = await self.installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None:
            raise WorkspaceDown(f"no Slack installation for workspace {team_id}")
        return bot.bot_token

    async def deliver(
        self,
        to: Recipient,
        messages: list[Message],
        lang: Language,
        key: str,
        sent: dict[int, str],
        pace: Pace,
    ) -> None:
        """One chat.postMessage per part, to the learner's user id (Slack opens the DM).

        A digest is several messages and a chart: each is a numbered part, so a resend
        after a crash posts only the parts that did not arrive.
        """
        client = await self.client(to.workspace)
        channel = to.user_id
        for index, part in enumerate(_payloads(messages, lang)):
            if index in sent:
                continue
            await pace()
            if isinstance(part, DigestCard):
                sent[index] = await self._upload_chart(client, to, part)
                continue
            metadata = {"event_type": EVENT_TYPE, "event_payload": {"key": key, "part": index}}
            response = await _call(
                client.chat_postMessage(
                    channel=channel, text=part.text, blocks=part.blocks, metadata=metadata
                )
            )
            sent[index] = str(response["ts"])

    async def _upload_chart(self, client: AsyncWebClient, to: Recipient, card: DigestCard) -> str:
        """The digest's chart, as a PNG in the same DM (uploads need the DM's channel id)."""
        opened = await _call(client.conversations_open(users=to.user_id))
        response = await _call(
            client.files_upload_v2(
                channel=opened["channel"]["id"],
                content=card.chart_png,
                filename="nis2-digest-chart.png",
                title=card.chart_title,
            )
        )
        return str((response.get("file") or {}).get("id") or "chart")

    async def find(self, to: Recipient, key: str, since: datetime, pace: Pace) -> dict[int, str]:
        """The parts of send `key` already in the learner's DM since `since`."""
        client = await self.client(to.workspace)
        await pace()
        opened = await _call(client.conversations_open(users=to.user_id))
        channel = opened["channel"]["id"]
        found: dict[int, str] = {}
        cursor = None
        for _ in range(HISTORY_PAGES):
            await pace()
            page = await _call(
                client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp() - 60:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            )
            found |= _parts(page.get("messages") or [], key)
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        logger.debug("history of %s holds %s parts of %s", to.person_id, len(found), key)
        return found

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.clients.clear()


def _payloads(messages: list[Message], lang: Language) -> list[blocks.Payload | DigestCard]:
    """The Slack messages to post, in order; a digest's chart is a part of its own."""
    parts: list[blocks.Payload | DigestCard] = []
    for message in messages:
        if isinstance(message, DigestCard):
            parts += blocks.render_digest(message)
            parts += [message] if message.chart_png else []
        else:
            parts.append(blocks.render(message, lang))
    return parts


def _parts(messages: list[dict[str, Any]], key: str) -> dict[int, str]:
    parts: dict[int, str] = {}
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == EVENT_TYPE and payload.get("key") == key:
            parts[int(payload.get("part", 0))] = str(message["ts"])
    return parts


async def _call(request: Any) -> Any:
    """Await a Web API call, turning Slack's refusals into what the worker acts on."""
    try:
        return await request
    except SlackApiError as error:
        response = error.response
        code = response.get("error") if hasattr(response, "get") else None
        if response.status_code == 429:
            retry_after = float(
                response.headers.get("Retry-After", response.headers.get("retry-after", 1))
            )
            raise RateLimited(retry_after) from None
        if code in PERSON_ERRORS:
            raise Unreachable(code) from None
        if code in WORKSPACE_ERRORS:
            raise WorkspaceDown(code) from None
        raise
