"""The organisation's side of the course: enrolling groups, managers, status, reminders.

Platform-neutral like the coach: adapters resolve channels, user groups and
teams to people, and this module records who is enrolled, in which team, and
how far everyone has come. Every count is computed in SQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.coach import Coach
from bot.store.models import (
    Certificate,
    Enrolment,
    LessonDelivery,
    Person,
    Team,
    TeamManager,
    TeamMember,
)

logger = logging.getLogger(__name__)

ACTIVE = ("active", "paused")
SKIP_REASONS = ("bot", "deactivated", "guest")


@dataclass(frozen=True)
class Member:
    """A person as the platform describes them, before any enrolment."""

    user_id: str
    name: str
    language: str | None = None
    timezone: str | None = None
    is_bot: bool = False
    deactivated: bool = False
    guest: bool = False


@dataclass
class EnrolOutcome:
    enrolled: list[Member] = field(default_factory=list)
    already: list[Member] = field(default_factory=list)
    skipped: dict[str, list[Member]] = field(default_factory=dict)
    enrolment_ids: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, member: Member) -> None:
        self.skipped.setdefault(reason, []).append(member)


@dataclass(frozen=True)
class Counts:
    enrolled: int
    in_progress: int
    certified: int
    overdue: int
    overdue_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrolRequest:
    track: str = "core"
    language: str | None = None
    deadline: date | None = None
    include_guests: bool = False


class Programme:
    def __init__(self, coach: Coach) -> None:
        self.coach = coach
        self.db = coach.db

    async def team(
        self,
        organisation_id: int,
        external_id: str,
        name: str,
        request: EnrolRequest | None = None,
        keep_open: bool | None = None,
    ) -> Team:
        """Find or create the team for a channel, user group or Teams team."""
        async with self.db.session() as session:
            values = {
                "organisation_id": organisation_id,
                "external_id": external_id,
                "name": name,
                "keep_open": False,
                "created_at": self.coach.clock(),
            }
            await session.execute(self.db.insert_ignore(Team).values(**values))
            query = select(Team).filter_by(organisation_id=organisation_id, external_id=external_id)
            team = (await session.execute(query)).scalar_one()
            team.name = name or team.name
            if keep_open is not None and request is not None:
                team.keep_open = keep_open
                team.track, team.language = request.track, request.language
                team.deadline_days = self._days_left(request.deadline)
            return team

    def _days_left(self, deadline: date | None) -> int | None:
        if deadline is None:
            return None
        return max((deadline - self.coach.clock().date()).days, 0)

    async def enrol_members(
        self,
        organisation_id: int,
        members: list[Member],
        request: EnrolRequest,
        team_id: int | None = None,
    ) -> EnrolOutcome:
        """Enrol everyone eligible; enrolling someone twice changes nothing."""
        outcome = EnrolOutcome()
        for member in members:
            reason = self._skip_reason(member, request)
            if reason:
                outcome.skip(reason, member)
                continue
            language = request.language or member.language
            person = await self.coach.person(
                organisation_id, member.user_id, member.name, language, member.timezone
            )
            enrolment, created = await self.coach.enrol(
                person.id, request.track, language, request.deadline
            )
            created = created or await self._reactivate(enrolment.id, request, language)
            (outcome.enrolled if created else outcome.already).append(member)
            outcome.enrolment_ids[member.user_id] = enrolment.id
            if team_id is not None:
                await self._join(team_id, person.id)
        logger.info(
            "enrolment: %s new, %s already, %s skipped",
            len(outcome.enrolled),
            len(outcome.already),
            sum(len(v) for v in outcome.skipped.values()),
        )
        return outcome

    @staticmethod
    def _skip_reason(member: Member, request: EnrolRequest) -> str | None:
        if member.is_bot:
            return "bot"
        if member.deactivated:
            return "deactivated"
        if member.guest and not request.include_guests:
            return "guest"
        return None

    async def _reactivate(
        self, enrolment_id: int, request: EnrolRequest, language: str | None
    ) -> bool:
        """An unenrolled learner enrolled again keeps what they did, with the new options."""
        values: dict[str, object] = {"status": "active", "deadline": request.deadline}
        enrolment = await self.coach.enrolment(enrolment_id)
        if enrolment.completed_at is None:
            values["track"] = request.track
        if language:
            values["language"] = self.coach.course.language(language).code
        async with self.db.session() as session:
            statement = (
                update(Enrolment)
                .where(Enrolment.id == enrolment_id, Enrolment.status == "unenrolled")
                .values(**values)
            )
            return (await session.execute(statement)).rowcount == 1

    async def _join(self, team_id: int, person_id: int) -> None:
        async with self.db.session() as session:
            values = {"team_id": team_id, "person_id": person_id}
            await session.execute(self.db.insert_ignore(TeamMember).values(**values))

    async def find_team(self, organisation_id: int, external_id: str) -> Team | None:
        async with self.db.session() as session:
            query = select(Team).filter_by(organisation_id=organisation_id, external_id=external_id)
            return (await session.execute(query)).scalar_one_or_none()

    async def close_team(self, organisation_id: int, external_id: str) -> None:
        """An unenrolled channel stops enrolling the people who join it."""
        async with self.db.session() as session:
            statement = (
                update(Team)
                .where(Team.organisation_id == organisation_id, Team.external_id == external_id)
                .values(keep_open=False)
            )
            await session.execute(statement)

    async def kept_team(self, organisation_id: int, external_id: str) -> Team | None:
        """The team for a channel whose enrolment is kept open, if it is."""
        async with self.db.session() as session:
            query = select(Team).filter_by(
                organisation_id=organisation_id, external_id=external_id, keep_open=True
            )
            return (await session.execute(query)).scalar_one_or_none()

    def joiner_request(self, team: Team) -> EnrolRequest:
        """The enrolment a new member of a kept-open team gets, deadline counted from today."""
        deadline = None
        if team.deadline_days is not None:
            deadline = self.coach.clock().date() + timedelta(days=team.deadline_days)
        return EnrolRequest(team.track or "core", team.language, deadline)

    async def unenrol(self, organisation_id: int, user_ids: list[str]) -> int:
        """Stop the course for these people; what they did stays as evidence."""
        async with self.db.session() as session:
            people = select(Person.id).where(
                Person.organisation_id == organisation_id, Person.platform_user_id.in_(user_ids)
            )
            statement = (
                update(Enrolment)
                .where(Enrolment.person_id.in_(people), Enrolment.status.in_(ACTIVE))
                .values(status="unenrolled")
            )
            return (await session.execute(statement)).rowcount

    async def assign_manager(self, team_id: int, person_id: int) -> bool:
        async with self.db.session() as session:
            values = {"team_id": team_id, "person_id": person_id}
            result = await session.execute(self.db.insert_ignore(TeamManager).values(**values))
            return result.rowcount == 1

    async def set_active(self, organisation_id: int, user_id: str, active: bool) -> bool:
        """Someone left (no more lessons or reminders) or came back to the workspace."""
        async with self.db.session() as session:
            statement = (
                update(Person)
                .where(
                    Person.organisation_id == organisation_id,
                    Person.platform_user_id == user_id,
                    Person.active.is_not(active),
                )
                .values(active=active)
            )
            changed = (await session.execute(statement)).rowcount == 1
        if changed:
            state = "active" if active else "inactive"
            logger.info("person %s of organisation %s is %s", user_id, organisation_id, state)
        return changed

    async def mark_unreachable(self, person_id: int, reason: str) -> None:
        """The platform refused to reach this person: stop trying and tell the admins."""
        async with self.db.session() as session:
            person = await session.get_one(Person, person_id)
            person.unreachable_reason = reason[:100]
            person.unreachable_at = self.coach.clock()
        logger.warning("person %s is unreachable: %s", person_id, reason)

    async def mark_reachable(self, person_id: int) -> None:
        async with self.db.session() as session:
            statement = (
                update(Person)
                .where(Person.id == person_id, Person.unreachable_reason.is_not(None))
                .values(unreachable_reason=None, unreachable_at=None)
            )
            await session.execute(statement)

    async def unreachable(self, organisation_id: int) -> list[tuple[str, str]]:
        """(name, reason) of everyone in the organisation the platform would not let us reach."""
        async with self.db.session() as session:
            query = (
                select(Person.name, Person.unreachable_reason)
                .where(
                    Person.organisation_id == organisation_id,
                    Person.unreachable_reason.is_not(None),
                )
                .order_by(Person.name)
            )
            return [(row[0], row[1]) for row in (await session.execute(query)).all()]

    # -- status -----------------------------------------------------------------------------

    async def organisation_counts(self, organisation_id: int) -> Counts:
        async with self.db.session() as session:
            where = Enrolment.organisation_id == organisation_id
            return await self._counts(session, where, with_names=False)

    async def team_counts(self, manager_person_id: int) -> list[tuple[Team, Counts]]:
        """Each team the person manages, with its figures and who is overdue."""
        async with self.db.session() as session:
            query = (
                select(Team)
                .join(TeamManager, TeamManager.team_id == Team.id)
                .where(TeamManager.person_id == manager_person_id)
                .order_by(Team.name)
            )
            teams = (await session.execute(query)).scalars().all()
            result = []
            for team in teams:
                members = select(TeamMember.person_id).where(TeamMember.team_id == team.id)
                counts = await self._counts(session, Enrolment.person_id.in_(members), True)
                result.append((team, counts))
            return result

    async def _counts(self, session: AsyncSession, where: object, with_names: bool) -> Counts:
        today = self.coach.clock().date()
        started = select(LessonDelivery.enrolment_id).distinct()
        certified = select(Certificate.enrolment_id).where(
            Certificate.revoked_at.is_(None), Certificate.expires_at > self.coach.clock()
        )
        overdue = and_(Enrolment.deadline < today, Enrolment.completed_at.is_(None))
        active_people = select(Person.id).where(Person.active.is_(True))
        query = select(
            func.count(),
            func.sum(
                case(
                    (and_(Enrolment.id.in_(started), Enrolment.completed_at.is_(None)), 1), else_=0
                )
            ),
            func.sum(case((Enrolment.id.in_(certified), 1), else_=0)),
            func.sum(case((overdue, 1), else_=0)),
        ).where(where, Enrolment.status != "unenrolled", Enrolment.person_id.in_(active_people))
        total, in_progress, done, late = (await session.execute(query)).one()
        names: tuple[str, ...] = ()
        if with_names and late:
            late_query = (
                select(Person.name)
                .join(Enrolment, Enrolment.person_id == Person.id)
                .where(where, overdue, Enrolment.status != "unenrolled", Person.active.is_(True))
                .order_by(Person.name)
            )
            names = tuple((await session.execute(late_query)).scalars().all())
        return Counts(total, in_progress or 0, done or 0, late or 0, names)

    async def is_manager(self, person_id: int) -> bool:
        async with self.db.session() as session:
            query = select(func.count()).select_from(TeamManager).filter_by(person_id=person_id)
            return (await session.execute(query)).scalar_one() > 0

    async def behind(self, organisation_id: int, idle_days: int = 2) -> list[tuple[str, int]]:
        """Active learners past their deadline or idle for `idle_days`: (user id, enrolment id)."""
        now: datetime = self.coach.clock()
        last_seen = (
            select(LessonDelivery.enrolment_id, func.max(LessonDelivery.delivered_at).label("at"))
            .group_by(LessonDelivery.enrolment_id)
            .subquery()
        )
        query = (
            select(Person.platform_user_id, Enrolment.id)
            .join(Enrolment, Enrolment.person_id == Person.id)
            .outerjoin(last_seen, last_seen.c.enrolment_id == Enrolment.id)
            .where(
                Enrolment.organisation_id == organisation_id,
                Enrolment.status == "active",
                Enrolment.completed_at.is_(None),
                Person.active.is_(True),
                Person.unreachable_reason.is_(None),
                (Enrolment.deadline < now.date())
                | last_seen.c.at.is_(None)
                | (last_seen.c.at < now - timedelta(days=idle_days)),
            )
            .order_by(Person.platform_user_id)
        )
        async with self.db.session() as session:
            return [(row[0], row[1]) for row in (await session.execute(query)).all()]
