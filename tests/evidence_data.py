"""A known organisation of learners for the evidence pack tests, built through the coach.

Acme A/S on a controllable clock: two who completed (core, management), one revoked,
one in progress, one overdue, one unenrolled, a manager still on the way, and one who
completed after the security policy and incident procedure were linked, so only she
acknowledged them.
Everyone who reached a reflection wrote SECRET, which no report may show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update

from bot import audit
from bot.coach import Coach
from bot.lessons.course import Course, OrgProfile
from bot.lessons.messages import Actions, ChecklistCard, QuestionCard, ReflectionPrompt
from bot.programme import EnrolRequest, Member, Programme
from bot.store.models import Certificate, PlannedSend

SECRET = "Min hemmelige refleksion om chefen"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
POLICY = "https://intranet.acme.example/policy"
PROCEDURE = "https://intranet.acme.example/incident"


class Clock:
    """A clock the test moves forward; every coach call reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Acme:
    organisation_id: int
    other_organisation_id: int
    enrolments: dict[str, int] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    completed: dict[str, datetime] = field(default_factory=dict)
    acknowledged: datetime | None = None


def _answer_option(course: Course, card: QuestionCard) -> str:
    return course.language("en").question(card.question_id).correct_option.id


async def work(coach: Coach, course: Course, enrolment_id: int, lessons: int | None) -> list:
    """Take `lessons` lessons (all when None), writing SECRET at every reflection."""
    messages = await coach.next(enrolment_id)
    taken = 1
    while True:
        last = messages[-1]
        if isinstance(last, QuestionCard):
            option = _answer_option(course, last)
            messages = await coach.answer(enrolment_id, last.context, last.question_id, option)
        elif isinstance(last, ReflectionPrompt):
            messages = await coach.reflect(enrolment_id, last.lesson_id, SECRET)
        elif isinstance(last, Actions) and last.choices and last.choices[0].action == "next":
            if lessons is not None and taken >= lessons:
                return messages
            if isinstance(coach.clock, Clock):
                coach.clock.advance(hours=1)
            messages = await coach.next(enrolment_id)
            taken += 1
        else:
            return messages


async def complete(coach: Coach, course: Course, enrolment_id: int) -> tuple[str, datetime]:
    """The whole course, the checklist and a passed quiz: the certificate code, checklist time."""
    messages = await work(coach, course, enrolment_id, None)
    assert isinstance(messages[-1], ChecklistCard)
    confirmed = coach.clock.advance(minutes=5)
    messages = await coach.confirm_checklist(enrolment_id)
    while isinstance(messages[-1], QuestionCard):
        card = messages[-1]
        option = _answer_option(course, card)
        messages = await coach.answer(enrolment_id, card.context, card.question_id, option)
    return messages[-1].code, confirmed


async def build(coach: Coach, course: Course) -> Acme:
    clock = coach.clock
    programme = Programme(coach)
    organisation = await coach.organisation("test", "acme", "Acme A/S", OrgProfile(name="Acme A/S"))
    other = await coach.organisation("test", "globex", "Globex", OrgProfile(name="Globex"))
    acme = Acme(organisation.id, other.id)
    deadline = date(2026, 3, 31)

    async def enrol(team: str, track: str, people: list[str], when: date = deadline) -> None:
        row = await programme.team(organisation.id, f"C-{team}", team)
        members = [Member(f"U-{name.split()[0]}", name) for name in people]
        request = EnrolRequest(track=track, language="da", deadline=when)
        outcome = await programme.enrol_members(organisation.id, members, request, row.id)
        for member in members:
            acme.enrolments[member.name] = outcome.enrolment_ids[member.user_id]

    await enrol("Økonomi", "core", ["Søren Ærø", "Ida Igang", "Rikke Revoked"])
    await enrol("Ledelse", "management", ["Birgitte Bestyrelse", "Mads Mangler"])
    await enrol("Lager", "core", ["Otto Overskredet", "Ulla Udmeldt"], date(2026, 3, 10))
    await programme.unenrol(organisation.id, ["U-Ulla"])
    await audit.record(coach.db, clock(), organisation.id, "UADMIN", "enrol", "#Økonomi", count=3)
    await _outsider(coach, other.id)

    for name in ("Søren Ærø", "Birgitte Bestyrelse", "Rikke Revoked"):
        clock.advance(days=1)
        acme.codes[name], _ = await complete(coach, course, acme.enrolments[name])
        acme.completed[name] = clock()
    await work(coach, course, acme.enrolments["Ida Igang"], 3)
    await work(coach, course, acme.enrolments["Mads Mangler"], 2)
    await _revoke(coach, acme.codes["Rikke Revoked"], clock.advance(days=1))
    await _reminders(coach, organisation.id, "U-Otto", 2)

    clock.advance(days=1)
    profile = OrgProfile(
        name="Acme A/S", security_policy_url=POLICY, incident_procedure_url=PROCEDURE
    )
    await coach.update_profile(organisation.id, profile)
    await enrol("Økonomi", "core", ["Pia Politik"])
    pia = acme.enrolments["Pia Politik"]
    acme.codes["Pia Politik"], acme.acknowledged = await complete(coach, course, pia)
    acme.completed["Pia Politik"] = clock()
    clock.advance(days=20)
    return acme


async def _outsider(coach: Coach, organisation_id: int) -> None:
    person = await coach.person(organisation_id, "U-Gus", "Gus Globex", language="en")
    await coach.enrol(person.id, "core", "en")


async def _revoke(coach: Coach, code: str, at: datetime) -> None:
    """Revocation is another part of the product; here the stored fact is set directly."""
    async with coach.db.session() as session:
        statement = update(Certificate).filter_by(code=code)
        await session.execute(statement.values(revoked_at=at, revoked_reason="issued by mistake"))


async def _reminders(coach: Coach, organisation_id: int, user_id: str, count: int) -> None:
    """What the worker records when it sends reminders, plus a lesson send that is no reminder."""
    found = await coach.find_learner("test", "acme", user_id)
    person, enrolment = found
    async with coach.db.session() as session:
        for index in range(count + 1):
            day = date(2026, 3, 11) + timedelta(days=index)
            session.add(
                PlannedSend(
                    organisation_id=organisation_id,
                    person_id=person.id,
                    enrolment_id=enrolment.id,
                    kind="daily",
                    day=day,
                    due_at=datetime.combine(day, datetime.min.time(), UTC),
                    status="sent",
                    sent_what="lesson" if index == count else "reminder",
                    sent_at=datetime.combine(day, datetime.min.time(), UTC),
                )
            )
