"""`/nis2` and the admin's Home tab: enrolling channels and groups, managers, status, reminders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import audit, privacy, reports
from bot.adapters.digest_commands import VERBS, apply_digest, parse_digest
from bot.adapters.replies import counts_line, enrol_summary, progress_text, revoke
from bot.adapters.slack import blocks
from bot.adapters.slack.commands import ADMIN_ONLY, Command, Target, UsageError, parse, verb
from bot.digest import Digests
from bot.lessons.course import Language, OrgProfile
from bot.lessons.messages import Actions, Choice
from bot.programme import EnrolOutcome, Member

if TYPE_CHECKING:
    from bot.adapters.slack.app import SlackAdapter

logger = logging.getLogger(__name__)

PAGE = 1000
USERS_INFO_MAX = 50  # above this many people, one users.list beats many users.info calls
LOOKUP_CONCURRENCY = 8
URL_FIELDS = ("security_policy_url", "incident_procedure_url")
AUDIT_ACTIONS = {"enroll": "enrol", "unenroll": "unenrol"}


def member_from(user: dict[str, Any], language: str | None) -> Member:
    profile = user.get("profile") or {}
    return Member(
        user_id=user["id"],
        name=user.get("real_name") or profile.get("real_name") or user.get("name") or user["id"],
        language=language,
        timezone=user.get("tz"),
        is_bot=bool(user.get("is_bot")) or user["id"] == "USLACKBOT",
        deactivated=bool(user.get("deleted")),
        guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
    )


class SlackAdmin:
    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter
        self.coach = adapter.coach
        self.programme = adapter.programme

    # -- /nis2 ------------------------------------------------------------------------------

    async def command(
        self,
        command: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> Callable[[], Awaitable[None]] | None:
        """Run one /nis2 command, answer privately, and return any slow follow-up work."""
        team_id, user_id = command["team_id"], command["user_id"]
        lang = self.adapter.language(None)
        follow_up: Callable[[], Awaitable[None]] | None = None
        try:
            user = await self.adapter.user(client, user_id)
            lang = self.adapter.language(self.adapter.user_language(user))
            text = command.get("text") or ""
            name = verb(text)
            if name in ADMIN_ONLY and not await self.adapter.is_admin(client, user_id):
                reply = lang.s("admin.not_allowed", command=name)
            else:
                parsed = parse(text, self.coach.clock().date())
                organisation_id = await self.adapter.organisation_id(team_id, client)
                reply, follow_up = await self._run(
                    parsed, client, team_id, organisation_id, user, lang
                )
        except UsageError as error:
            reply = lang.s(error.key, **error.values)
            reply += f"\n{lang.s(error.usage)}" if error.usage else ""
        except SlackApiError as error:
            reply = lang.s("admin.failed", reason=error.response.get("error", "slack error"))
        await respond(text=reply, response_type="ephemeral")
        return follow_up

    async def _run(
        self,
        command: Command,
        client: AsyncWebClient,
        team_id: str,
        organisation_id: int,
        user: dict[str, Any],
        lang: Language,
    ) -> tuple[str, Callable[[], Awaitable[None]] | None]:
        if command.name == "help":
            help_text = [lang.s("admin.help"), lang.s("admin.help_more"), lang.s("digest.help")]
            return "\n".join(help_text), None
        if command.name in VERBS:
            return await self._digest(command, client, organisation_id, user, lang), None
        if command.name == "status":
            return await self._status(client, team_id, organisation_id, user, lang), None
        if command.name == "my-data":
            return await self.my_data(client, team_id, user, lang), None
        if command.name == "report":  # audited by reports.record, with the scope it covered
            return await self._report(command, client, organisation_id, user["id"], lang), None
        result = await self._admin_action(command, client, team_id, organisation_id, lang)
        reply, follow_up, (target, detail) = result
        await audit.record(
            self.coach.db,
            self.coach.clock(),
            organisation_id,
            user["id"],
            AUDIT_ACTIONS.get(command.name, command.name),
            target,
            **detail,
        )
        return reply, follow_up

    async def _admin_action(
        self,
        command: Command,
        client: AsyncWebClient,
        team_id: str,
        organisation_id: int,
        lang: Language,
    ) -> tuple[str, Callable[[], Awaitable[None]] | None, tuple[str | None, dict[str, Any]]]:
        """Carry out an admin command: the reply, any follow-up, and what the audit log keeps."""
        labels = ", ".join(_audit_label(target) for target in command.targets)
        if command.name == "enroll":
            reply, follow_up, counts = await self._enroll(
                command, client, team_id, organisation_id, lang
            )
            return reply, follow_up, (labels, counts | _request_detail(command))
        if command.name == "unenroll":
            ids = [
                i for target in command.targets for i in await self._resolve_target(client, target)
            ]
            count = await self.programme.unenrol(organisation_id, sorted(set(ids)))
            for target in command.targets:
                await self.programme.close_team(organisation_id, target.id)
            return lang.s("admin.unenrolled", count=count), None, (labels, {"unenrolled": count})
        if command.name == "manager":
            reply = await self._manager(command, client, organisation_id, lang)
            manager, *teams = command.targets
            detail = {"teams": [_label(team) for team in teams]}
            return reply, None, (manager.id, detail)
        if command.name == "revoke":
            reply, code, detail = await revoke(self.coach, organisation_id, command.words, lang)
            return reply, None, (code, detail)
        if command.name == "remind":
            reply, follow_up, count = await self._remind(client, team_id, organisation_id, lang)
            return reply, follow_up, (None, {"reminded": count})
        raise UsageError("admin.unknown_command", command=command.name)

    async def my_data(
        self, client: AsyncWebClient, team_id: str, user: dict[str, Any], lang: Language
    ) -> str:
        """Everything stored about whoever asks, as a file in their DM; never anyone else's."""
        found = await self.coach.find_learner("slack", team_id, user["id"])
        if found is None:
            return lang.s("privacy.my_data_none")
        data = privacy.data_bytes(await privacy.my_data(self.coach.db, found[0].id))
        channel = (await client.conversations_open(users=user["id"]))["channel"]["id"]
        await client.files_upload_v2(
            channel=channel,
            content=data,
            filename=privacy.FILE_TYPE[1],
            title=privacy.FILE_TYPE[1],
            initial_comment=lang.s("privacy.my_data_comment"),
        )
        return lang.s("privacy.my_data_sent")

    async def _enroll(
        self,
        command: Command,
        client: AsyncWebClient,
        team_id: str,
        organisation_id: int,
        lang: Language,
    ) -> tuple[str, Callable[[], Awaitable[None]], dict[str, int]]:
        """Resolve every target first, so one unknown channel changes nothing for anyone."""
        resolved = [
            (target, await self._resolve_target(client, target)) for target in command.targets
        ]
        total = EnrolOutcome()
        notes: list[str] = []
        for target, ids in resolved:
            members = await self._members(client, ids)
            team_id_db = None
            if target.kind != "user":
                keep = command.keep if target.kind == "channel" else None
                team = await self.programme.team(
                    organisation_id, target.id, target.label, command.request, keep
                )
                team_id_db = team.id
                if keep:
                    notes.append(await self._kept_note(client, target, lang))
            outcome = await self.programme.enrol_members(
                organisation_id, members, command.request, team_id_db
            )
            _merge(total, outcome)
        reply = "\n".join([enrol_summary(total, lang), *notes])
        learners = [
            (member.user_id, total.enrolment_ids[member.user_id]) for member in total.enrolled
        ]
        counts = {
            "enrolled": len(total.enrolled),
            "already": len(total.already),
            "skipped": sum(len(members) for members in total.skipped.values()),
        }
        return reply, lambda: self.adapter.start_learners(team_id, learners), counts

    async def _resolve_target(self, client: AsyncWebClient, target: Target) -> list[str]:
        try:
            return await self._resolve_ids(client, [target])
        except SlackApiError as error:
            reason = error.response.get("error", "slack error")
            raise UsageError("admin.target_failed", target=_label(target), reason=reason) from None

    async def _kept_note(self, client: AsyncWebClient, target: Target, lang: Language) -> str:
        """Slack tells only channel members about people joining: say if the bot is not one."""
        note = lang.s("admin.kept_open", team=_label(target))
        try:
            channel = (await client.conversations_info(channel=target.id))["channel"]
        except SlackApiError:
            channel = {}
        if not channel.get("is_member"):
            note += " " + lang.s("admin.invite_me", team=_label(target))
        return note

    async def _resolve_ids(self, client: AsyncWebClient, targets: list[Target]) -> list[str]:
        """Everyone behind #channels, @groups and @people, each once, in order."""
        found: dict[str, None] = {}
        for target in targets:
            if target.kind == "user":
                found[target.id] = None
            elif target.kind == "usergroup":
                response = await client.usergroups_users_list(usergroup=target.id)
                found.update(dict.fromkeys(response.get("users", [])))
            else:
                found.update(dict.fromkeys(await self._channel_members(client, target.id)))
        return list(found)

    async def _channel_members(self, client: AsyncWebClient, channel: str) -> list[str]:
        members: list[str] = []
        cursor = None
        while True:
            response = await client.conversations_members(
                channel=channel, limit=PAGE, cursor=cursor
            )
            members += response.get("members", [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    async def _members(self, client: AsyncWebClient, ids: list[str]) -> list[Member]:
        if len(ids) > USERS_INFO_MAX:
            return await self._members_from_list(client, ids)
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def one(user_id: str) -> Member:
            async with gate:
                user = await self.adapter.user(client, user_id)
                return member_from(user, self.adapter.user_language(user))

        return list(await asyncio.gather(*(one(user_id) for user_id in ids)))

    async def _members_from_list(self, client: AsyncWebClient, ids: list[str]) -> list[Member]:
        wanted = set(ids)
        found: dict[str, Member] = {}
        cursor = None
        while True:
            response = await client.users_list(limit=200, cursor=cursor, include_locale=True)
            for user in response.get("members", []):
                if user["id"] in wanted:
                    found[user["id"]] = member_from(user, self.adapter.user_language(user))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return [found[user_id] for user_id in ids if user_id in found]

    async def _manager(
        self, command: Command, client: AsyncWebClient, organisation_id: int, lang: Language
    ) -> str:
        manager_target, *team_targets = command.targets
        user = await self.adapter.user(client, manager_target.id)
        member = member_from(user, self.adapter.user_language(user))
        person = await self.coach.person(
            organisation_id, member.user_id, member.name, member.language, member.timezone
        )
        names = []
        for target in team_targets:
            team = await self.programme.find_team(organisation_id, target.id)
            if team is None:
                raise UsageError("admin.team_not_enrolled", team=_label(target))
            await self.programme.assign_manager(team.id, person.id)
            names.append(_label(target))
        return lang.s("admin.manager_set", manager=member.name, teams=", ".join(names))

    async def _digest(
        self,
        command: Command,
        client: AsyncWebClient,
        organisation_id: int,
        user: dict[str, Any],
        lang: Language,
    ) -> str:
        """A manager's own digest, or (admins only) the organisation digest and ranking."""
        choice = parse_digest([command.name, *command.words])
        member = member_from(user, None)
        person = await self.coach.person(
            organisation_id, member.user_id, member.name, None, member.timezone
        )
        return await apply_digest(
            Digests(self.coach),
            choice,
            organisation_id,
            person.id,
            member.user_id,
            lambda: self.adapter.is_admin(client, member.user_id),
            lang,
        )

    async def _remind(
        self, client: AsyncWebClient, team_id: str, organisation_id: int, lang: Language
    ) -> tuple[str, Callable[[], Awaitable[None]], int]:
        behind = await self.programme.behind(organisation_id)

        async def nudge_all() -> None:
            for user_id, enrolment_id in behind:
                enrolment = await self.coach.enrolment(enrolment_id)
                learner_lang = self.adapter.language(enrolment.language)
                nudge = Actions(
                    learner_lang.s("platform.nudge"),
                    (Choice("next", "", learner_lang.s("button.next_lesson")),),
                )
                try:
                    await self.adapter.send(client, user_id, [nudge], learner_lang, user_id)
                except SlackApiError as error:
                    logger.warning("nudge to %s failed: %s", user_id, error.response.get("error"))

        return lang.s("admin.reminded", count=len(behind)), nudge_all, len(behind)

    async def _report(
        self,
        command: Command,
        client: AsyncWebClient,
        organisation_id: int,
        user_id: str,
        lang: Language,
    ) -> str:
        """The evidence pack's files, uploaded into the admin's DM: never into a shared channel."""
        team_id = None
        if command.targets:
            team = await self.programme.find_team(organisation_id, command.targets[0].id)
            if team is None:
                raise UsageError("report.team_unknown", team=_label(command.targets[0]))
            team_id = team.id
        app, now = self.adapter.app, self.coach.clock()
        scope = await reports.scope_for(app.db, organisation_id, team_id)
        files = [
            await reports.make(app.db, app.course, app.settings, scope, fmt, lang, now)
            for fmt in command.formats
        ]
        channel = (await client.conversations_open(users=user_id))["channel"]["id"]
        await client.files_upload_v2(
            channel=channel,
            file_uploads=[
                {"file": f.content, "filename": f.filename, "title": f.filename} for f in files
            ],
            initial_comment=lang.s("report.file_comment", org=scope.organisation.name),
        )
        await reports.record(app.db, now, scope, user_id, list(command.formats))
        return lang.s("report.sent_to_dm")

    async def _status(
        self,
        client: AsyncWebClient,
        team_id: str,
        organisation_id: int,
        user: dict[str, Any],
        lang: Language,
    ) -> str:
        parts: list[str] = []
        found = await self.coach.find_learner("slack", team_id, user["id"])
        if found is not None and found[1] is not None:
            card = (await self.coach.progress(found[1].id))[0]
            parts.append(progress_text(card))
        if found is not None:
            teams = await self.programme.team_counts(found[0].id)
            if teams:
                lines = [lang.s("status.teams_heading")]
                for team, counts in teams:
                    lines.append(counts_line(lang, "status.team_line", counts, team=team.name))
                    if counts.overdue_names:
                        lines.append(
                            lang.s("status.overdue_names", names=", ".join(counts.overdue_names))
                        )
                parts.append("\n".join(lines))
        if await self.adapter.is_admin(client, user["id"]):
            counts = await self.programme.organisation_counts(organisation_id)
            profile = await self.coach.profile_for("slack", team_id)
            profile_name = profile.text("name", lang.code) or team_id
            heading = lang.s("status.org_heading", org=profile_name)
            parts.append(heading + "\n" + counts_line(lang, "home.admin_counts", counts))
        return "\n\n".join(parts) or lang.s("platform.not_enrolled")

    # -- the admin's Home tab and settings ----------------------------------------------------

    async def home_blocks(self, client: AsyncWebClient, team_id: str, lang: Language) -> list:
        organisation_id = await self.adapter.organisation_id(team_id, client)
        counts = await self.programme.organisation_counts(organisation_id)
        profile = await self.coach.profile_for("slack", team_id)
        return blocks.admin_home_blocks(
            lang, counts_line(lang, "home.admin_counts", counts), profile
        )

    async def open_settings(self, client: AsyncWebClient, body: dict[str, Any]) -> None:
        team_id, user_id = body["team"]["id"], body["user"]["id"]
        if not await self.adapter.is_admin(client, user_id):
            return
        found = await self.coach.find_learner("slack", team_id, user_id)
        lang = self.adapter.language(found[0].language if found else None)
        profile = await self.coach.profile_for("slack", team_id)
        await client.views_open(
            trigger_id=body["trigger_id"], view=blocks.settings_modal(lang, profile)
        )

    async def save_settings(
        self,
        ack: Callable[..., Awaitable[Any]],
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        """Check every field before closing the form; a bad one is named next to it."""
        team_id, user_id = body["team"]["id"], body["user"]["id"]
        state = (view.get("state") or {}).get("values") or {}
        values = {
            name: ((state.get(name) or {}).get("value") or {}).get("value") or None
            for name in blocks.SETTING_FIELDS
        }
        found = await self.coach.find_learner("slack", team_id, user_id)
        lang = self.adapter.language(found[0].language if found else None)
        try:
            profile = OrgProfile.model_validate(values)
        except ValidationError as error:
            errors = {str(item["loc"][0]): lang.s("setting.bad_url") for item in error.errors()}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        if not await self.adapter.is_admin(client, user_id):
            return
        organisation_id = await self.adapter.organisation_id(team_id, client)
        await self.coach.update_profile(organisation_id, profile)
        await self.adapter.publish_home(client, team_id, user_id, None)

    # -- new members of kept-open channels ----------------------------------------------------

    async def member_joined(
        self, client: AsyncWebClient, team_id: str, channel: str, user_id: str
    ) -> None:
        organisation_id = await self.adapter.organisation_id(team_id, client)
        team = await self.programme.kept_team(organisation_id, channel)
        if team is None:
            return
        request = self.programme.joiner_request(team)
        members = await self._members(client, [user_id])
        outcome = await self.programme.enrol_members(organisation_id, members, request, team.id)
        learners = [(m.user_id, outcome.enrolment_ids[m.user_id]) for m in outcome.enrolled]
        await self.adapter.start_learners(team_id, learners)


def _merge(total: EnrolOutcome, outcome: EnrolOutcome) -> None:
    seen = {member.user_id for member in total.enrolled + total.already}
    total.enrolled += [m for m in outcome.enrolled if m.user_id not in seen]
    total.already += [m for m in outcome.already if m.user_id not in seen]
    for reason, members in outcome.skipped.items():
        known = {member.user_id for member in total.skipped.get(reason, [])}
        total.skipped.setdefault(reason, []).extend(m for m in members if m.user_id not in known)
    total.enrolment_ids.update(outcome.enrolment_ids)


def _request_detail(command: Command) -> dict[str, Any]:
    """The enrolment options, as the audit log keeps them."""
    request = command.request
    deadline = request.deadline.isoformat() if request.deadline else None
    return {
        "track": request.track,
        "language": request.language,
        "deadline": deadline,
        "keep": command.keep,
        "guests": request.include_guests,
    }


def _audit_label(target: Target) -> str:
    """A person by their id only, so that erasing them leaves no name in the audit log."""
    return f"@{target.id}" if target.kind == "user" else _label(target)


def _label(target: Target) -> str:
    return f"#{target.label}" if target.kind == "channel" else f"@{target.label}"
