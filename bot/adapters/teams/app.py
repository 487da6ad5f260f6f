"""The course in Microsoft Teams through botbuilder's CloudAdapter.

botbuilder-python is archived upstream, so every botbuilder import stays in this
package. Activities become coach calls; the coach's messages become Adaptive
Cards. Conversation references are stored on every incoming activity so lessons
can be sent after a restart (C12); the same activity delivered twice has one
effect (C16); sends are retried on 429, 412, 502 and 504 with backoff and jitter
(C19); people Teams will not let us reach are marked and listed (C11).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    ErrorResponseException,
)
from sqlalchemy import select

from bot import audit, downloads, reports
from bot.adapters.digest_commands import VERBS as DIGEST_VERBS
from bot.adapters.digest_commands import apply_digest, parse_digest
from bot.adapters.options import UsageError, enrol_options
from bot.adapters.replies import counts_line, enrol_summary, progress_text, revoke
from bot.adapters.teams import cards
from bot.app import App
from bot.coach import CoachError
from bot.digest import Digests
from bot.lessons.course import Language
from bot.lessons.messages import Actions, Choice, DigestCard, FeedbackCard, Message, Text
from bot.programme import EnrolOutcome, Member, Programme
from bot.settings import org_profile
from bot.store.models import ConversationRef

logger = logging.getLogger(__name__)

PLATFORM = "teams"
CARD = "application/vnd.microsoft.card.adaptive"
RETRY_STATUSES = frozenset({412, 429, 502, 504})
UNREACHABLE = frozenset(
    {"BotNotInConversationRoster", "ConversationBlockedByUser", "BotDisabledByAdmin"}
)
MAX_TRIES = 5
PAGE_SIZE = 500
ADMIN_COMMANDS = frozenset({"enroll", "unenroll", "remind", "manager", "revoke", "report"})
MY_DATA_WORDS = frozenset({"my-data", "my data", "mine data", "mine-data"})
AUDIT_ACTIONS = {"enroll": "enrol", "unenroll": "unenrol"}


@dataclass(frozen=True)
class BotConfig:
    """The attributes botbuilder reads from its configuration object."""

    APP_ID: str
    APP_PASSWORD: str
    APP_TYPE: str
    APP_TENANTID: str | None


class Unreachable(Exception):
    """Teams refused to deliver to this person (blocked, uninstalled, disabled)."""


async def with_retries(operation: Callable[[], Awaitable[Any]]) -> Any:
    """Retry what Teams throttles or fails for a moment, with growing, jittered pauses (C19)."""
    for attempt in range(MAX_TRIES):
        try:
            return await operation()
        except ErrorResponseException as error:
            status = error.response.status_code if error.response is not None else 0
            code = getattr(getattr(error.error, "error", None), "code", "") or ""
            if status == 403 and code in UNREACHABLE:
                raise Unreachable(code) from error
            if status not in RETRY_STATUSES or attempt == MAX_TRIES - 1:
                raise
            pause = _retry_after(error) or 0.5 * 2**attempt
            logger.warning("Teams answered %s; retrying in %.1f s", status, pause)
            await asyncio.sleep(pause + random.uniform(0, 0.25))
    raise AssertionError("unreachable")


def _retry_after(error: ErrorResponseException) -> float | None:
    value = error.response.headers.get("Retry-After") if error.response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def card_activity(card: dict[str, Any], activity_id: str | None = None) -> Activity:
    return Activity(
        type=ActivityTypes.message,
        id=activity_id,
        summary=card["fallbackText"][:200],
        attachments=[Attachment(content_type=CARD, content=card)],
    )


class TeamsAdapter:
    """Owns the CloudAdapter and the bot; /api/messages lands in handle()."""

    def __init__(self, app: App, authentication: Any = None) -> None:
        self.app = app
        self.settings = app.settings
        self.coach = app.coach
        self.programme = Programme(app.coach)
        self.app_id = self.settings.microsoft_app_id or ""
        config = BotConfig(
            self.app_id,
            self.settings.microsoft_app_password or "",
            self.settings.microsoft_app_type,
            self.settings.microsoft_app_tenant_id,
        )
        self.cloud = CloudAdapter(authentication or ConfigurationBotFrameworkAuthentication(config))
        self.bot = CoachBot(self)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate (botbuilder) and process one activity; a bad token is a 401 (C13)."""
        try:
            response = await self.cloud.process(request, self.bot)
        except (jwt.InvalidTokenError, PermissionError):
            return web.Response(status=401, text="unauthorized")
        except web.HTTPException as error:
            return web.Response(status=error.status, text=error.reason)
        return response or web.Response(status=201)

    def language(self, code: str | None) -> Language:
        return self.app.course.language(code or self.settings.default_language)

    async def organisation_id(self, tenant_id: str) -> int:
        organisation = await self.coach.organisation(PLATFORM, tenant_id, tenant_id)
        if self.settings.microsoft_app_type == "SingleTenant":
            given = org_profile(self.settings).model_dump(exclude_none=True)
            if given:
                await self.coach.merge_profile(organisation.id, given)
        return organisation.id

    # -- conversation references (C12) -------------------------------------------------------

    async def remember(
        self, organisation_id: int, person_id: int | None, reference: ConversationReference
    ) -> None:
        values = {
            "organisation_id": organisation_id,
            "person_id": person_id,
            "conversation_id": reference.conversation.id,
            "reference": reference.serialize(),
            "updated_at": self.coach.clock(),
        }
        async with self.app.db.session() as session:
            await session.execute(self.app.db.insert_ignore(ConversationRef).values(**values))
            query = select(ConversationRef).filter_by(
                organisation_id=organisation_id, conversation_id=reference.conversation.id
            )
            stored = (await session.execute(query)).scalar_one()
            stored.reference, stored.updated_at = values["reference"], values["updated_at"]
            stored.person_id = person_id or stored.person_id

    async def reference_for(self, person_id: int) -> ConversationReference | None:
        async with self.app.db.session() as session:
            query = (
                select(ConversationRef.reference)
                .filter_by(person_id=person_id)
                .order_by(ConversationRef.updated_at.desc())
                .limit(1)
            )
            data = (await session.execute(query)).scalar_one_or_none()
        return ConversationReference().deserialize(data) if data else None

    # -- sending ---------------------------------------------------------------------------

    async def send(self, context: TurnContext, messages: list[Message], lang: Language) -> None:
        for message in messages:
            if isinstance(message, DigestCard):
                parts = cards.render_digest(message)  # a long digest is split, never cut
            else:
                parts = [cards.render(message, lang)]
            for part in parts:
                activity = card_activity(part)
                await with_retries(lambda a=activity: context.send_activity(a))

    async def send_to(self, person_id: int, messages: list[Message], lang: Language) -> None:
        """Proactively, from the stored reference: works after a restart, with no message first."""
        reference = await self.reference_for(person_id)
        if reference is None:
            raise LookupError(f"no conversation with person {person_id}")

        async def callback(context: TurnContext) -> None:
            await self.send(context, messages, lang)

        try:
            await self.cloud.continue_conversation(reference, callback, self.app_id)
        except Unreachable as error:
            await self.programme.mark_unreachable(person_id, str(error))

    async def start_learner(
        self, context: TurnContext, tenant_id: str, member: Any, person_id: int, enrolment_id: int
    ) -> bool:
        """Open a 1:1 chat with a new learner (tenant id included, C14) and send lesson one."""
        lang = self.language((await self.coach.enrolment(enrolment_id)).language)
        welcome = Text(lang.s("platform.welcome", title=lang.text.title))
        organisation_id = await self.organisation_id(tenant_id)
        parameters = ConversationParameters(
            is_group=False,
            bot=context.activity.recipient,
            tenant_id=tenant_id,
            members=[ChannelAccount(id=member.id, name=member.name)],
            channel_data={"tenant": {"id": tenant_id}},
        )

        async def first_lesson(chat: TurnContext) -> None:
            await self.remember(
                organisation_id, person_id, TurnContext.get_conversation_reference(chat.activity)
            )
            await self.send(chat, [welcome, *await self.coach.next(enrolment_id)], lang)

        async def create() -> None:
            await self.cloud.create_conversation(
                self.app_id, first_lesson, parameters, "msteams", context.activity.service_url
            )

        try:
            await with_retries(create)
        except Unreachable as error:
            await self.programme.mark_unreachable(person_id, str(error))
            return False
        return True


class CoachBot(ActivityHandler):
    def __init__(self, teams: TeamsAdapter) -> None:
        self.teams = teams
        self.coach = teams.coach

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        tenant_id = _tenant(activity)
        wanted = self.teams.settings.microsoft_app_tenant_id
        if self.teams.settings.microsoft_app_type == "SingleTenant" and tenant_id != wanted:
            raise PermissionError("activity from another tenant")  # botbuilder answers 401
        if activity.type == ActivityTypes.message and activity.id:
            key = f"{activity.conversation.id}:{activity.id}"
            if not await self.coach.claim_event(PLATFORM, key):
                return  # Teams redelivered it (C16)
        elif _is_personal(activity) and activity.from_property is not None:
            await self._person(turn_context)  # installed in a personal chat: remember it (C12)
        await super().on_turn(turn_context)

    async def _person(self, context: TurnContext) -> tuple[int, int, Any]:
        """(organisation id, person id, enrolment or None) of whoever wrote, remembering where."""
        activity = context.activity
        organisation_id = await self.teams.organisation_id(_tenant(activity))
        user = activity.from_property
        user_id = user.aad_object_id or user.id
        found = await self.coach.find_learner(PLATFORM, _tenant(activity), user_id)
        person_id = found[0].id if found else None
        enrolment = found[1] if found else None
        if _is_personal(activity):
            await self.teams.remember(
                organisation_id, person_id, TurnContext.get_conversation_reference(activity)
            )
            if person_id is not None:
                await self.teams.programme.mark_reachable(person_id)
                zone = getattr(activity, "local_timezone", None)
                if zone and zone != found[0].timezone:
                    await self.coach.set_timezone(person_id, zone)
        return organisation_id, person_id, enrolment

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        organisation_id, person_id, enrolment = await self._person(turn_context)
        if isinstance(activity.value, dict) and activity.value.get("action"):
            await self._submit(turn_context, enrolment, activity.value)
            return
        text = (TurnContext.remove_recipient_mention(activity) or activity.text or "").strip()
        words = text.split()
        verb = words[0].casefold() if words else "help"
        if verb in DIGEST_VERBS:
            await self._digest(turn_context, organisation_id, words)
            return
        if text.casefold() in MY_DATA_WORDS:
            await self._my_data(turn_context, organisation_id, person_id, enrolment)
            return
        admin_words = ADMIN_COMMANDS | {"enrol", "unenrol", "status"}
        if not _is_personal(activity) or verb in admin_words:
            await self._admin(turn_context, organisation_id, words)
            return
        await self._learner_text(turn_context, enrolment, verb, words)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        """People added to a team kept open are enrolled like those before them."""
        activity = turn_context.activity
        team_id = _team_id(activity)
        if not team_id:
            return
        organisation_id = await self.teams.organisation_id(_tenant(activity))
        team = await self.teams.programme.kept_team(organisation_id, team_id)
        people = [m for m in members_added if m.id != activity.recipient.id]
        if team is None or not people:
            return
        request = self.teams.programme.joiner_request(team)
        members = [Member(m.aad_object_id or m.id, m.name or m.id) for m in people]
        outcome = await self.teams.programme.enrol_members(
            organisation_id, members, request, team.id
        )
        await self._start_all(turn_context, people, outcome)

    async def _learner_text(
        self, context: TurnContext, enrolment: Any, verb: str, words: list[str]
    ) -> None:
        lang = self.teams.language(enrolment.language if enrolment else None)
        if enrolment is None:
            await self.teams.send(context, [Text(lang.s("platform.not_enrolled"))], lang)
            return
        if verb in ("language", "sprog") and len(words) > 1 and words[1] in ("da", "en"):
            enrolment = await self.coach.set_preferences(enrolment.id, language=words[1])
            lang = self.teams.language(enrolment.language)
            replies = await self.coach.resume(enrolment.id)
        elif verb in ("time", "tid"):
            replies = await self.coach.set_lesson_time(enrolment.id, " ".join(words[1:]))
        elif verb in _words(lang, "next") | {"pause"} | _words(lang, "progress"):
            action = (
                "pause"
                if verb == "pause"
                else ("progress" if verb in _words(lang, "progress") else "next")
            )
            replies = await self.coach.handle(enrolment.id, action)
        else:
            replies = [Text(lang.s("platform.dm_help"))]
        await self.teams.send(context, replies, lang)

    async def _submit(self, context: TurnContext, enrolment: Any, value: dict[str, Any]) -> None:
        """A card button: the value is an object (C15); the card is then updated in place (C18)."""
        lang = self.teams.language(enrolment.language if enrolment else None)
        if enrolment is None:
            await self.teams.send(context, [Text(lang.s("platform.not_enrolled"))], lang)
            return
        action, data = str(value.get("action")), str(value.get("value") or "")
        try:
            replies = await self._carry_out(enrolment.id, action, data, value, lang)
        except CoachError as error:
            replies = [Text(lang.s(error.key))]
        first = replies[0] if replies else None
        reply_to = context.activity.reply_to_id
        if reply_to and isinstance(first, FeedbackCard):
            chosen = cards.answered(None, first.chosen, first, lang)
            await with_retries(lambda: context.update_activity(card_activity(chosen, reply_to)))
            replies = [] if first.repeated else replies[1:]
        elif reply_to and action not in ("progress",) and replies:
            done = cards.done(lang.s("platform.done_choice", label=""), _note(replies[0]))
            await with_retries(lambda: context.update_activity(card_activity(done, reply_to)))
        await self.teams.send(context, replies, lang)

    async def _carry_out(
        self, enrolment_id: int, action: str, data: str, value: dict[str, Any], lang: Language
    ) -> list[Message]:
        if action == "answer":
            option = value.get("option")
            if not option:
                return [Text(lang.s("platform.pick_option"))]
            return await self.coach.handle(enrolment_id, "answer", f"{data}|{option}")
        if action == "reflect":
            return await self.coach.reflect(enrolment_id, data, str(value.get("reflection") or ""))
        return await self.coach.handle(enrolment_id, action, data)

    # -- admins in a team channel ------------------------------------------------------------

    async def _admin(self, context: TurnContext, organisation_id: int, words: list[str]) -> None:
        found = await self.coach.find_learner(
            PLATFORM, _tenant(context.activity), _user_id(context.activity)
        )
        lang = self.teams.language(found[0].language if found else None)
        verb = words[0].casefold() if words else "help"
        verb = {"enrol": "enroll", "unenrol": "unenroll"}.get(verb, verb)
        try:
            if verb in ADMIN_COMMANDS and not await self._is_admin(context):
                reply = lang.s("admin.not_allowed", command=verb)
            elif verb == "report":  # audited by reports.record, with the scope it covered
                reply = await self._report(context, organisation_id, words[1:], lang)
            elif verb in ADMIN_COMMANDS:
                reply, target, detail = await self._admin_action(
                    context, organisation_id, verb, words[1:], lang
                )
                actor, action = _user_id(context.activity), AUDIT_ACTIONS.get(verb, verb)
                await audit.record(
                    self.coach.db,
                    self.coach.clock(),
                    organisation_id,
                    actor,
                    action,
                    target,
                    **detail,
                )
            elif verb == "status":
                reply = await self._status(context, organisation_id, found, lang)
                if not _is_personal(context.activity):
                    reply = await self._privately(found, reply, lang)
            else:
                help_text = [lang.s("admin.help"), lang.s("admin.help_more"), lang.s("digest.help")]
                reply = "\n".join(help_text)
        except UsageError as error:
            reply = lang.s(error.key, **error.values)
            reply += f"\n{lang.s(error.usage)}" if error.usage else ""
        await self.teams.send(context, [Text(reply)], lang)

    async def _digest(self, context: TurnContext, organisation_id: int, words: list[str]) -> None:
        """`digest off|on` in a personal chat; `digest org …` and `ranking …` as a team owner."""
        user = context.activity.from_property
        user_id = _user_id(context.activity)
        found = await self.coach.find_learner(PLATFORM, _tenant(context.activity), user_id)
        lang = self.teams.language(found[0].language if found else None)
        try:
            choice = parse_digest(words)
            person = await self.coach.person(organisation_id, user_id, user.name or user_id)
            reply = await apply_digest(
                Digests(self.coach),
                choice,
                organisation_id,
                person.id,
                user_id,
                lambda: self._is_admin(context),
                lang,
            )
        except UsageError as error:
            reply = lang.s(error.key, **error.values)
        await self.teams.send(context, [Text(reply)], lang)

    async def _admin_action(
        self,
        context: TurnContext,
        organisation_id: int,
        verb: str,
        words: list[str],
        lang: Language,
    ) -> tuple[str, str | None, dict[str, Any]]:
        """Carry out an admin command: the reply, and what the audit log keeps of it."""
        team_id = _team_id(context.activity)
        if verb == "enroll":
            reply, detail = await self._enroll(context, organisation_id, words, lang)
            return reply, team_id, detail
        if verb == "unenroll":
            count = await self._unenroll(context, organisation_id)
            return lang.s("admin.unenrolled", count=count), team_id, {"unenrolled": count}
        if verb == "remind":
            count = await self._remind(organisation_id)
            return lang.s("admin.reminded", count=count), None, {"reminded": count}
        if verb == "manager":
            reply, manager = await self._manager(context, organisation_id, lang)
            return reply, manager, {"teams": [team_id]}
        if verb == "revoke":
            return await revoke(self.coach, organisation_id, words, lang)
        raise UsageError("admin.unknown_command", command=verb)

    async def _my_data(
        self, context: TurnContext, organisation_id: int, person_id: int | None, enrolment: Any
    ) -> None:
        """A signed link to everything stored about whoever asks, in their personal chat only."""
        lang = self.teams.language(enrolment.language if enrolment else None)
        settings = self.teams.settings
        key = downloads.secret(settings)
        if not _is_personal(context.activity):
            reply = lang.s("privacy.my_data_in_private")
        elif person_id is None or key is None:
            reply = lang.s("privacy.my_data_none")
        else:
            expires = self.coach.clock() + downloads.VALID_FOR
            grant = downloads.Grant("my-data", organisation_id, person_id, expires)
            url = downloads.Links(key, downloads.public_url(settings)).make(grant)
            minutes = int(downloads.VALID_FOR.total_seconds() // 60)
            reply = lang.s("privacy.my_data_link", minutes=minutes, url=url)
        await self.teams.send(context, [Text(reply)], lang)

    async def _privately(self, found: Any, text: str, lang: Language) -> str:
        """Send a status to the asker's personal chat; a channel is read by the whole team."""
        if found is not None:
            try:
                await self.teams.send_to(found[0].id, [Text(text)], lang)
                return lang.s("privacy.sent_privately")
            except LookupError:
                logger.info("no personal chat with person %s for their status", found[0].id)
        return lang.s("privacy.status_in_private")

    async def _report(
        self, context: TurnContext, organisation_id: int, words: list[str], lang: Language
    ) -> str:
        """Signed links to the evidence pack, in the admin's personal chat (a bot cannot attach
        files in Teams). In a team channel the pack covers that team; in personal chat, all.
        """
        formats = list(dict.fromkeys(word.casefold() for word in words)) or list(reports.FORMATS)
        if any(fmt not in reports.FORMATS for fmt in formats):
            raise UsageError("report.usage_teams")
        key = downloads.secret(self.teams.settings)
        if key is None:
            return lang.s("report.links_unavailable")
        scope = await self._report_scope(organisation_id, _team_id(context.activity))
        user = context.activity.from_property
        user_id = _user_id(context.activity)
        person = await self.coach.person(organisation_id, user_id, user.name or user_id)
        now = self.coach.clock()
        links = downloads.Links(key, downloads.public_url(self.teams.settings))
        params = reports.grant_params(scope, lang)
        lines = [lang.s("report.links", org=scope.organisation.name)]
        for fmt in formats:
            grant = downloads.Grant(
                f"report-{fmt}", organisation_id, person.id, now + downloads.VALID_FOR, params
            )
            lines.append(f"[{reports.filename(scope, fmt, now)}]({links.make(grant)})")
        await reports.record(self.coach.db, now, scope, user_id, formats)
        if _is_personal(context.activity):
            return "\n\n".join(lines)
        await self._to_personal_chat(context, person.id, "\n\n".join(lines), lang)
        return lang.s("report.sent_to_dm")

    async def _report_scope(self, organisation_id: int, team_id: str | None) -> Any:
        if team_id is None:
            return await reports.scope_for(self.coach.db, organisation_id)
        team = await self.teams.programme.find_team(organisation_id, team_id)
        if team is None:
            raise UsageError("report.team_unknown", team=team_id)
        return await reports.scope_for(self.coach.db, organisation_id, team.id)

    async def _to_personal_chat(
        self, context: TurnContext, person_id: int, text: str, lang: Language
    ) -> None:
        """A message in someone's 1:1 chat with the bot, opening that chat if there is none."""
        if await self.teams.reference_for(person_id) is not None:
            await self.teams.send_to(person_id, [Text(text)], lang)
            return
        tenant_id = _tenant(context.activity)
        user = context.activity.from_property
        parameters = ConversationParameters(
            is_group=False,
            bot=context.activity.recipient,
            tenant_id=tenant_id,
            members=[ChannelAccount(id=user.id, name=user.name)],
            channel_data={"tenant": {"id": tenant_id}},
        )

        async def deliver(chat: TurnContext) -> None:
            await self.teams.send(chat, [Text(text)], lang)

        await with_retries(
            lambda: self.teams.cloud.create_conversation(
                self.teams.app_id, deliver, parameters, "msteams", context.activity.service_url
            )
        )

    async def _is_admin(self, context: TurnContext) -> bool:
        """The owners of this team and the configured admin ids."""
        user = context.activity.from_property
        if user.aad_object_id and user.aad_object_id in self.teams.settings.aad_admins:
            return True
        team_id = _team_id(context.activity)
        if not team_id:
            return False
        member = await with_retries(lambda: TeamsInfo.get_team_member(context, team_id, user.id))
        return (getattr(member, "user_role", "") or "").casefold() == "owner"

    async def _roster(self, context: TurnContext, team_id: str) -> list[Any]:
        """Every member of the team, page by page."""
        members, token = [], None
        while True:
            page = await with_retries(
                lambda t=token: TeamsInfo.get_paged_team_members(context, team_id, t, PAGE_SIZE)
            )
            members += page.members or []
            token = page.continuation_token
            if not token:
                return members

    async def _enroll(
        self, context: TurnContext, organisation_id: int, words: list[str], lang: Language
    ) -> tuple[str, dict[str, Any]]:
        options = dict(word.split("=", 1) for word in words if "=" in word)
        request, keep = enrol_options(options, self.coach.clock().date(), "admin.usage_enroll")
        team_id = _team_id(context.activity)
        if not team_id:
            raise UsageError("admin.usage_enroll")
        roster = await self._roster(context, team_id)
        named = {person.id for person in _mentioned(context.activity)}
        if named:  # "enroll @Ada @Grace": only those people, not the whole team
            roster = [member for member in roster if member.id in named]
        team = await self.teams.programme.team(organisation_id, team_id, team_id, request, keep)
        members = [Member(m.aad_object_id or m.id, m.name or m.id) for m in roster]
        outcome = await self.teams.programme.enrol_members(
            organisation_id, members, request, team.id
        )
        reached = await self._start_all(context, roster, outcome)
        unreachable = len(outcome.enrolled) - reached
        summary = enrol_summary(outcome, lang)
        if unreachable:
            names = [name for name, _ in await self.teams.programme.unreachable(organisation_id)]
            summary += "\n" + lang.s(
                "platform.unreachable", count=unreachable, names=", ".join(names)
            )
        detail = {
            "enrolled": len(outcome.enrolled),
            "already": len(outcome.already),
            "skipped": sum(len(members) for members in outcome.skipped.values()),
            "track": request.track,
            "language": request.language,
            "deadline": request.deadline.isoformat() if request.deadline else None,
            "keep": keep,
            "named": len(named),
        }
        return summary, detail

    async def _start_all(
        self, context: TurnContext, roster: list[Any], outcome: EnrolOutcome
    ) -> int:
        by_id = {member.aad_object_id or member.id: member for member in roster}
        tenant_id = _tenant(context.activity)
        reached = 0
        for learner in outcome.enrolled:
            enrolment_id = outcome.enrolment_ids[learner.user_id]
            person_id = (await self.coach.enrolment(enrolment_id)).person_id
            if await self.teams.start_learner(
                context, tenant_id, by_id[learner.user_id], person_id, enrolment_id
            ):
                reached += 1
        return reached

    async def _unenroll(self, context: TurnContext, organisation_id: int) -> int:
        team_id = _team_id(context.activity)
        if not team_id:
            raise UsageError("admin.usage_unenroll")
        roster = await self._roster(context, team_id)
        await self.teams.programme.close_team(organisation_id, team_id)
        ids = [member.aad_object_id or member.id for member in roster]
        return await self.teams.programme.unenrol(organisation_id, ids)

    async def _manager(
        self, context: TurnContext, organisation_id: int, lang: Language
    ) -> tuple[str, str]:
        """`manager @person`: that person follows this team's progress."""
        activity = context.activity
        team_id = _team_id(activity)
        mentioned = [
            entity.additional_properties.get("mentioned") or {}
            for entity in activity.entities or []
            if entity.type == "mention"
        ]
        people = [m for m in mentioned if m.get("id") and m["id"] != activity.recipient.id]
        if not team_id or not people:
            raise UsageError("admin.usage_manager")
        team = await self.teams.programme.find_team(organisation_id, team_id)
        if team is None:
            raise UsageError("admin.team_not_enrolled", team=team_id)
        try:
            member = await with_retries(
                lambda: TeamsInfo.get_team_member(context, team_id, people[0]["id"])
            )
        except ErrorResponseException as error:  # not a member of this team (or tenant)
            if error.response is None or error.response.status_code != 404:
                raise
            raise UsageError("admin.usage_manager") from None
        person = await self.coach.person(
            organisation_id, member.aad_object_id or member.id, member.name or member.id
        )
        await self.teams.programme.assign_manager(team.id, person.id)
        reply = lang.s("admin.manager_set", manager=person.name, teams=team.name)
        return reply, person.platform_user_id

    async def _remind(self, organisation_id: int) -> int:
        """A nudge, in each learner's own chat, to everyone behind; returns how many."""
        behind = await self.teams.programme.behind(organisation_id)
        for _, enrolment_id in behind:
            enrolment = await self.coach.enrolment(enrolment_id)
            lang = self.teams.language(enrolment.language)
            nudge = Actions(
                lang.s("platform.nudge"), (Choice("next", "", lang.s("button.next_lesson")),)
            )
            try:
                await self.teams.send_to(enrolment.person_id, [nudge], lang)
            except LookupError:
                logger.warning("no chat with learner of enrolment %s yet", enrolment_id)
        return len(behind)

    async def _status(
        self, context: TurnContext, organisation_id: int, found: Any, lang: Language
    ) -> str:
        """A learner their progress, a manager their teams, an admin the organisation."""
        parts: list[str] = []
        if found is not None and found[1] is not None:
            parts.append(progress_text((await self.coach.progress(found[1].id))[0]))
        if found is not None:
            for team, counts in await self.teams.programme.team_counts(found[0].id):
                parts.append(counts_line(lang, "status.team_line", counts, team=team.name))
        if await self._is_admin(context):
            counts = await self.teams.programme.organisation_counts(organisation_id)
            line = counts_line(lang, "home.admin_counts", counts)
            unreachable = await self.teams.programme.unreachable(organisation_id)
            if unreachable:
                names = ", ".join(name for name, _ in unreachable)
                line += "\n" + lang.s("platform.unreachable", count=len(unreachable), names=names)
            parts.append(line)
        return "\n\n".join(parts) or lang.s("platform.not_enrolled")


def _mentioned(activity: Activity) -> list[ChannelAccount]:
    """The people @mentioned in a message, the bot itself left out."""
    accounts = [
        ChannelAccount().deserialize(entity.additional_properties.get("mentioned") or {})
        for entity in TurnContext.get_mentions(activity)
    ]
    return [account for account in accounts if account.id and account.id != activity.recipient.id]


def _tenant(activity: Activity) -> str:
    data = activity.channel_data or {}
    tenant = (data.get("tenant") or {}).get("id") if isinstance(data, dict) else None
    return tenant or getattr(activity.conversation, "tenant_id", None) or "unknown-tenant"


def _team_id(activity: Activity) -> str | None:
    data = activity.channel_data or {}
    return ((data.get("team") or {}).get("id")) if isinstance(data, dict) else None


def _user_id(activity: Activity) -> str:
    return activity.from_property.aad_object_id or activity.from_property.id


def _is_personal(activity: Activity) -> bool:
    return getattr(activity.conversation, "conversation_type", None) in (None, "personal")


def _words(lang: Language, command: str) -> set[str]:
    return {command, *lang.s(f"chat.command.{command}").split("|")}


def _note(message: Message) -> str:
    return getattr(message, "text", "") or getattr(message, "heading", "") or ""
