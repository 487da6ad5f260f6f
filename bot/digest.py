"""The weekly digest: how each team is doing, for its managers and for the organisation's admins.

Management must oversee how the organisation's security measures are carried
out (NIS2 Art. 20(1)); staff training is one of them (Art. 21(2)(g)). The digest
gives managers the figures for that: who is enrolled, in progress, certified and
overdue, the change since last week, the topics most often answered wrongly, and
a chart of the weeks. Counts only: no one's answers or reflections.

Every figure is computed in SQL with GROUP BY, in a fixed number of queries
whatever the number of learners or teams; figures for earlier weeks are read
from the timestamps already stored, so no snapshot is kept.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, false, func, or_, select, update
from sqlalchemy.orm import aliased

from bot import audit
from bot.coach import Coach
from bot.lessons.course import Language
from bot.lessons.messages import DigestCard, DigestSection, Message
from bot.store.models import (
    Answer,
    Certificate,
    Enrolment,
    LessonDelivery,
    Organisation,
    Person,
    Team,
    TeamManager,
    TeamMember,
)

logger = logging.getLogger(__name__)

WEEKS = 8  # points on the chart: this week and the seven before
TOP_TOPICS = 3
ORG_DIGEST_TO = "org_digest_to"
RANK_TEAMS = "rank_teams"
CHART_LOCK = threading.Lock()  # matplotlib is not thread-safe: one chart at a time


@dataclass(frozen=True)
class Figures:
    enrolled: int = 0
    in_progress: int = 0
    certified: int = 0
    overdue: int = 0

    @property
    def share(self) -> float | None:
        """The share certified, or None when no one is enrolled."""
        return self.certified / self.enrolled if self.enrolled else None


@dataclass(frozen=True)
class GroupFigures:
    """One team's (or the organisation's) figures now, a week ago and over the weeks."""

    group_id: int
    now: Figures
    week_ago: Figures
    shares: tuple[float | None, ...]  # oldest week first
    overdue_names: tuple[str, ...] = ()
    missed: tuple[tuple[str, int], ...] = ()  # (topic, wrong answers), most missed first


@dataclass(frozen=True)
class ManagerDigest:
    person_id: int
    teams: tuple[GroupFigures, ...] = field(default_factory=tuple)


def week_ends(today: date) -> list[datetime]:
    """The UTC midnight after today and after the same weekday in earlier weeks, oldest first."""
    ends = [today - timedelta(days=7 * k) for k in range(WEEKS)]
    return [datetime.combine(day + timedelta(days=1), time(0), UTC) for day in reversed(ends)]


class Digests:
    """Builds digests from the store; the worker decides when to send them."""

    def __init__(self, coach: Coach) -> None:
        self.coach = coach
        self.db = coach.db

    # -- messages --------------------------------------------------------------------------

    async def for_manager(self, person_id: int, today: date) -> list[Message]:
        """One digest per team the person manages; none if they turned it off or manage none."""
        async with self.db.session() as session:
            person = await session.get_one(Person, person_id)
            if person.digest_off or not person.active:
                return []
            query = (
                select(Team.id, Team.name)
                .join(TeamManager, TeamManager.team_id == Team.id)
                .where(
                    TeamManager.person_id == person_id,
                    Team.organisation_id == person.organisation_id,
                )
                .order_by(Team.name)
            )
            teams = [(row[0], row[1]) for row in (await session.execute(query)).all()]
        if not teams:
            return []
        figures = await self.team_figures(person.organisation_id, [t[0] for t in teams], today)
        lang = self.coach.course.language(person.language)
        cards = []
        for team_id, name in teams:
            group = figures[team_id]
            heading = lang.s("digest.team_heading", team=name, date=today.isoformat())
            cards.append(await self._card(lang, heading, name, group, ()))
        logger.info("digest for person %s: %s teams", person_id, len(cards))
        return cards

    async def for_organisation(
        self, organisation_id: int, today: date, rank_teams: bool, language: str | None = None
    ) -> list[Message]:
        """The whole organisation for its admins, with teams (never people) ranked if asked."""
        group = await self.organisation_figures(organisation_id, today)
        lang = self.coach.course.language(language)
        async with self.db.session() as session:
            organisation = await session.get_one(Organisation, organisation_id)
        heading = lang.s("digest.org_heading", org=organisation.name, date=today.isoformat())
        ranking: tuple[str, ...] = ()
        if rank_teams:
            ranking = await self._ranking(organisation_id, today, lang)
        return [await self._card(lang, heading, organisation.name, group, ranking)]

    async def for_admin(self, person_id: int, today: date) -> list[Message]:
        """The organisation digest for an admin who asked for it, in their language."""
        async with self.db.session() as session:
            person = await session.get_one(Person, person_id)
            organisation = await session.get_one(Organisation, person.organisation_id)
        settings = organisation.settings or {}
        if person_id not in settings.get(ORG_DIGEST_TO, []) or not person.active:
            return []
        rank = bool(settings.get(RANK_TEAMS))
        return await self.for_organisation(organisation.id, today, rank, person.language)

    async def _card(
        self,
        lang: Language,
        heading: str,
        title: str,
        group: GroupFigures,
        ranking: tuple[str, ...],
    ) -> DigestCard:
        section = self._section(lang, title, group)
        chart = await asyncio.to_thread(completion_chart, group.shares, lang)
        fallback = f"{heading}: " + lang.s("digest.fallback", **_values(group.now))
        ranking_heading = lang.s("digest.ranking_heading") if ranking else ""
        return DigestCard(
            heading=heading,
            sections=(section,),
            chart_png=chart,
            chart_title=lang.s("digest.chart_title"),
            fallback=fallback,
            ranking_heading=ranking_heading,
            ranking=ranking,
            note=lang.s("digest.note"),
        )

    def _section(self, lang: Language, title: str, group: GroupFigures) -> DigestSection:
        now, before = group.now, group.week_ago
        lines = tuple(
            lang.s(
                f"digest.{name}",
                count=getattr(now, name),
                change=_change(getattr(now, name) - getattr(before, name)),
            )
            for name in ("enrolled", "in_progress", "certified", "overdue")
        )
        topics = tuple(
            lang.s("digest.topic_line", topic=_topic_title(lang, topic), count=count)
            for topic, count in group.missed
        )
        return DigestSection(
            title=title,
            lines=lines,
            overdue_heading=lang.s("digest.overdue_heading", count=len(group.overdue_names)),
            overdue_names=group.overdue_names,
            topics_heading=lang.s("digest.topics_heading"),
            topics=topics or (lang.s("digest.no_topics"),),
        )

    async def _ranking(self, organisation_id: int, today: date, lang: Language) -> tuple[str, ...]:
        async with self.db.session() as session:
            query = select(Team.id, Team.name).where(Team.organisation_id == organisation_id)
            names = {row[0]: row[1] for row in (await session.execute(query)).all()}
        figures = await self.team_figures(organisation_id, list(names), today)
        ranked = sorted(
            (group for group in figures.values() if group.now.enrolled),
            key=lambda group: (-(group.now.share or 0), names[group.group_id]),
        )
        return tuple(
            lang.s(
                "digest.rank_line",
                place=place,
                team=names[group.group_id],
                percent=round(100 * (group.now.share or 0)),
                certified=group.now.certified,
                enrolled=group.now.enrolled,
            )
            for place, group in enumerate(ranked, start=1)
        )

    # -- figures ---------------------------------------------------------------------------

    async def team_figures(
        self, organisation_id: int | None, team_ids: Sequence[int] | None, today: date
    ) -> dict[int, GroupFigures]:
        """Figures per team, in four queries whatever the number of teams and learners."""
        group = TeamMember.team_id
        scope = [] if team_ids is None else [TeamMember.team_id.in_(team_ids)]
        if organisation_id is not None:
            scope.append(Enrolment.organisation_id == organisation_id)

        def source(query: Any) -> Any:
            """Members' enrolments, only where team and enrolment belong to one organisation."""
            return (
                query.select_from(TeamMember)
                .join(Team, Team.id == TeamMember.team_id)
                .join(
                    Enrolment,
                    and_(
                        Enrolment.person_id == TeamMember.person_id,
                        Enrolment.organisation_id == Team.organisation_id,
                    ),
                )
            )

        return await self._figures(group, source, scope, today)

    async def organisation_figures(self, organisation_id: int, today: date) -> GroupFigures:
        """The same figures for everyone enrolled in the organisation, in a team or not."""

        def source(query: Any) -> Any:
            return query.select_from(Enrolment)

        scope = [Enrolment.organisation_id == organisation_id]
        found = await self._figures(Enrolment.organisation_id, source, scope, today)
        empty = Figures()
        return found.get(organisation_id, GroupFigures(organisation_id, empty, empty, ()))

    async def all_managers(self, today: date) -> list[ManagerDigest]:
        """Every manager's figures (no chart), in a fixed number of queries: for the benchmark."""
        teams = await self.team_figures(None, None, today)
        query = (
            select(TeamManager.person_id, TeamManager.team_id)
            .join(Person, Person.id == TeamManager.person_id)
            .join(Team, Team.id == TeamManager.team_id)
            .where(
                Person.digest_off.is_(False),
                Person.active.is_(True),
                Team.organisation_id == Person.organisation_id,
            )
            .order_by(TeamManager.person_id, TeamManager.team_id)
        )
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        by_manager: dict[int, list[GroupFigures]] = defaultdict(list)
        empty = Figures()
        for person_id, team_id in rows:
            by_manager[person_id].append(
                teams.get(team_id, GroupFigures(team_id, empty, empty, ()))
            )
        return [ManagerDigest(person_id, tuple(found)) for person_id, found in by_manager.items()]

    async def _figures(
        self, group: Any, source: Any, scope: list[Any], today: date
    ) -> dict[int, GroupFigures]:
        ends = week_ends(today)
        where = [*scope, *_counted()]
        async with self.db.session() as session:
            counts = (await session.execute(_counts_query(group, source, where, ends))).all()
            names = (await session.execute(_overdue_query(group, source, where, ends[-1]))).all()
            missed = (await session.execute(_missed_query(group, source, where))).all()
        overdue: dict[int, list[str]] = defaultdict(list)
        for group_id, name in names:
            overdue[group_id].append(name)
        topics: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for group_id, topic, count in missed:
            topics[group_id].append((topic, count))
        return {
            row[0]: _group(row, tuple(overdue[row[0]]), tuple(topics[row[0]])) for row in counts
        }

    # -- settings --------------------------------------------------------------------------

    async def set_manager_digest(self, person_id: int, on: bool) -> None:
        """A manager turns their own weekly digest off or back on."""
        async with self.db.session() as session:
            statement = update(Person).where(Person.id == person_id).values(digest_off=not on)
            await session.execute(statement)
        logger.info("digest for person %s turned %s", person_id, "on" if on else "off")

    async def set_org_digest(
        self, organisation_id: int, person_id: int, on: bool, actor: str
    ) -> None:
        """An admin asks for (or stops) the organisation digest for themselves."""

        def change(settings: dict[str, Any]) -> None:
            chosen = set(settings.get(ORG_DIGEST_TO, []))
            chosen = chosen | {person_id} if on else chosen - {person_id}
            settings[ORG_DIGEST_TO] = sorted(chosen)

        await self._change_settings(organisation_id, change)
        await audit.record(
            self.db, self.coach.clock(), organisation_id, actor, "digest", "organisation", on=on
        )

    async def set_ranking(self, organisation_id: int, on: bool, actor: str) -> None:
        """An admin turns the ranking of teams in the organisation digest on or off."""

        def change(settings: dict[str, Any]) -> None:
            settings[RANK_TEAMS] = on

        await self._change_settings(organisation_id, change)
        await audit.record(
            self.db, self.coach.clock(), organisation_id, actor, "settings", RANK_TEAMS, on=on
        )

    async def _change_settings(self, organisation_id: int, change: Any) -> None:
        async with self.db.session() as session:
            query = select(Organisation).where(Organisation.id == organisation_id)
            if not self.db.is_sqlite:
                query = query.with_for_update()
            organisation = (await session.execute(query)).scalar_one()
            settings = dict(organisation.settings or {})
            change(settings)
            organisation.settings = settings

    async def manages(self, person_id: int) -> bool:
        async with self.db.session() as session:
            query = select(func.count()).select_from(TeamManager).filter_by(person_id=person_id)
            return (await session.execute(query)).scalar_one() > 0


# -- the SQL ---------------------------------------------------------------------------------


def _counted() -> list[Any]:
    """An enrolment counts if it is the person's newest, not unenrolled, and they are active."""
    newer = aliased(Enrolment)
    active = select(Person.id).where(Person.active.is_(True))
    superseded = exists().where(
        newer.person_id == Enrolment.person_id, newer.cycle > Enrolment.cycle
    )
    return [Enrolment.status != "unenrolled", Enrolment.person_id.in_(active), ~superseded]


def _certified_at(at: datetime) -> Any:
    valid = select(Certificate.person_id).where(
        Certificate.issued_at < at,
        Certificate.expires_at > at,
        or_(Certificate.revoked_at.is_(None), Certificate.revoked_at > at),
    )
    return Enrolment.person_id.in_(valid)


def _open_at(at: datetime) -> Any:
    return or_(Enrolment.completed_at.is_(None), Enrolment.completed_at >= at)


def _overdue_at(at: datetime) -> Any:
    day = (at - timedelta(days=1)).date()
    return and_(Enrolment.deadline < day, _open_at(at))


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _counts_query(group: Any, source: Any, where: list[Any], ends: list[datetime]) -> Any:
    """One row per group: enrolled and certified at each week's end, the rest now and a week ago."""
    first = (
        select(
            LessonDelivery.enrolment_id.label("enrolment_id"),
            func.min(LessonDelivery.delivered_at).label("at"),
        )
        .where(LessonDelivery.position == 1)  # the first lesson (a partial index)
        .group_by(LessonDelivery.enrolment_id)
        .subquery()
    )
    columns = [group]
    for end in ends:
        columns += [_count(Enrolment.enrolled_at < end), _count(_certified_at(end))]
    for end in ends[-2:]:
        started = and_(first.c.at < end, _open_at(end))
        columns += [_count(started), _count(_overdue_at(end))]
    query = source(select(*columns)).outerjoin(first, first.c.enrolment_id == Enrolment.id)
    return query.where(*where).group_by(group)


def _overdue_query(group: Any, source: Any, where: list[Any], end: datetime) -> Any:
    query = source(select(group, Person.name)).join(Person, Person.id == Enrolment.person_id)
    return query.where(*where, _overdue_at(end)).order_by(group, Person.name, Person.id)


def _missed_query(group: Any, source: Any, where: list[Any]) -> Any:
    """Wrong answers per topic and group, the three most missed per group (a window in SQL)."""
    wrong = func.count().label("wrong")
    per_topic = (
        source(select(group.label("group_id"), Answer.topic.label("topic"), wrong))
        .join(Answer, Answer.enrolment_id == Enrolment.id)
        .where(*where, Answer.correct == false(), Answer.topic.is_not(None))
        .group_by(group, Answer.topic)
        .subquery()
    )
    place = (
        func.row_number()
        .over(
            partition_by=per_topic.c.group_id,
            order_by=(per_topic.c.wrong.desc(), per_topic.c.topic),
        )
        .label("place")
    )
    ranked = select(per_topic, place).subquery()
    return (
        select(ranked.c.group_id, ranked.c.topic, ranked.c.wrong)
        .where(ranked.c.place <= TOP_TOPICS)
        .order_by(ranked.c.group_id, ranked.c.place)
    )


def _group(row: Any, names: tuple[str, ...], missed: tuple[tuple[str, int], ...]) -> GroupFigures:
    values = [int(value or 0) for value in row[1:]]
    weekly = values[: 2 * WEEKS]
    enrolled, certified = weekly[0::2], weekly[1::2]
    started_before, overdue_before, started_now, overdue_now = values[2 * WEEKS :]
    now = Figures(enrolled[-1], started_now, certified[-1], overdue_now)
    before = Figures(enrolled[-2], started_before, certified[-2], overdue_before)
    shares = tuple(c / e if e else None for e, c in zip(enrolled, certified, strict=True))
    return GroupFigures(row[0], now, before, shares, names, missed)


# -- words and the chart ----------------------------------------------------------------------


def _values(figures: Figures) -> dict[str, int]:
    return {
        "enrolled": figures.enrolled,
        "in_progress": figures.in_progress,
        "certified": figures.certified,
        "overdue": figures.overdue,
    }


def _change(difference: int) -> str:
    return f"+{difference}" if difference > 0 else ("±0" if difference == 0 else str(difference))


def _topic_title(lang: Language, topic: str) -> str:
    try:
        return lang.lesson(topic).title
    except KeyError:
        return topic


def completion_chart(shares: Iterable[float | None], lang: Language) -> bytes:
    """A small PNG line chart of the share certified per week (matplotlib, no display needed)."""
    with CHART_LOCK:
        return _draw_chart(list(shares), lang)


def _draw_chart(shares: list[float | None], lang: Language) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    points = [None if share is None else 100 * share for share in shares]
    labels = [lang.s("digest.chart_week", weeks=len(points) - 1 - i) for i in range(len(points))]
    labels[-1] = lang.s("digest.chart_now")
    figure = Figure(figsize=(5, 2.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = list(range(len(points)))
    ys = [float("nan") if value is None else value for value in points]
    axes.plot(xs, ys, marker="o", color="#2b6cb0", linewidth=2)
    axes.fill_between(xs, ys, color="#2b6cb0", alpha=0.12)
    axes.set_ylim(0, 100)
    axes.yaxis.set_major_formatter(PercentFormatter())
    axes.set_xticks(xs, labels, fontsize=7)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(lang.s("digest.chart_title"), fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.12)  # no costly tight_layout
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
