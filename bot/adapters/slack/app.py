"""The course in Slack: slack-bolt's AsyncApp, translating events into coach calls.

Every listener acknowledges first and works afterwards, so Slack always gets its
answer well inside 3 seconds (C03). Retried events and repeated clicks are
recognised in the database (C01, C02, C07). Each workspace has its own Web API
client with slack_sdk's retry handlers, so a 429 pauses only that workspace (C05).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import certificate as certificates
from bot import dates
from bot.adapters.slack import blocks
from bot.adapters.slack.admin import SlackAdmin
from bot.app import App
from bot.coach import CoachError
from bot.lessons.course import Language, OrgProfile
from bot.lessons.messages import (
    CertificateCard,
    Choice,
    DigestCard,
    FeedbackCard,
    Message,
    QuizResult,
    Text,
)
from bot.programme import Programme
from bot.settings import org_profile
from bot.store import slack_tables
from bot.store.models import Certificate, Enrolment, Person

logger = logging.getLogger(__name__)

PLATFORM = "slack"
SCOPES = [
    "chat:write",
    "commands",
    "im:history",
    "im:write",
    "users:read",
    "channels:read",
    "groups:read",
    "usergroups:read",
    "files:write",
]
ACTION = re.compile(r"^nis2\.([a-z_]+)\.\d+$")
NO_MESSAGE_UPDATE = frozenset({"progress", "language", "edit_settings", "reflect"})
POST_CONCURRENCY = 8
MY_DATA_WORDS = frozenset({"my-data", "my data", "mine data", "mine-data"})
TIME_WORDS = ("time", "tid")  # "time 08:00": the learner's own lesson time
# Work after the ack runs at most this many at a time, so a burst of clicks queues its
# slow part instead of crowding the event loop that acknowledges the next requests.
WORK_CONCURRENCY = 2


def retry_handlers() -> list[Any]:
    """slack_sdk's own handlers: 429 with Retry-After, dropped connections, 5xx."""
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


class SlackAdapter:
    """Owns the Bolt app, the per-workspace clients and the HTTP entry points."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.coach = app.coach
        self.course = app.course
        self.mode = self.settings.slack_mode()
        secret = self.settings.slack_signing_secret
        self.verifier = SignatureVerifier(secret) if secret else None
        self.clients: dict[str, AsyncWebClient] = {}
        self.organisations: dict[str, int] = {}
        self.installation_store: AsyncSQLAlchemyInstallationStore | None = None
        self.programme = Programme(app.coach)
        # SQLite writes one at a time anyway: a second worker would only contend for it.
        self.work = Gate(1 if app.db.is_sqlite else WORK_CONCURRENCY)
        self.admin_work = Gate(1)  # long enrolments never hold up learners' clicks
        self.bolt = self._bolt()
        self.admin = SlackAdmin(self)
        self._register()

    # -- set-up -----------------------------------------------------------------------------

    def _client(self, token: str | None = None) -> AsyncWebClient:
        return AsyncWebClient(
            token=token,
            base_url=self.settings.slack_api_url or AsyncWebClient.BASE_URL,
            retry_handlers=retry_handlers(),
        )

    def _bolt(self) -> AsyncApp:
        options: dict[str, Any] = {
            "signing_secret": self.settings.slack_signing_secret or "socket-mode",
            "request_verification_enabled": False,  # done over the raw bytes in handle()
            "process_before_response": False,
        }
        if self.mode == "oauth":
            engine = self.app.db.engine
            client_id = self.settings.slack_client_id or ""
            self.installation_store = AsyncSQLAlchemyInstallationStore(
                client_id,
                engine,
                bots_table_name=slack_tables.BOTS,
                installations_table_name=slack_tables.INSTALLATIONS,
            )
            state_store = AsyncSQLAlchemyOAuthStateStore(
                600, engine, table_name=slack_tables.OAUTH_STATES
            )
            options["oauth_settings"] = AsyncOAuthSettings(
                client_id=client_id,
                client_secret=self.settings.slack_client_secret,
                scopes=SCOPES,
                installation_store=self.installation_store,
                state_store=state_store,
                install_path="/slack/install",
                redirect_uri_path="/slack/oauth_redirect",
            )
            options["client"] = self._client()
        else:
            options["client"] = self._client(self.settings.slack_bot_token)
        return AsyncApp(**options)

    def _register(self) -> None:
        self.bolt.command("/nis2")(self._on_command)
        self.bolt.action(ACTION)(self._on_action)
        self.bolt.view(blocks.REFLECTION_CALLBACK)(self._on_reflection)
        self.bolt.view(blocks.SETTINGS_CALLBACK)(self._on_settings)
        self.bolt.event("app_home_opened")(self._on_home_opened)
        self.bolt.event("member_joined_channel")(self._on_member_joined)
        self.bolt.event("user_change")(self._on_user_change)
        self.bolt.event("message")(self._on_message)
        self.bolt.error(self._on_error)

    # -- HTTP -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """/slack/events: check the signature over the exact bytes, then hand over to Bolt."""
        raw = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if self.verifier is None:
            raise web.HTTPNotFound()
        try:
            valid = self.verifier.is_valid(raw, timestamp, signature)
            body = raw.decode("utf-8")
        except (UnicodeDecodeError, ValueError):
            valid = False
        if not valid:
            logger.warning("rejected a Slack request with a bad signature or timestamp")
            return web.Response(status=401, text="invalid signature")
        try:
            bolt_request = AsyncBoltRequest(
                body=body, query=request.query_string, headers=dict(request.headers)
            )
            response = await self.bolt.async_dispatch(bolt_request)
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning("rejected a signed but malformed Slack request")
            return web.Response(status=400, text="malformed request")
        return await to_aiohttp_response(response)

    async def oauth(self, request: web.Request) -> web.Response:
        """/slack/install and /slack/oauth_redirect, through Bolt's OAuth flow."""
        flow = self.bolt.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        bolt_request = AsyncBoltRequest(
            body="", query=request.query_string, headers=dict(request.headers)
        )
        if request.path == flow.install_path:
            response = await flow.handle_installation(bolt_request)
        else:
            response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(response)

    # -- clients and organisations ------------------------------------------------------------

    async def client_for(self, team_id: str) -> AsyncWebClient:
        """The workspace's own Web API client (its own rate-limit pauses)."""
        if team_id in self.clients:
            return self.clients[team_id]
        token = self.settings.slack_bot_token
        if self.installation_store is not None:
            bot = await self.installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
            if bot is None:
                raise LookupError(f"no Slack installation for workspace {team_id}")
            token = bot.bot_token
        client = self.clients[team_id] = self._client(token)
        return client

    async def organisation_id(self, team_id: str, client: AsyncWebClient) -> int:
        if team_id not in self.organisations:
            name = team_id
            try:
                name = (await client.auth_test()).get("team") or team_id
            except SlackApiError:
                logger.warning("auth.test failed for workspace %s", team_id)
            organisation = await self.coach.organisation(PLATFORM, team_id, name)
            if self.mode != "oauth":
                await self._apply_operator_profile(organisation.id)
            self.organisations[team_id] = organisation.id
        return self.organisations[team_id]

    async def _apply_operator_profile(self, organisation_id: int) -> None:
        """One workspace: organisation.yaml and the environment fill in what they set."""
        given = org_profile(self.settings).model_dump(exclude_none=True)
        if given:
            await self.coach.merge_profile(organisation_id, given)

    def language(self, code: str | None) -> Language:
        return self.course.language(code or self.settings.default_language)

    async def user(self, client: AsyncWebClient, user_id: str) -> dict[str, Any]:
        response = await client.users_info(user=user_id, include_locale=True)
        return response["user"]

    def user_language(self, user: dict[str, Any]) -> str | None:
        locale = (user.get("locale") or "").split("-")[0].lower()
        return locale if locale in self.course.languages else None

    async def is_admin(self, client: AsyncWebClient, user_id: str) -> bool:
        if user_id in self.settings.admins:
            return True
        user = await self.user(client, user_id)
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    # -- sending ----------------------------------------------------------------------------

    async def send(
        self,
        client: AsyncWebClient,
        channel: str,
        messages: list[Message],
        lang: Language,
        user_id: str | None = None,
    ) -> None:
        """Post messages in order; after a passed quiz, upload the certificate PDF too."""
        for index, message in enumerate(messages):
            if isinstance(message, DigestCard):
                await self._send_digest(client, channel, user_id, message)
                continue
            payload = blocks.render(message, lang)
            await client.chat_postMessage(channel=channel, text=payload.text, blocks=payload.blocks)
            earlier = messages[:index]
            passed = any(isinstance(m, QuizResult) and m.passed for m in earlier)
            if isinstance(message, CertificateCard) and passed and message.pdf_path:
                await self._upload_certificate(client, channel, user_id, message, lang)

    async def _send_digest(
        self, client: AsyncWebClient, channel: str, user_id: str | None, card: DigestCard
    ) -> None:
        """The digest's messages in order, then its chart uploaded as a PNG into the same chat."""
        for payload in blocks.render_digest(card):
            await client.chat_postMessage(channel=channel, text=payload.text, blocks=payload.blocks)
        if not card.chart_png:
            return
        if not channel.startswith("D") and user_id:
            channel = (await client.conversations_open(users=user_id))["channel"]["id"]
        await client.files_upload_v2(
            channel=channel,
            content=card.chart_png,
            filename="nis2-digest-chart.png",
            title=card.chart_title,
        )

    async def _upload_certificate(
        self,
        client: AsyncWebClient,
        channel: str,
        user_id: str | None,
        card: CertificateCard,
        lang: Language,
    ) -> None:
        if not channel.startswith("D") and user_id:
            channel = (await client.conversations_open(users=user_id))["channel"]["id"]
        await client.files_upload_v2(
            channel=channel,
            file=str(card.pdf_path),
            filename=f"nis2-certificate-{card.code}.pdf",
            title=card.heading,
            initial_comment=_certificate_comment(card, lang),
        )

    async def start_learner(self, team_id: str, user_id: str, enrolment_id: int) -> None:
        """A newly enrolled learner's welcome and first lesson, in their DM and language."""
        client = await self.client_for(team_id)
        lang = self.language((await self.coach.enrolment(enrolment_id)).language)
        welcome = Text(lang.s("platform.welcome", title=lang.text.title))
        messages = await self.coach.next(enrolment_id)
        await self.send(client, user_id, [welcome, *messages], lang, user_id)

    async def start_learners(self, team_id: str, learners: list[tuple[str, int]]) -> None:
        gate = asyncio.Semaphore(POST_CONCURRENCY)

        async def one(user_id: str, enrolment_id: int) -> None:
            async with gate:
                try:
                    await self.start_learner(team_id, user_id, enrolment_id)
                except SlackApiError as error:
                    logger.warning(
                        "first lesson to %s failed: %s", user_id, error.response.get("error")
                    )

        await asyncio.gather(*(one(*learner) for learner in learners))

    # -- the learner's clicks ---------------------------------------------------------------

    async def _learner(self, team_id: str, user_id: str) -> tuple[Person, Enrolment] | None:
        found = await self.coach.find_learner(PLATFORM, team_id, user_id)
        if found is None or found[1] is None or not found[0].active:
            return None
        return found[0], found[1]

    async def _on_action(
        self,
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        await ack()
        verb = ACTION.match(action["action_id"])[1]
        team_id, user_id = body["team"]["id"], body["user"]["id"]
        if verb == "reflect":
            async with guard():
                await self._open_reflection(client, body, action)
        elif verb == "edit_settings":
            async with guard():  # trigger_id lives 3 s: no queueing
                await self.admin.open_settings(client, body)
        elif verb == "language":
            async with self.work():
                choice = action["selected_option"]["value"]
                await self._set_language(client, team_id, user_id, choice)
        else:
            async with self.work():
                await self._learner_action(client, body, verb, action.get("value", ""))

    async def _learner_action(
        self, client: AsyncWebClient, body: dict[str, Any], verb: str, value: str
    ) -> None:
        team_id, user_id = body["team"]["id"], body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or user_id
        message = body.get("message") or {}
        found = await self._learner(team_id, user_id)
        if found is None:
            lang = self.language(None)
            await client.chat_postMessage(channel=channel, text=lang.s("platform.not_enrolled"))
            return
        person, enrolment = found
        lang = self.language(enrolment.language)
        click = self._click_key(body, channel, message, verb)
        if click and not await self.coach.claim_event(PLATFORM, click):
            return
        try:
            action_ts = (body.get("actions") or [{}])[0].get("action_ts")
            try:
                replies = await self.coach.handle(
                    enrolment.id, verb, "" if value == "-" else value, action_ts
                )
            except CoachError as error:
                replies = [Text(lang.s(error.key))]
            await self._after_click(client, channel, message, verb, replies, lang, user_id)
        except SlackApiError:
            if click:  # nothing reached the learner: let the same button work again
                await self.coach.release_event(PLATFORM, click)
            raise
        if body.get("view", {}).get("type") == "home":
            await self.publish_home(client, team_id, user_id, None)

    @staticmethod
    def _click_key(
        body: dict[str, Any], channel: str, message: dict[str, Any], verb: str
    ) -> str | None:
        """One key per button press on one message or Home view, so a double click acts once."""
        if verb == "answer" or verb in NO_MESSAGE_UPDATE:
            return None  # answers are idempotent in the coach; these change nothing
        if message.get("ts"):
            return f"{channel}:{message['ts']}:{verb}"
        view = body.get("view") or {}
        if view.get("hash"):
            return f"home:{body['user']['id']}:{view['hash']}:{verb}"
        return None

    async def _after_click(
        self,
        client: AsyncWebClient,
        channel: str,
        message: dict[str, Any],
        verb: str,
        replies: list[Message],
        lang: Language,
        user_id: str,
    ) -> None:
        """Replace the clicked buttons with what was chosen (C07), then post what follows."""
        first = replies[0] if replies else None
        if message.get("ts") and isinstance(first, FeedbackCard):
            updated = blocks.answered(message.get("blocks", []), blocks.feedback_blocks(first))
            await client.chat_update(
                channel=channel, ts=message["ts"], text=first.text, blocks=updated
            )
            if first.repeated:
                return
            replies = replies[1:]
        elif message.get("ts") and verb not in NO_MESSAGE_UPDATE:
            label = _clicked_label(message, verb)
            updated = blocks.answered(message.get("blocks", []), blocks.chosen_note(label, lang))
            await client.chat_update(
                channel=channel, ts=message["ts"], text=message.get("text") or label, blocks=updated
            )
        await self.send(client, channel, replies, lang, user_id)

    async def _open_reflection(
        self, client: AsyncWebClient, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        """Open the modal straight away from the content, before any database work (C06)."""
        code, _, lesson_id = action["value"].partition("|")
        lang = self.language(code)
        try:
            template = lang.lesson(lesson_id).reflection or ""
        except KeyError:
            return
        channel = (body.get("channel") or {}).get("id", "")
        ts = (body.get("message") or {}).get("ts", "")
        meta = {"channel": channel, "ts": ts}
        neutral = lang.fill(template, OrgProfile())
        view = blocks.reflection_modal(lang, lesson_id, neutral, meta)
        opened = await client.views_open(trigger_id=body["trigger_id"], view=view)
        async with self.work():
            profile = await self.coach.profile_for(PLATFORM, body["team"]["id"])
        filled = lang.fill(template, profile)
        if filled != neutral:
            view = blocks.reflection_modal(lang, lesson_id, filled, meta)
            await client.views_update(view_id=opened["view"]["id"], view=view)

    async def _on_reflection(
        self,
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        await ack()
        async with self.work():
            await self._save_reflection(body, view, client)

    async def _save_reflection(
        self, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        text = view["state"]["values"]["reflection"]["text"].get("value") or ""
        team_id, user_id = body["team"]["id"], body["user"]["id"]
        found = await self._learner(team_id, user_id)
        if found is None:
            return
        lang = self.language(found[1].language)
        try:
            replies = await self.coach.reflect(found[1].id, meta.get("lesson", ""), text)
        except CoachError as error:
            replies = [Text(lang.s(error.key))]
        channel = meta.get("channel") or user_id
        if meta.get("ts"):
            saved = lang.s("platform.reflection_saved")
            await client.chat_update(
                channel=channel, ts=meta["ts"], text=saved, blocks=blocks.reflection_done(lang)
            )
        await self.send(client, channel, replies, lang, user_id)

    async def _on_settings(
        self,
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        await self.admin.save_settings(ack, body, view, client)

    async def _set_language(
        self, client: AsyncWebClient, team_id: str, user_id: str, code: str
    ) -> None:
        found = await self.coach.find_learner(PLATFORM, team_id, user_id)
        if found is not None and found[1] is not None:
            await self.coach.set_preferences(found[1].id, language=code)
        await self.publish_home(client, team_id, user_id, code)

    # -- events -----------------------------------------------------------------------------

    async def _first_time(self, body: dict[str, Any]) -> bool:
        """False for a retried or redelivered event (C01, C02): the key is in the database."""
        event_id = body.get("event_id")
        return event_id is None or await self.coach.claim_event(PLATFORM, event_id)

    async def _on_home_opened(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        if event.get("tab", "home") == "home":
            async with self.work():
                await self.publish_home(client, body["team_id"], event["user"], None)

    async def publish_home(
        self, client: AsyncWebClient, team_id: str, user_id: str, code: str | None
    ) -> None:
        found = await self._learner(team_id, user_id)
        lang = self.language(code or (found[1].language if found else None))
        learner = await self._home_learner(found, lang)
        admin = None
        if await self.is_admin(client, user_id):
            admin = await self.admin.home_blocks(client, team_id, lang)
        languages = [(c, "Dansk" if c == "da" else "English") for c in self.course.languages]
        view = blocks.home_view(lang, learner, admin, languages)
        await client.views_publish(user_id=user_id, view=view)

    async def _home_learner(self, found: tuple[Person, Enrolment] | None, lang: Language) -> list:
        if found is None:
            return blocks.sections(blocks.escape(lang.s("home.not_enrolled")))
        card = (await self.coach.progress(found[1].id))[0]
        result = blocks.progress_blocks(card)
        certificate = await self.coach.certificate_of(found[1].id)
        if certificate is not None:
            result += blocks.sections(blocks.escape(self._certificate_line(certificate, lang)))
        choices = (Choice("next", "", lang.s("button.next_lesson")),)
        return [*result, blocks.buttons(choices)]

    def _certificate_line(self, certificate: Certificate, lang: Language) -> str:
        expires = dates.format_date(certificate.expires_at, lang.code)
        if certificates.status(certificate) == "expired":
            return lang.s("home.certificate_expired", code=certificate.code, expires=expires)
        url = self.settings.verify_url(certificate.code)
        return lang.s("home.certificate", code=certificate.code, expires=expires, url=url)

    async def _on_member_joined(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        async with self.work():
            if await self._first_time(body):
                await self.admin.member_joined(
                    client, body["team_id"], event["channel"], event["user"]
                )

    async def _on_user_change(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Someone left (or came back to) the workspace: lessons stop (or may start again)."""
        async with self.work():
            if not await self._first_time(body):
                return
            user = event.get("user") or {}
            organisation_id = await self.organisation_id(body["team_id"], client)
            await self.programme.set_active(organisation_id, user["id"], not user.get("deleted"))

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Text in the learner's DM: next, progress, pause, help."""
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return
        async with self.work():
            if await self._first_time(body):
                await self._dm_command(client, body, event)

    async def _dm_command(
        self, client: AsyncWebClient, body: dict[str, Any], event: dict[str, Any]
    ) -> None:
        team_id, user_id = body["team_id"], event["user"]
        found = await self._learner(team_id, user_id)
        lang = self.language(found[1].language if found else None)
        word = (event.get("text") or "").strip().casefold()
        if word in MY_DATA_WORDS:
            reply = await self.admin.my_data(client, team_id, {"id": user_id}, lang)
            await client.chat_postMessage(channel=event["channel"], text=reply)
            return
        first, _, rest = word.partition(" ")
        if found is not None and first in TIME_WORDS:
            replies = await self.coach.set_lesson_time(found[1].id, rest)
            await self.send(client, event["channel"], replies, lang, user_id)
            return
        verb = next((v for v in ("next", "progress", "pause") if _says(lang, v, word)), None)
        if found is None or verb is None:
            key = "platform.not_enrolled" if found is None else "platform.dm_help"
            await client.chat_postMessage(channel=event["channel"], text=lang.s(key))
            return
        replies = await self.coach.handle(found[1].id, verb)
        await self.send(client, event["channel"], replies, lang, user_id)

    async def _on_command(
        self,
        ack: Callable[..., Awaitable[Any]],
        command: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        words = (command.get("text") or "").split()
        if words and words[0].casefold() in TIME_WORDS:
            await ack()
            await self._time_command(command, respond, " ".join(words[1:]))
            return
        slow = bool(words) and words[0].casefold() in ("enroll", "enrol", "remind", "report")
        if slow:
            await ack(self.language(None).s("admin.working"))
        else:
            await ack()
        async with self.admin_work():
            follow_up = await self.admin.command(command, client, respond)
        if follow_up is not None:
            async with guard():
                await follow_up()  # first lessons or nudges: paced by the Web API

    async def _time_command(
        self, command: dict[str, Any], respond: Callable[..., Awaitable[Any]], text: str
    ) -> None:
        """`/nis2 time 08:00`: a learner's own lesson time, answered only to them."""
        found = await self._learner(command["team_id"], command["user_id"])
        lang = self.language(found[1].language if found else None)
        if found is None:
            await respond(text=lang.s("platform.not_enrolled"), response_type="ephemeral")
            return
        replies = await self.coach.set_lesson_time(found[1].id, text)
        reply = "\n".join(getattr(message, "text", "") for message in replies)
        await respond(text=reply, response_type="ephemeral")

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        logger.exception("unhandled error in a Slack listener", exc_info=error)

    # -- life cycle -------------------------------------------------------------------------

    async def close(self) -> None:
        for client in self.clients.values():
            session = getattr(client, "session", None)
            if session is not None:
                await session.close()


class Gate:
    """At most n pieces of work after the ack at once, each inside guard()."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        async with self._slots, guard():
            yield


@asynccontextmanager
async def guard() -> AsyncIterator[None]:
    """Log what fails after the ack instead of raising it.

    Raising there would reach slack-bolt's error path, which can undo the
    acknowledgement already given (a 3 s hang, then a 404 for Slack).
    """
    try:
        yield
    except SlackApiError as error:
        logger.warning("Slack refused a call: %s", error.response.get("error"))
    except Exception:  # the top-level handler for work after the ack
        logger.exception("unhandled error in Slack work after the ack")


def _certificate_comment(card: CertificateCard, lang: Language) -> str:
    comment = lang.s("platform.certificate_comment")
    if card.credential_url:
        comment += "\n" + lang.s("credential.comment", url=card.credential_url)
    return comment


def _says(lang: Language, verb: str, word: str) -> bool:
    key = {"next": "chat.command.next", "progress": "chat.command.progress"}.get(verb)
    words = {verb, *(lang.s(key).split("|") if key else [])}
    if verb == "pause":
        words |= {"pause"}
    return word in words


def _clicked_label(message: dict[str, Any], verb: str) -> str:
    for block in message.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id", "").startswith(f"nis2.{verb}."):
                return element.get("text", {}).get("text", verb)
    return verb
