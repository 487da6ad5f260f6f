"""One aiohttp application for every platform: /slack/events, /healthz, and what follows."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot import downloads, privacy
from bot import reports as _reports  # noqa: F401  (registers the evidence pack downloads)
from bot.adapters.web import Verification
from bot.app import App

logger = logging.getLogger(__name__)

APP_KEY = web.AppKey("nis2_app", App)
# Modules that offer downloads through signed links; each registers its producer.
DOWNLOAD_PROVIDERS = (privacy,)


def build(app: App, teams_authentication: object = None) -> web.Application:
    """The web application; Slack and Teams are each switched on when their settings are present.

    `teams_authentication` replaces botbuilder's own, for tests against a local fake.
    """
    web_app = web.Application()
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", _healthz)
    Verification(app).routes(web_app)
    web_app.router.add_get("/downloads/{token}", _download)
    mode = app.settings.slack_mode()
    if mode is None:
        logger.warning(
            "Slack is off; to switch it on set one of: %s", "; ".join(app.settings.slack_missing())
        )
    else:
        _add_slack(web_app, app, mode)
    missing = app.settings.teams_missing()
    if missing:
        logger.warning("Teams is off; to switch it on set %s", ", ".join(missing))
    else:
        from bot.adapters.teams.app import TeamsAdapter

        teams = TeamsAdapter(app, teams_authentication)
        web_app[TEAMS_KEY] = teams
        web_app.router.add_post("/api/messages", teams.handle)
        logger.info("Teams is on (%s)", app.settings.microsoft_app_type)
    return web_app


def _add_slack(web_app: web.Application, app: App, mode: str) -> None:
    from bot.adapters.slack.app import SlackAdapter
    from bot.adapters.slack.socket import SocketMode

    slack = SlackAdapter(app)
    web_app[SLACK_KEY] = slack
    if mode == "socket":
        socket = SocketMode(
            slack, app.settings.slack_app_token or "", app.settings.slack_socket_ping
        )
        web_app[SOCKET_KEY] = socket
        web_app.on_startup.append(lambda _app: socket.start())
        web_app.on_cleanup.append(lambda _app: socket.stop())
    else:
        web_app.router.add_post("/slack/events", slack.handle)
    if mode == "oauth":
        web_app.router.add_get("/slack/install", slack.oauth)
        web_app.router.add_get("/slack/oauth_redirect", slack.oauth)
    web_app.on_cleanup.append(lambda _app: slack.close())
    logger.info("Slack is on (%s mode)", mode)


SLACK_KEY = web.AppKey("slack", object)
SOCKET_KEY = web.AppKey("slack_socket", object)
TEAMS_KEY = web.AppKey("teams", object)


async def _healthz(request: web.Request) -> web.Response:
    """200 when the database and every configured connection work; 503 naming what does not."""
    problems = []
    try:
        async with asyncio.timeout(3), request.app[APP_KEY].db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        problems.append("the database does not answer")
    socket = request.app.get(SOCKET_KEY)
    if socket is not None and not socket.healthy():
        problems.append("slack socket mode is not connected")
    if problems:
        return web.json_response({"status": "unhealthy", "problems": problems}, status=503)
    return web.json_response({"status": "ok"})


async def _download(request: web.Request) -> web.Response:
    """A file behind a signed, short-lived link; a forged or expired link is simply not found."""
    app = request.app[APP_KEY]
    key = downloads.secret(app.settings)
    if key is None:
        raise web.HTTPNotFound()
    links = downloads.Links(key, downloads.public_url(app.settings))
    grant = links.open(request.match_info["token"], app.coach.clock())
    producer = downloads.PRODUCERS.get(grant.kind) if grant else None
    if grant is None or producer is None:
        raise web.HTTPNotFound()
    try:
        file = await producer(app, grant)
    except LookupError:  # what the link was made for is gone, or never was
        raise web.HTTPNotFound() from None
    disposition = f'attachment; filename="{file.filename}"'
    headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    return web.Response(body=file.content, content_type=file.content_type, headers=headers)
