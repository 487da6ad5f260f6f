"""The evidence pack: who was trained, on what content, when, with what result.

Every figure comes from SQL, scoped to one organisation: a fixed handful of queries
whatever the number of people, the per-person rows streamed in chunks so a large
export never sits in memory as ORM objects. Reflections appear only as yes/no.
The PDF layout lives in bot/evidence_pdf.py; this module holds the data and the CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import IO, Any

from sqlalchemy import Select, and_, case, func, literal, or_, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from bot import privacy
from bot.lessons.course import Course, Language
from bot.lessons.models import TRACKS
from bot.store.db import Database
from bot.store.models import (
    Certificate,
    ChecklistConfirmation,
    Enrolment,
    LessonDelivery,
    Organisation,
    Person,
    PlannedSend,
    QuizAttempt,
    Reflection,
    Team,
    TeamMember,
)

CHUNK = 1000
TEAM_SEPARATOR = "\x1f"  # joins team names in SQL; no team name contains it
# The provisions the evidence pack reports coverage for, and the string naming each.
PROVISIONS = {
    "Art. 20(2)": "report.provision.art20_2",
    "Art. 21(2)(g)": "report.provision.art21_2_g",
    "Art. 23": "report.provision.art23",
    "DK § 7(2)": "report.provision.dk7_2",
}
COLUMNS = (
    "name",
    "teams",
    "track",
    "status",
    "enrolled",
    "deadline",
    "lessons_done",
    "lessons_planned",
    "completed",
    "score",
    "pass_mark",
    "certificate",
    "issued",
    "expires",
    "certificate_status",
    "course_version",
    "content_hash",
    "reminders",
    "reflections",
    "policy",
    "procedure",
)


class ReportError(Exception):
    """The report cannot be made as asked; `key` and `values` make the message."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Scope:
    """What one report covers: always one organisation, optionally one team and a start date."""

    organisation: Organisation
    team: Team | None = None
    since: date | None = None


@dataclass(frozen=True)
class Row:
    """One person's evidence: their newest enrolment and what came of it."""

    name: str | None
    erased: bool
    teams: tuple[str, ...]
    track: str
    status: str  # active, paused, completed, unenrolled, or inactive (left the workspace)
    enrolled: datetime
    deadline: date | None
    lessons_done: int
    lessons_planned: int
    completed: datetime | None
    score: float | None
    pass_mark: float
    certificate: str | None
    issued: datetime | None
    expires: datetime | None
    certificate_status: str | None
    course_version: str
    content_hash: str
    reminders: int
    reflections: bool
    policy: datetime | None
    procedure: datetime | None

    @property
    def counted(self) -> bool:
        """Counted in the summary: still taking part, as in the admins' status figures."""
        return self.status not in ("unenrolled", "inactive")

    def overdue(self, today: date) -> bool:
        return self.completed is None and self.deadline is not None and self.deadline < today


@dataclass
class Coverage:
    provision: str
    lessons: list[tuple[str, str]]  # (lesson id, title)
    done: int = 0
    total: int = 0


@dataclass
class Tally:
    enrolled: int = 0
    completed: int = 0
    overdue: int = 0
    in_progress: int = 0  # started, not yet completed

    @property
    def percent(self) -> int:
        return round(100 * self.completed / self.enrolled) if self.enrolled else 0


@dataclass
class Summary:
    """Totals gathered while the rows stream past, for the PDF's first page."""

    total: Tally = field(default_factory=Tally)
    by_team: dict[str, Tally] = field(default_factory=dict)
    by_track: dict[str, Tally] = field(default_factory=dict)

    def add(self, row: Row, today: date, no_team: str) -> None:
        if not row.counted:
            return
        groups = [self.total, self.by_track.setdefault(row.track, Tally())]
        groups += [self.by_team.setdefault(team, Tally()) for team in row.teams or (no_team,)]
        for tally in groups:
            tally.enrolled += 1
            tally.completed += row.completed is not None
            tally.overdue += row.overdue(today)
            tally.in_progress += row.completed is None and row.lessons_done > 0


# -- choosing what to report on ---------------------------------------------------------------


async def organisations(db: Database) -> list[Organisation]:
    async with db.session() as session:
        query = select(Organisation).order_by(Organisation.name, Organisation.id)
        return list((await session.execute(query)).scalars())


async def find_organisation(db: Database, wanted: str | None) -> Organisation:
    """The organisation named by external id or name; without a name, the only one there is."""
    known = await organisations(db)
    choices = "\n".join(f"  {o.external_id}  {o.name} ({o.platform})" for o in known)
    if not known:
        raise ReportError("report.cli.no_organisation")
    if wanted is None:
        if len(known) > 1:
            raise ReportError("report.cli.choose_organisation", choices=choices)
        return known[0]
    found = [o for o in known if o.external_id == wanted] or [
        o for o in known if o.name.casefold() == wanted.casefold()
    ]
    if len(found) != 1:
        key = "report.cli.unknown_organisation" if not found else "report.cli.choose_organisation"
        raise ReportError(key, org=wanted, choices=choices)
    return found[0]


async def find_team(db: Database, organisation: Organisation, wanted: str) -> Team:
    """A team of that organisation by its external id or name (a leading # is ignored)."""
    async with db.session() as session:
        query = select(Team).filter_by(organisation_id=organisation.id).order_by(Team.name)
        teams = list((await session.execute(query)).scalars())
    name = wanted.removeprefix("#")
    found = [t for t in teams if t.external_id == name] or [
        t for t in teams if t.name.casefold() == name.casefold()
    ]
    if len(found) != 1:
        choices = ", ".join(team.name for team in teams) or "-"
        raise ReportError(
            "report.cli.unknown_team", org=organisation.label, team=wanted, choices=choices
        )
    return found[0]


# -- the per-person rows ----------------------------------------------------------------------


def since_moment(scope: Scope) -> datetime | None:
    return datetime.combine(scope.since, time(), UTC) if scope.since else None


def _enrolments(scope: Scope, taking_part: bool = False) -> Select:
    """The newest enrolment of each person in scope: (enrolment id, person id).

    With `taking_part`, only people still on the course (not unenrolled, not gone).
    """
    organisation_id = scope.organisation.id
    newest = (
        select(Enrolment.person_id, func.max(Enrolment.cycle).label("cycle"))
        .where(Enrolment.organisation_id == organisation_id)
        .group_by(Enrolment.person_id)
        .subquery()
    )
    query = select(Enrolment.id, Enrolment.person_id).join(
        newest, and_(newest.c.person_id == Enrolment.person_id, newest.c.cycle == Enrolment.cycle)
    )
    query = query.where(Enrolment.organisation_id == organisation_id)
    if scope.team is not None:
        members = select(TeamMember.person_id).where(TeamMember.team_id == scope.team.id)
        query = query.where(Enrolment.person_id.in_(members))
    since = since_moment(scope)
    if since is not None:
        query = query.where(or_(Enrolment.enrolled_at >= since, Enrolment.completed_at >= since))
    if taking_part:
        active = select(Person.id).where(Person.active.is_(True))
        query = query.where(Enrolment.status != "unenrolled", Enrolment.person_id.in_(active))
    return query


def _per_enrolment(in_scope: Any, column: Any, aggregate: Any, *where: Any) -> Any:
    """A subquery of one aggregate per enrolment in scope, e.g. completed lessons."""
    return (
        select(in_scope.c.id.label("enrolment_id"), aggregate.label("value"))
        .join(column.class_, column == in_scope.c.id)
        .where(*where)
        .group_by(in_scope.c.id)
        .subquery()
    )


def _rows_query(course: Course, scope: Scope, now: datetime) -> Select:
    """One query for every person's row; each count is a grouped subquery joined once."""
    organisation_id = scope.organisation.id
    in_scope = _enrolments(scope).subquery()
    lessons = _per_enrolment(
        in_scope,
        LessonDelivery.enrolment_id,
        func.count(),
        LessonDelivery.completed_at.is_not(None),
    )
    reflections = _per_enrolment(in_scope, Reflection.enrolment_id, func.count(), privacy.SUBMITTED)
    quiz = _per_enrolment(
        in_scope,
        QuizAttempt.enrolment_id,
        func.max(QuizAttempt.correct),
        QuizAttempt.finished_at.is_not(None),
    )
    acks = _acknowledgements(course, in_scope)
    reminders = _reminders(organisation_id)
    teams = _team_names(organisation_id)
    return (
        select(
            Person.name,
            Person.erased_at,
            teams.c.names,
            Enrolment.track,
            case((Person.active.is_(False), literal("inactive")), else_=Enrolment.status),
            Enrolment.enrolled_at,
            Enrolment.deadline,
            func.coalesce(lessons.c.value, 0),
            Enrolment.completed_at,
            Certificate.score,
            quiz.c.value,
            Certificate.pass_mark,
            Certificate.code,
            Certificate.issued_at,
            Certificate.expires_at,
            _certificate_status(now),
            func.coalesce(Certificate.course_version, Enrolment.content_version),
            func.coalesce(Certificate.content_hash, Enrolment.content_hash),
            func.coalesce(reminders.c.value, 0),
            func.coalesce(reflections.c.value, 0),
            acks.c.policy,
            acks.c.procedure,
        )
        .select_from(in_scope)
        .join(Enrolment, Enrolment.id == in_scope.c.id)
        .join(Person, Person.id == in_scope.c.person_id)
        .outerjoin(teams, teams.c.person_id == Person.id)
        .outerjoin(lessons, lessons.c.enrolment_id == Enrolment.id)
        .outerjoin(reflections, reflections.c.enrolment_id == Enrolment.id)
        .outerjoin(quiz, quiz.c.enrolment_id == Enrolment.id)
        .outerjoin(acks, acks.c.enrolment_id == Enrolment.id)
        .outerjoin(reminders, reminders.c.person_id == Person.id)
        .outerjoin(Certificate, Certificate.enrolment_id == Enrolment.id)
        .order_by(Person.name, Person.id)
    )


def _acknowledgements(course: Course, in_scope: Any) -> Any:
    """Per enrolment: when the security policy and the incident procedure were acknowledged."""
    policy_ids, procedure_ids = acknowledgement_items(course.language(None))
    return (
        select(
            ChecklistConfirmation.enrolment_id,
            func.min(_when(ChecklistConfirmation.item_id.in_(policy_ids))).label("policy"),
            func.min(_when(ChecklistConfirmation.item_id.in_(procedure_ids))).label("procedure"),
        )
        .where(ChecklistConfirmation.enrolment_id.in_(select(in_scope.c.id)))
        .group_by(ChecklistConfirmation.enrolment_id)
        .subquery()
    )


def _reminders(organisation_id: int) -> Any:
    """Per person: reminders the worker sent (a daily send that turned out to be a reminder)."""
    return (
        select(PlannedSend.person_id, func.count().label("value"))
        .where(
            PlannedSend.organisation_id == organisation_id,
            PlannedSend.kind == "daily",
            PlannedSend.status == "sent",
            PlannedSend.sent_what == "reminder",
        )
        .group_by(PlannedSend.person_id)
        .subquery()
    )


def _team_names(organisation_id: int) -> Any:
    """Per person: the names of their teams, joined by TEAM_SEPARATOR."""
    return (
        select(
            TeamMember.person_id,
            func.aggregate_strings(Team.name, TEAM_SEPARATOR).label("names"),
        )
        .join(Team, Team.id == TeamMember.team_id)
        .where(Team.organisation_id == organisation_id)
        .group_by(TeamMember.person_id)
        .subquery()
    )


def _certificate_status(now: datetime) -> Any:
    return case(
        (Certificate.id.is_(None), literal(None)),
        (Certificate.revoked_at.is_not(None), literal("revoked")),
        (Certificate.expires_at <= now, literal("expired")),
        else_=literal("valid"),
    )


def _when(condition: ColumnElement[bool]) -> Any:
    """The confirmation time where the condition holds, typed so it reads back as UTC."""
    moment = case((condition, ChecklistConfirmation.confirmed_at), else_=None)
    return type_coerce(moment, ChecklistConfirmation.confirmed_at.type)


def acknowledgement_items(lang: Language) -> tuple[list[str], list[str]]:
    """The checklist items that acknowledge the security policy and the incident procedure."""
    items = lang.final_module.checklist
    policy = [item.id for item in items if item.requires == "security_policy_url"]
    procedure = [item.id for item in items if item.requires == "incident_procedure_url"]
    return policy, procedure


async def count_people(db: Database, scope: Scope) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(_enrolments(scope).subquery())
        return (await session.execute(query)).scalar_one()


async def rows(
    db: Database, course: Course, scope: Scope, now: datetime, chunk: int = CHUNK
) -> AsyncIterator[list[Row]]:
    """Every person's row, a chunk at a time, read through a streaming cursor."""
    plan_sizes = {track: len(course.language(None).plan(track)) for track in TRACKS}
    draw = course.meta.final_quiz.draw
    pass_mark = course.meta.final_quiz.pass_mark
    async with db.session() as session:
        result = await session.stream(_rows_query(course, scope, now))
        async for partition in result.partitions(chunk):
            yield [_row(values, plan_sizes, draw, pass_mark) for values in partition]


def _row(values: Any, plan_sizes: dict[str, int], draw: int, pass_mark: float) -> Row:
    (name, erased_at, teams, track, taking_part, enrolled, deadline, done) = values[:8]
    (completed, score, best, mark, code, issued, expires, status) = values[8:16]
    (version, content_hash, reminders, reflections, policy, procedure) = values[16:]
    if score is None and best is not None:
        score = best / draw
    return Row(
        name=None if erased_at else name,
        erased=erased_at is not None,
        teams=tuple(sorted(teams.split(TEAM_SEPARATOR))) if teams else (),
        track=track,
        status=taking_part,
        enrolled=_utc(enrolled),
        deadline=deadline,
        lessons_done=done,
        lessons_planned=plan_sizes.get(track, 0),
        completed=_utc(completed),
        score=score,
        pass_mark=mark if mark is not None else pass_mark,
        certificate=code,
        issued=_utc(issued),
        expires=_utc(expires),
        certificate_status=status,
        course_version=version,
        content_hash=content_hash,
        reminders=reminders,
        reflections=reflections > 0,
        policy=_utc(policy),
        procedure=_utc(procedure),
    )


def _utc(value: datetime | str | None) -> datetime | None:
    """Aggregates come back as text on SQLite: read them as the UTC times they are."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- coverage ---------------------------------------------------------------------------------


def coverage_lessons(course: Course, lang: Language) -> list[Coverage]:
    """Each reported provision with the lessons that declare it, in course order."""
    result = []
    for provision in PROVISIONS:
        lessons = [
            (lesson.id, lesson.title)
            for module in lang.modules
            for lesson in module.lessons
            if provision in lesson.provisions
        ]
        result.append(Coverage(provision, lessons))
    return result


async def coverage(db: Database, course: Course, scope: Scope, lang: Language) -> list[Coverage]:
    """Per provision: people whose track includes its lessons, and how many finished them all."""
    result = coverage_lessons(course, lang)
    in_scope = _enrolments(scope, taking_part=True).subquery()
    done_columns = []
    for item in result:
        ids = [lesson_id for lesson_id, _ in item.lessons]
        counted = case((LessonDelivery.lesson_id.in_(ids), 1), else_=0)
        done_columns.append(func.coalesce(func.sum(counted), 0).label(f"p{len(done_columns)}"))
    per_enrolment = (
        select(in_scope.c.id, Enrolment.track, *done_columns)
        .join(Enrolment, Enrolment.id == in_scope.c.id)
        .outerjoin(
            LessonDelivery,
            and_(
                LessonDelivery.enrolment_id == in_scope.c.id,
                LessonDelivery.completed_at.is_not(None),
            ),
        )
        .group_by(in_scope.c.id, Enrolment.track)
        .subquery()
    )
    totals = []
    for index, item in enumerate(result):
        needed = _needed_per_track(lang, item)
        column = per_enrolment.c[f"p{index}"]
        has = or_(*(per_enrolment.c.track == t for t in needed)) if needed else literal(False)
        finished = [and_(per_enrolment.c.track == t, column >= n) for t, n in needed.items()]
        totals.append(func.sum(case((has, 1), else_=0)))
        totals.append(func.sum(case((or_(*finished), 1), else_=0)) if finished else literal(0))
    async with db.session() as session:
        figures = (await session.execute(select(*totals).select_from(per_enrolment))).one()
    for index, item in enumerate(result):
        item.total = int(figures[2 * index] or 0)
        item.done = int(figures[2 * index + 1] or 0)
    return result


def _needed_per_track(lang: Language, item: Coverage) -> dict[str, int]:
    """How many of the provision's lessons each track's plan holds; tracks with none left out."""
    ids = {lesson_id for lesson_id, _ in item.lessons}
    needed = {track: sum(lesson.id in ids for lesson in lang.plan(track)) for track in TRACKS}
    return {track: count for track, count in needed.items() if count}


# -- CSV --------------------------------------------------------------------------------------


def header(lang: Language) -> list[str]:
    return [lang.s(f"report.column.{column}") for column in COLUMNS]


def csv_values(row: Row, lang: Language) -> list[str]:
    """A row as text: ISO dates, UTC times, scores in whole percent, words in the language."""
    return [
        lang.s("report.erased") if row.erased else row.name or "",
        ", ".join(row.teams),
        lang.s(f"track.{row.track}"),
        lang.s(f"report.enrolment.{row.status}"),
        _day(row.enrolled),
        row.deadline.isoformat() if row.deadline else "",
        str(row.lessons_done),
        str(row.lessons_planned),
        _day(row.completed),
        _percent(row.score),
        _percent(row.pass_mark),
        row.certificate or "",
        _day(row.issued),
        _day(row.expires),
        lang.s(f"report.status.{row.certificate_status}") if row.certificate_status else "",
        row.course_version,
        row.content_hash,
        str(row.reminders),
        lang.s("report.yes" if row.reflections else "report.no"),
        _moment(row.policy),
        _moment(row.procedure),
    ]


def _day(value: datetime | None) -> str:
    return value.astimezone(UTC).date().isoformat() if value else ""


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _percent(value: float | None) -> str:
    return str(round(value * 100)) if value is not None else ""


def delimiter(lang: Language) -> str:
    """Excel set to Danish reads ; as the column separator (its decimal mark is the comma)."""
    return ";" if lang.code == "da" else ","


Progress = Callable[[int], None]


async def write_csv(
    out: IO[bytes],
    db: Database,
    course: Course,
    scope: Scope,
    lang: Language,
    now: datetime,
    progress: Progress | None = None,
) -> int:
    """Write the CSV chunk by chunk (UTF-8 with BOM, for Excel); returns the people written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter(lang), lineterminator="\r\n")
    out.write("\ufeff".encode())
    writer.writerow(header(lang))
    written = 0
    async for chunk in rows(db, course, scope, now):
        writer.writerows(csv_values(row, lang) for row in chunk)
        out.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
        written += len(chunk)
        if progress is not None:
            progress(written)
    out.write(buffer.getvalue().encode())
    return written
