"""Socket Mode for companies that cannot expose a public URL, watched so it never hangs (C10).

slack_sdk reconnects by itself, but a dead connection URL can leave it retrying the
same address for ever. A small watchdog notices a connection that stays down,
asks for a fresh URL with growing pauses, and tells /healthz the truth meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

if TYPE_CHECKING:
    from bot.adapters.slack.app import SlackAdapter

logger = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class SocketMode:
    def __init__(self, slack: SlackAdapter, app_token: str, ping_interval: float = 10) -> None:
        self.handler = AsyncSocketModeHandler(
            slack.bolt, app_token, web_client=slack.bolt.client, ping_interval=ping_interval
        )
        self.interval = ping_interval
        self.grace = ping_interval * 3
        self.down_since: float | None = None
        self.reconnects = 0
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background, so the web server starts even if Slack is unreachable."""
        self.down_since = time.monotonic()
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self.handler.close_async()

    def healthy(self) -> bool:
        """Connected, or down for less than the grace period."""
        return self.down_since is None or time.monotonic() - self.down_since < self.grace

    async def _watch(self) -> None:
        backoff = self.interval
        client = self.handler.client
        while True:
            connected = await client.is_connected()
            if connected:
                if self.down_since is not None:
                    logger.info("Slack Socket Mode connected")
                self.down_since, backoff = None, self.interval
                await asyncio.sleep(self.interval)
                continue
            if self.down_since is None:
                self.down_since = time.monotonic()
            await self._reconnect()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _reconnect(self) -> None:
        """A fresh URL and a new connection; any failure is logged and retried later."""
        self.reconnects += 1
        client = self.handler.client
        logger.warning(
            "Slack Socket Mode is not connected; reconnecting (attempt %s)", self.reconnects
        )
        try:
            client.wss_uri = None
            await asyncio.wait_for(
                client.connect_to_new_endpoint(force=True), timeout=self.interval * 2
            )
        except Exception as error:  # any failure here is retried with a longer pause
            logger.warning("Slack Socket Mode reconnect failed: %s", type(error).__name__)
