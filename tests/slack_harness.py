"""Driving the real server as Slack does: signed HTTP requests in, Web API calls to a fake.

Requests are built like Slack's own (slash commands as forms, clicks and modal
submissions as `payload=` forms, events as JSON) and signed over their exact bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bot.app import App
from tests.fakes.slack_api import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0ACME"
TOKEN = "xoxb-acme-token"
ADMIN, LEARNER = "UADMIN01", "ULEARN01"


def populate(fake: FakeSlack) -> None:
    """A workspace with an admin, a learner, a guest, a leaver, a bot and a Danish colleague."""
    fake.add_workspace(TEAM, TOKEN, name="Acme")
    fake.add_user(TEAM, ADMIN, "Alma Admin", is_admin=True)
    fake.add_user(TEAM, LEARNER, "Lars Learner")
    fake.add_user(TEAM, "UGUEST01", "Gita Guest", is_restricted=True)
    fake.add_user(TEAM, "UGONE001", "Gustav Gone", deleted=True)
    fake.add_user(TEAM, "UROBOT01", "Deploy Bot", is_bot=True)
    fake.add_user(TEAM, "UDANE001", "Dorthe Dansk", locale="da-DK")
    members = [ADMIN, LEARNER, "UGUEST01", "UGONE001", "UROBOT01", "UDANE001"]
    fake.add_channel(TEAM, "C0SECURE", "security", members)


class SlackHarness:
    def __init__(self, fake: FakeSlack, app: App, web_app: web.Application) -> None:
        self.fake = fake
        self.app = app
        self.web_app = web_app
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.web_app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- signing and posting ----------------------------------------------------------------

    @staticmethod
    def headers(body: bytes, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    async def post(
        self,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, float]:
        """POST to /slack/events; returns status, body text and seconds until the answer."""
        sent = {"Content-Type": content_type, **(headers or self.headers(body)), **(extra or {})}
        started = time.monotonic()
        async with self._session.post(
            f"{self.url}/slack/events", data=body, headers=sent
        ) as response:
            text = await response.text()
            return response.status, text, time.monotonic() - started

    async def command(self, user: str, text: str, team: str = TEAM) -> tuple[int, str, float]:
        form = {
            "token": "legacy",
            "team_id": team,
            "team_domain": "acme",
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/nis2",
            "text": text,
            "api_app_id": "AFAKEAPP1",
            "response_url": self.fake.response_url(f"cmd{next(self._ids)}"),
            "trigger_id": f"{next(self._ids)}.{next(self._ids)}.trigger",
        }
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str, float]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def click(
        self, user: str, message: dict[str, Any], action: dict[str, Any], team: str = TEAM
    ) -> tuple[int, str, float]:
        payload = {
            "type": "block_actions",
            "team": {"id": team, "domain": "acme"},
            "user": {"id": user, "team_id": team},
            "api_app_id": "AFAKEAPP1",
            "token": "legacy",
            "is_enterprise_install": False,
            "enterprise": None,
            "trigger_id": f"{next(self._ids)}.{next(self._ids)}.trigger",
            "channel": {"id": message["channel"]},
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": message["channel"],
            },
            "message": {
                "type": "message",
                "ts": message["ts"],
                "text": message.get("text", ""),
                "blocks": message.get("blocks") or [],
            },
            "response_url": self.fake.response_url(f"click{next(self._ids)}"),
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }
        return await self.interact(payload)

    async def submit(
        self, user: str, view: dict[str, Any], values: dict[str, Any], team: str = TEAM
    ) -> tuple[int, str, float]:
        payload = {
            "type": "view_submission",
            "team": {"id": team, "domain": "acme"},
            "user": {"id": user, "team_id": team},
            "api_app_id": "AFAKEAPP1",
            "token": "legacy",
            "is_enterprise_install": False,
            "trigger_id": f"{next(self._ids)}.{next(self._ids)}.trigger",
            "view": {**view, "state": {"values": values}},
        }
        return await self.interact(payload)

    def event_body(self, event: dict[str, Any], event_id: str, team: str = TEAM) -> bytes:
        body = {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "AFAKEAPP1",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
            "is_ext_shared_channel": False,
        }
        return json.dumps(body).encode()

    async def event(
        self, event: dict[str, Any], event_id: str, retry: int | None = None, team: str = TEAM
    ) -> tuple[int, str, float]:
        extra = {}
        if retry is not None:
            extra = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(self.event_body(event, event_id, team), "application/json", extra)

    # -- reading what the bot did -----------------------------------------------------------

    def current(self, channel: str) -> list[dict[str, Any]]:
        """The channel's messages as they look now (updates applied), oldest first."""
        latest: dict[str, dict[str, Any]] = {}
        for message in self.fake.messages:
            if message["channel"] == channel:
                latest[message["ts"]] = dict(message)
        for update in self.fake.updates:
            if update["channel"] == channel and update["ts"] in latest:
                latest[update["ts"]].update(blocks=update["blocks"], text=update["text"])
        return sorted(latest.values(), key=lambda message: float(message["ts"]))

    def waiting(self, channel: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The newest message with buttons still on it, and those buttons."""
        for message in reversed(self.current(channel)):
            for block in message.get("blocks") or []:
                if block.get("type") == "actions":
                    return message, block["elements"]
        return None

    async def until(self, condition: Callable[[], Any], within: float = 30) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            await asyncio.sleep(0.02)
        raise AssertionError("timed out waiting for the bot")
