"""The use cases: enrol, deliver, answer, reflect, confirm, quiz, certify.

The coach knows no chat platform. Every method takes ids, works in one
database transaction and returns neutral messages. The learner's position is
derived from what is stored (deliveries, answers, reflections, confirmations,
quiz attempts), so a repeated or concurrent call records nothing twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot import certificate as certificates
from bot import dates, schedule
from bot.lessons.course import Course, Language, OrgProfile
from bot.lessons.messages import (
    Actions,
    CertificateCard,
    ChecklistCard,
    Choice,
    FeedbackCard,
    LessonCard,
    Message,
    ModuleProgress,
    ProgressCard,
    QuestionCard,
    QuizResult,
    ReflectionPrompt,
    Text,
)
from bot.lessons.models import Lesson, Question
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import (
    Answer,
    Certificate,
    ChecklistConfirmation,
    Enrolment,
    LessonDelivery,
    Organisation,
    Person,
    ProcessedEvent,
    QuizAttempt,
    Reflection,
    utcnow,
)

logger = logging.getLogger(__name__)

LESSON, RECAP = "lesson", "recap"
RECAP_DISTANCE = 2  # a wrong answer comes back this many lessons later


class CoachError(Exception):
    """Something the learner asked for cannot be done; `key` names the string to reply with."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class Journey:
    """Everything stored for one enrolment, loaded in one go."""

    enrolment: Enrolment
    person: Person
    organisation: Organisation
    lang: Language
    org: OrgProfile
    plan: list[Lesson]
    deliveries: list[LessonDelivery]
    answers: dict[tuple[str, str], Answer]
    reflections: dict[str, Reflection]
    confirmations: dict[str, ChecklistConfirmation]
    attempts: list[QuizAttempt]
    certificate: Certificate | None

    @property
    def open_delivery(self) -> LessonDelivery | None:
        last = self.deliveries[-1] if self.deliveries else None
        return last if last is not None and last.completed_at is None else None

    @property
    def lessons_done(self) -> bool:
        done = {delivery.lesson_id for delivery in self.deliveries if delivery.completed_at}
        return all(lesson.id in done for lesson in self.plan)

    @property
    def attempt(self) -> QuizAttempt | None:
        return self.attempts[-1] if self.attempts else None

    def next_lesson(self) -> Lesson | None:
        delivered = {delivery.lesson_id for delivery in self.deliveries}
        return next((lesson for lesson in self.plan if lesson.id not in delivered), None)


class Coach:
    """The course engine shared by every adapter."""

    def __init__(
        self,
        course: Course,
        db: Database,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.course = course
        self.db = db
        self.settings = settings
        self.clock = clock
        self.points = course.meta.points

    # -- organisations, people, enrolments -------------------------------------------------

    async def organisation(
        self, platform: str, external_id: str, name: str, profile: OrgProfile | None = None
    ) -> Organisation:
        """Find or create an organisation; a given profile replaces its stored settings."""
        async with self.db.session() as session:
            values = {"platform": platform, "external_id": external_id, "name": name}
            values |= {"settings": {}, "created_at": self.clock()}
            await session.execute(self.db.insert_ignore(Organisation).values(**values))
            query = select(Organisation).filter_by(platform=platform, external_id=external_id)
            organisation = (await session.execute(query)).scalar_one()
            if profile is not None:
                organisation.settings = profile.stored_in(organisation.settings)
                organisation.name = profile.text("name") or name
            return organisation

    async def person(
        self,
        organisation_id: int,
        platform_user_id: str,
        name: str,
        language: str | None = None,
        timezone: str | None = None,
    ) -> Person:
        """Find or create a person in an organisation, keeping their name up to date."""
        async with self.db.session() as session:
            values = {
                "organisation_id": organisation_id,
                "platform_user_id": platform_user_id,
                "name": name,
                "language": language,
                "timezone": timezone,
                "created_at": self.clock(),
            }
            await session.execute(self.db.insert_ignore(Person).values(**values))
            query = select(Person).filter_by(
                organisation_id=organisation_id, platform_user_id=platform_user_id
            )
            person = (await session.execute(query)).scalar_one()
            person.name = name
            person.language = language or person.language
            person.timezone = timezone or person.timezone
            return person

    async def enrol(
        self,
        person_id: int,
        track: str = "core",
        language: str | None = None,
        deadline: date | None = None,
    ) -> tuple[Enrolment, bool]:
        """Enrol a person; enrolling someone already enrolled changes nothing."""
        async with self.db.session() as session:
            person = await session.get_one(Person, person_id)
            code = self.course.language(language or person.language).code
            values = {
                "organisation_id": person.organisation_id,
                "person_id": person_id,
                "cycle": 1,
                "track": track,
                "language": code,
                "deadline": deadline,
                "status": "active",
                "content_version": self.course.version,
                "content_hash": self.course.content_hash,
                "enrolled_at": self.clock(),
            }
            result = await session.execute(self.db.insert_ignore(Enrolment).values(**values))
            query = select(Enrolment).filter_by(person_id=person_id).order_by(Enrolment.cycle)
            enrolment = (await session.execute(query)).scalars().all()[-1]
            return enrolment, result.rowcount == 1

    async def current_enrolment(self, person_id: int) -> Enrolment | None:
        """The person's newest enrolment, if any."""
        async with self.db.session() as session:
            query = select(Enrolment).filter_by(person_id=person_id)
            query = query.order_by(Enrolment.cycle.desc()).limit(1)
            return (await session.execute(query)).scalar_one_or_none()

    async def last_person_name(self, platform: str, organisation_id: int) -> str | None:
        """The name of whoever enrolled last in an organisation (the terminal's returning user)."""
        async with self.db.session() as session:
            query = (
                select(Person.name)
                .join(Enrolment, Enrolment.person_id == Person.id)
                .where(Person.organisation_id == organisation_id)
                .order_by(Enrolment.enrolled_at.desc(), Enrolment.id.desc())
                .limit(1)
            )
            return (await session.execute(query)).scalar_one_or_none()

    async def set_preferences(
        self, enrolment_id: int, language: str | None = None, track: str | None = None
    ) -> Enrolment:
        """Change a learner's language or track; what they did so far stays."""
        async with self.db.session() as session:
            enrolment = await session.get_one(Enrolment, enrolment_id)
            if language:
                enrolment.language = self.course.language(language).code
            if track and track != enrolment.track:
                if enrolment.completed_at is not None:
                    raise CoachError("error.track_locked")
                enrolment.track = track
            return enrolment

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """True the first time a platform event is seen; False for every redelivery."""
        async with self.db.session() as session:
            values = {"platform": platform, "event_id": event_id, "received_at": self.clock()}
            result = await session.execute(self.db.insert_ignore(ProcessedEvent).values(**values))
            return result.rowcount == 1

    async def release_event(self, platform: str, event_id: str) -> None:
        """Forget an event whose handling failed half-way, so its redelivery is handled."""
        async with self.db.session() as session:
            statement = delete(ProcessedEvent).filter_by(platform=platform, event_id=event_id)
            await session.execute(statement)

    # -- the learner's journey --------------------------------------------------------------

    async def handle(
        self, enrolment_id: int, action: str, value: str = "", event_id: str | None = None
    ) -> list[Message]:
        """Carry out a Choice the learner picked (its action and value, unchanged)."""
        handlers = {
            "answer": self._answer_choice,
            "next": lambda eid, _value, _event: self.next(eid),
            "resume": lambda eid, _value, _event: self.resume(eid),
            "progress": lambda eid, _value, _event: self.progress(eid),
            "skip_reflection": lambda eid, lesson_id, _event: self.reflect(eid, lesson_id, None),
            "confirm_checklist": lambda eid, _value, _event: self.confirm_checklist(eid),
            "retry_quiz": lambda eid, _value, _event: self.next(eid),
            "pause": lambda eid, _value, _event: self.pause(eid),
        }
        handler = handlers.get(action)
        if handler is None:
            raise CoachError("error.unknown_action")
        return await handler(enrolment_id, value, event_id)

    async def _answer_choice(
        self, enrolment_id: int, value: str, event_id: str | None
    ) -> list[Message]:
        context, _, rest = value.partition("|")
        question_id, _, option_id = rest.partition("|")
        return await self.answer(enrolment_id, context, question_id, option_id, event_id)

    async def resume(self, enrolment_id: int) -> list[Message]:
        """Show again whatever the learner was in the middle of."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            return await self._present(session, journey, advance=False)

    async def next(self, enrolment_id: int) -> list[Message]:
        """Go on: the open step, else the next lesson now, else the checklist or quiz."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            self._ensure_taking_part(journey)
            if journey.enrolment.status == "paused":
                journey.enrolment.status = "active"
            return await self._present(session, journey, advance=True)

    async def pause(self, enrolment_id: int) -> list[Message]:
        """Hold daily lessons (a holiday, say) until the learner asks for the next one."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            self._ensure_taking_part(journey)
            if journey.enrolment.status == "active":
                journey.enrolment.status = "paused"
            resume = Choice("next", "", journey.lang.s("button.next_lesson"))
            return [Actions(journey.lang.s("lesson.paused"), (resume,))]

    async def set_lesson_time(self, enrolment_id: int, text: str) -> list[Message]:
        """The learner's own local time for the daily lesson ("time 08:00"); a friendly no else."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            lang, person = journey.lang, journey.person
            local = schedule.parse_time(text)
            if local is None:
                return [Text(lang.s("schedule.time_invalid", text=text.strip()[:40]))]
            person.lesson_time = local
            settings = journey.organisation.settings
            zone = schedule.zone_name(person.timezone, settings, self.settings)
            logger.info("person %s chose %s for daily lessons", person.id, local)
            return [Text(lang.s("schedule.time_set", time=local, zone=zone))]

    async def set_timezone(self, person_id: int, zone: str) -> bool:
        """Store the zone the platform reports for a person (Teams tells it with each message)."""
        if schedule.zone_of(zone) is None:
            return False
        async with self.db.session() as session:
            statement = (
                update(Person)
                .where(Person.id == person_id, Person.timezone.is_distinct_from(zone))
                .values(timezone=zone)
            )
            return (await session.execute(statement)).rowcount == 1

    @staticmethod
    def _ensure_taking_part(journey: Journey) -> None:
        if journey.enrolment.status == "unenrolled" or not journey.person.active:
            raise CoachError("error.not_enrolled")

    async def find_learner(
        self, platform: str, organisation_external_id: str, user_id: str
    ) -> tuple[Person, Enrolment | None] | None:
        """The person behind a platform user, with their newest enrolment."""
        async with self.db.session() as session:
            query = (
                select(Person)
                .join(Organisation, Organisation.id == Person.organisation_id)
                .where(
                    Organisation.platform == platform,
                    Organisation.external_id == organisation_external_id,
                    Person.platform_user_id == user_id,
                )
            )
            person = (await session.execute(query)).scalar_one_or_none()
            if person is None:
                return None
            query = select(Enrolment).filter_by(person_id=person.id)
            query = query.order_by(Enrolment.cycle.desc()).limit(1)
            return person, (await session.execute(query)).scalar_one_or_none()

    async def merge_profile(self, organisation_id: int, values: dict[str, Any]) -> None:
        """Fill in the organisation's details that these values set; the rest stay."""
        async with self.db.session() as session:
            organisation = await session.get_one(Organisation, organisation_id)
            merged = {**OrgProfile.of(organisation.settings).model_dump(), **values}
            profile = OrgProfile.model_validate(merged)
            organisation.settings = profile.stored_in(organisation.settings)
            if isinstance(values.get("name"), str):
                organisation.name = values["name"]

    async def update_profile(self, organisation_id: int, profile: OrgProfile) -> Organisation:
        """Store an organisation's details (incident contact, helpdesk, policy links)."""
        async with self.db.session() as session:
            organisation = await session.get_one(Organisation, organisation_id)
            organisation.settings = profile.stored_in(organisation.settings)
            organisation.name = profile.text("name") or organisation.name
            return organisation

    async def answer(
        self,
        enrolment_id: int,
        context: str,
        question_id: str,
        option_id: str,
        event_id: str | None = None,
    ) -> list[Message]:
        """Record an answer once, however often it is delivered, and say what comes next."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            question = self._askable(journey, context, question_id)
            option = next((o for o in question.options if o.id == option_id), None)
            if option is None:
                raise CoachError("error.unknown_option")

            stored = journey.answers.get((question_id, context))
            repeated = stored is not None
            if stored is None:
                stored = await self._store_answer(
                    session, journey, context, question, option_id, event_id
                )
                repeated = stored.id is not None  # someone else's copy won the unique key
                journey.answers[(question_id, context)] = stored
            if repeated:
                option = next(o for o in question.options if o.id == stored.option_id)
            feedback = self._feedback(
                journey.lang, journey.org, context, question, option, repeated
            )
            if context in (LESSON, RECAP):
                return [feedback, *await self._after_step(session, journey)]
            return [feedback, *await self._after_quiz_answer(session, journey, context)]

    async def _after_quiz_answer(
        self, session: AsyncSession, journey: Journey, context: str
    ) -> list[Message]:
        attempt = journey.attempt
        if attempt is None or _quiz_context(attempt) != context:
            return await self._present(session, journey, advance=False)
        if attempt.finished_at is None:
            journey = await self._finish_attempt(session, journey)
            attempt = journey.attempt
        if attempt.finished_at is None:
            return [self._next_quiz_question(journey, attempt)]
        return await self._quiz_outcome(session, journey, attempt)

    async def _quiz_outcome(
        self, session: AsyncSession, journey: Journey, attempt: QuizAttempt
    ) -> list[Message]:
        result = self._quiz_result(journey, attempt)
        if attempt.passed:
            return [result, *await self._certify(session, journey)]
        retry = Choice("retry_quiz", "", journey.lang.s("button.retry_quiz"))
        return [result, Actions(journey.lang.s("quiz.retry_offer"), (retry,))]

    async def reflect(self, enrolment_id: int, lesson_id: str, text: str | None) -> list[Message]:
        """Store a reflection (or its skipping) once and move on."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            delivered = {delivery.lesson_id for delivery in journey.deliveries}
            if lesson_id not in delivered:
                raise CoachError("error.not_delivered")
            text = (text or "").strip() or None
            reply: list[Message] = []
            earlier = journey.reflections.get(lesson_id)
            if (
                earlier is not None
                and earlier.text is None
                and not earlier.text_deleted_at
                and text
            ):
                earlier.text, earlier.submitted_at = text, self.clock()  # written after a skip
                reply.append(
                    Text(journey.lang.s("reflection.thanks", points=self.points.reflection))
                )
            elif lesson_id not in journey.reflections:
                values = {
                    "enrolment_id": enrolment_id,
                    "lesson_id": lesson_id,
                    "text": text,
                    "submitted_at": self.clock(),
                }
                await session.execute(self.db.insert_ignore(Reflection).values(**values))
                key = "reflection.thanks" if text else "reflection.skipped"
                reply.append(Text(journey.lang.s(key, points=self.points.reflection)))
            else:
                reply.append(Text(journey.lang.s("reflection.already")))
            journey = await self._journey(session, enrolment_id)
            return reply + await self._after_step(session, journey)

    async def confirm_checklist(self, enrolment_id: int) -> list[Message]:
        """Record the learner's commitment to every checklist item shown, with its time."""
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            if not journey.lessons_done:
                raise CoachError("error.checklist_early")
            now = self.clock()
            for item in journey.lang.checklist(journey.org):
                if item.id in journey.confirmations:
                    continue
                values = {
                    "enrolment_id": enrolment_id,
                    "item_id": item.id,
                    "text": journey.lang.fill(item.text, journey.org),
                    "confirmed_at": now,
                }
                await session.execute(self.db.insert_ignore(ChecklistConfirmation).values(**values))
            journey = await self._journey(session, enrolment_id)
            reply: list[Message] = [Text(journey.lang.s("checklist.thanks"))]
            return reply + await self._present(session, journey, advance=True)

    async def profile_for(self, platform: str, external_id: str) -> OrgProfile:
        """An organisation's details, or an empty profile when it is not known yet."""
        async with self.db.session() as session:
            query = select(Organisation.settings).filter_by(
                platform=platform, external_id=external_id
            )
            settings = (await session.execute(query)).scalar_one_or_none()
            return OrgProfile.of(settings)

    async def enrolment(self, enrolment_id: int) -> Enrolment:
        async with self.db.session() as session:
            return await session.get_one(Enrolment, enrolment_id)

    async def certificate_of(self, enrolment_id: int) -> Certificate | None:
        async with self.db.session() as session:
            query = select(Certificate).filter_by(enrolment_id=enrolment_id)
            return (await session.execute(query)).scalar_one_or_none()

    async def progress(self, enrolment_id: int) -> list[Message]:
        async with self.db.session() as session:
            journey = await self._journey(session, enrolment_id)
            return [self._progress_card(journey)]

    # -- loading ----------------------------------------------------------------------------

    async def _journey(self, session: AsyncSession, enrolment_id: int) -> Journey:
        query = (
            select(Enrolment, Person, Organisation)
            .join(Person, Person.id == Enrolment.person_id)
            .join(Organisation, Organisation.id == Enrolment.organisation_id)
            .where(Enrolment.id == enrolment_id)
            .execution_options(populate_existing=True)
        )
        found = (await session.execute(query)).one_or_none()
        if found is None:
            raise CoachError("error.not_enrolled")
        enrolment, person, organisation = found
        lang = self.course.language(enrolment.language)
        by_enrolment = {"enrolment_id": enrolment_id}

        async def rows(model: Any, *order: Any) -> list[Any]:
            query = select(model).filter_by(**by_enrolment).order_by(*order)
            query = query.execution_options(populate_existing=True)
            return list((await session.execute(query)).scalars().all())

        deliveries = await rows(LessonDelivery, LessonDelivery.position)
        answers = await rows(Answer, Answer.id)
        reflections = await rows(Reflection, Reflection.id)
        confirmations = await rows(ChecklistConfirmation, ChecklistConfirmation.id)
        attempts = await rows(QuizAttempt, QuizAttempt.number)
        certificate = (await rows(Certificate, Certificate.id) or [None])[0]
        return Journey(
            enrolment=enrolment,
            person=person,
            organisation=organisation,
            lang=lang,
            org=OrgProfile.of(organisation.settings),
            plan=lang.plan(enrolment.track),
            deliveries=deliveries,
            answers={(answer.question_id, answer.context): answer for answer in answers},
            reflections={reflection.lesson_id: reflection for reflection in reflections},
            confirmations={item.item_id: item for item in confirmations},
            attempts=attempts,
            certificate=certificate,
        )

    # -- many learners at once (the worker's batches) ---------------------------------------

    async def journeys(self, enrolment_ids: list[int]) -> dict[int, Journey]:
        """Many journeys with one query per table, so a batch costs what one learner does."""
        async with self.db.session() as session:
            query = (
                select(Enrolment, Person, Organisation)
                .join(Person, Person.id == Enrolment.person_id)
                .join(Organisation, Organisation.id == Enrolment.organisation_id)
                .where(Enrolment.id.in_(enrolment_ids))
            )
            found = (await session.execute(query)).all()
            tables: dict[Any, dict[int, list[Any]]] = {}
            for model, order in _JOURNEY_TABLES:
                rows = select(model).where(model.enrolment_id.in_(enrolment_ids)).order_by(order)
                grouped: dict[int, list[Any]] = {}
                tables[model] = grouped
                for row in (await session.execute(rows)).scalars():
                    grouped.setdefault(row.enrolment_id, []).append(row)
        return {
            enrolment.id: self._assemble(enrolment, person, org, tables)
            for enrolment, person, org in found
        }

    def _assemble(
        self,
        enrolment: Enrolment,
        person: Person,
        organisation: Organisation,
        tables: dict[Any, dict[int, list[Any]]],
    ) -> Journey:
        def mine(model: Any) -> list[Any]:
            return tables[model].get(enrolment.id, [])

        lang = self.course.language(enrolment.language)
        return Journey(
            enrolment=enrolment,
            person=person,
            organisation=organisation,
            lang=lang,
            org=OrgProfile.of(organisation.settings),
            plan=lang.plan(enrolment.track),
            deliveries=mine(LessonDelivery),
            answers={(a.question_id, a.context): a for a in mine(Answer)},
            reflections={r.lesson_id: r for r in mine(Reflection)},
            confirmations={c.item_id: c for c in mine(ChecklistConfirmation)},
            attempts=mine(QuizAttempt),
            certificate=(mine(Certificate) or [None])[0],
        )

    async def deliver_next(self, journeys: list[Journey]) -> dict[int, list[Message]]:
        """Start each journey's next lesson, all in one INSERT, and return what to show.

        Only journeys with no open lesson and a lesson still to come are served; the
        rest (the checklist and quiz at the end) go through `next` one by one.
        """
        now = self.clock()
        started: dict[int, LessonDelivery] = {}
        for journey in journeys:
            lesson = journey.next_lesson()
            if journey.open_delivery is None and lesson is not None:
                started[journey.enrolment.id] = LessonDelivery(
                    enrolment_id=journey.enrolment.id,
                    lesson_id=lesson.id,
                    position=len(journey.deliveries) + 1,
                    recap_question_id=self._recap_for(journey),
                    content_version=self.course.version,
                    delivered_at=now,
                )
        if started:
            values = [_columns(delivery) for delivery in started.values()]
            async with self.db.session() as session:
                await session.execute(self.db.insert_ignore(LessonDelivery), values)
        by_id = {journey.enrolment.id: journey for journey in journeys}
        return {eid: self._showing(by_id[eid], d) for eid, d in started.items()}

    def reopen(self, journey: Journey) -> list[Message]:
        """The open lesson again, at the item the learner stopped at (for a reminder)."""
        delivery = journey.open_delivery
        if delivery is None:
            return []
        return self._showing(journey, delivery)

    def _showing(self, journey: Journey, delivery: LessonDelivery) -> list[Message]:
        lesson = journey.lang.lesson(delivery.lesson_id)
        return [self._lesson_card(journey, lesson), *self._open_item(journey, delivery)]

    # -- what comes next --------------------------------------------------------------------

    async def _present(
        self, session: AsyncSession, journey: Journey, advance: bool
    ) -> list[Message]:
        """The messages for the learner's current step; with `advance`, start the next one."""
        delivery = journey.open_delivery
        if delivery is not None:
            lesson = journey.lang.lesson(delivery.lesson_id)
            return [self._lesson_card(journey, lesson), *self._open_item(journey, delivery)]
        lesson = journey.next_lesson()
        if lesson is not None:
            if not advance and journey.deliveries:
                return [self._between_lessons(journey)]
            delivery = await self._deliver(session, journey, lesson)
            journey = await self._journey(session, journey.enrolment.id)
            return [self._lesson_card(journey, lesson), *self._open_item(journey, delivery)]
        return await self._final_steps(session, journey, advance)

    async def _after_step(self, session: AsyncSession, journey: Journey) -> list[Message]:
        """After an answer or reflection: the next item, or the end of today's lesson."""
        delivery = journey.deliveries[-1] if journey.deliveries else None
        if delivery is not None and delivery.completed_at is None:
            items = self._open_item(journey, delivery)
            if items:
                return items
            await self._complete(session, delivery)
            return [self._lesson_done(journey)]
        return await self._final_steps(session, journey, advance=True)

    def _open_item(self, journey: Journey, delivery: LessonDelivery) -> list[Message]:
        lesson = journey.lang.lesson(delivery.lesson_id)
        for context, question in self._delivery_questions(journey, delivery):
            if (question.id, context) not in journey.answers:
                return [self._question_card(journey, context, question, lesson)]
        if lesson.reflection and lesson.id not in journey.reflections:
            heading = journey.lang.s("reflection.heading")
            prompt = journey.lang.fill(lesson.reflection, journey.org)
            skip = Choice("skip_reflection", lesson.id, journey.lang.s("button.skip_reflection"))
            return [ReflectionPrompt(lesson.id, heading, prompt, skip)]
        return []

    def _delivery_questions(
        self, journey: Journey, delivery: LessonDelivery
    ) -> list[tuple[str, Question]]:
        lesson = journey.lang.lesson(delivery.lesson_id)
        items = [(LESSON, question) for question in lesson.questions]
        if delivery.recap_question_id:
            items.insert(0, (RECAP, journey.lang.question(delivery.recap_question_id)))
        return items

    async def _deliver(
        self, session: AsyncSession, journey: Journey, lesson: Lesson
    ) -> LessonDelivery:
        values = {
            "enrolment_id": journey.enrolment.id,
            "lesson_id": lesson.id,
            "position": len(journey.deliveries) + 1,
            "recap_question_id": self._recap_for(journey),
            "content_version": self.course.version,
            "delivered_at": self.clock(),
        }
        await session.execute(self.db.insert_ignore(LessonDelivery).values(**values))
        query = select(LessonDelivery).filter_by(
            enrolment_id=journey.enrolment.id, lesson_id=lesson.id
        )
        logger.debug("delivered lesson %s to enrolment %s", lesson.id, journey.enrolment.id)
        return (await session.execute(query)).scalar_one()

    def _recap_for(self, journey: Journey) -> str | None:
        """The oldest wrong answer from RECAP_DISTANCE or more lessons ago, not yet recapped."""
        recapped = {d.recap_question_id for d in journey.deliveries if d.recap_question_id}
        position = {d.lesson_id: d.position for d in journey.deliveries}
        due = len(journey.deliveries) + 1 - RECAP_DISTANCE
        for answer in journey.answers.values():
            if answer.context != LESSON or answer.correct or answer.question_id in recapped:
                continue
            if position.get(answer.topic or "", due + 1) <= due:
                return answer.question_id
        return None

    async def _complete(self, session: AsyncSession, delivery: LessonDelivery) -> None:
        """Mark the lesson done once, and keep the loaded journey in step without a reload."""
        now = self.clock()
        statement = (
            update(LessonDelivery)
            .where(LessonDelivery.id == delivery.id, LessonDelivery.completed_at.is_(None))
            .values(completed_at=now)
        )
        await session.execute(statement)
        set_committed_value(delivery, "completed_at", now)

    # -- answers ----------------------------------------------------------------------------

    def _askable(self, journey: Journey, context: str, question_id: str) -> Question:
        """The question, if the learner may answer it in that context now or has already."""
        try:
            question = journey.lang.question(question_id)
        except KeyError:
            raise CoachError("error.unknown_question") from None
        if (question_id, context) in journey.answers:
            return question
        if context in (LESSON, RECAP):
            delivery = journey.open_delivery
            asked = self._delivery_questions(journey, delivery) if delivery else []
            if (context, question_id) not in [(c, q.id) for c, q in asked]:
                raise CoachError("error.not_asked")
            return question
        attempt = journey.attempt
        if attempt is None or context != _quiz_context(attempt) or attempt.finished_at:
            raise CoachError("error.quiz_closed")
        if question_id not in attempt.question_ids:
            raise CoachError("error.not_asked")
        return question

    async def _store_answer(
        self,
        session: AsyncSession,
        journey: Journey,
        context: str,
        question: Question,
        option_id: str,
        event_id: str | None,
    ) -> Answer:
        """Insert the answer once; the stored one (with its id) when it was already there."""
        lesson = journey.lang.lesson_of_question(question.id)
        topic = getattr(question, "topic", None) or (lesson.id if lesson else None)
        values = {
            "enrolment_id": journey.enrolment.id,
            "question_id": question.id,
            "option_id": option_id,
            "correct": question.correct_option.id == option_id,
            "context": context,
            "topic": topic,
            "content_version": self.course.version,
            "content_hash": self.course.content_hash,
            "event_id": event_id,
            "answered_at": self.clock(),
        }
        result = await session.execute(self.db.insert_ignore(Answer).values(**values))
        if result.rowcount == 1:
            return Answer(**values)  # in memory only: the row is written
        return await self._stored_answer(session, journey, question, context)

    async def _stored_answer(
        self, session: AsyncSession, journey: Journey, question: Question, context: str
    ) -> Answer:
        query = select(Answer).filter_by(
            enrolment_id=journey.enrolment.id, question_id=question.id, context=context
        )
        return (await session.execute(query)).scalar_one()

    def _answer_points(self, context: str, correct: bool) -> int:
        if context == RECAP:
            return self.points.recap_correct if correct else self.points.answer
        return self.points.answer + (self.points.correct_answer if correct else 0)

    def _feedback(
        self,
        lang: Language,
        org: OrgProfile,
        context: str,
        question: Question,
        option: Any,
        repeated: bool,
    ) -> FeedbackCard:
        correct = option.correct
        heading = lang.s("feedback.correct" if correct else "feedback.wrong")
        text = lang.fill(option.feedback, org)
        if not correct:
            right = question.correct_option
            text += "\n" + lang.s("feedback.right_answer", option=right.text)
        if repeated:
            text = lang.s("feedback.already_answered") + "\n" + text
        points = 0 if repeated else self._answer_points(context, correct)
        return FeedbackCard(
            question.id, context, correct, heading, option.text, text, points, repeated
        )

    # -- cards ------------------------------------------------------------------------------

    def _question_card(
        self, journey: Journey, context: str, question: Question, lesson: Lesson | None
    ) -> QuestionCard:
        lang = journey.lang
        if context == RECAP:
            source = lang.lesson_of_question(question.id)
            heading = lang.s("question.recap", lesson=source.title if source else "")
        elif context == LESSON and lesson is not None:
            number = lesson.questions.index(question) + 1
            heading = lang.s("question.lesson", number=number, total=len(lesson.questions))
        else:
            attempt = journey.attempt
            number = attempt.question_ids.index(question.id) + 1 if attempt else 1
            total = len(attempt.question_ids) if attempt else 1
            heading = lang.s("question.quiz", number=number, total=total)
        options = tuple(
            Choice("answer", f"{context}|{question.id}|{option.id}", option.text)
            for option in question.options
        )
        prompt = lang.fill(question.prompt, journey.org)
        return QuestionCard(question.id, context, heading, prompt, options)

    def _lesson_card(self, journey: Journey, lesson: Lesson) -> LessonCard:
        lang, org = journey.lang, journey.org
        module = lang.module_of(lesson.id)
        return LessonCard(
            lesson_id=lesson.id,
            module_title=module.title,
            title=lesson.title,
            text=lang.fill(lesson.text, org),
            tip_label=lang.s("lesson.tip"),
            tip=lang.fill(lesson.tip, org),
            media_url=lesson.media.url if lesson.media else None,
            media_label=lesson.media.label if lesson.media else None,
            progress=self._module_progress(journey)[module.id],
        )

    def _lesson_done(self, journey: Journey) -> Actions:
        lang = journey.lang
        stats = self._stats(journey)
        if journey.lessons_done:
            text = lang.s("lesson.all_done", points=stats["points"])
            return Actions(text, (Choice("next", "", lang.s("button.checklist")),))
        text = lang.s("lesson.done", points=stats["points"], streak=stats["streak"])
        return Actions(text, self._between_choices(lang))

    def _between_lessons(self, journey: Journey) -> Actions:
        lang = journey.lang
        return Actions(lang.s("lesson.waiting"), self._between_choices(lang))

    def _between_choices(self, lang: Language) -> tuple[Choice, ...]:
        return (
            Choice("next", "", lang.s("button.next_lesson")),
            Choice("progress", "", lang.s("button.progress")),
            Choice("pause", "", lang.s("button.pause")),
        )

    # -- module 6: checklist, quiz, certificate ---------------------------------------------

    async def _final_steps(
        self, session: AsyncSession, journey: Journey, advance: bool
    ) -> list[Message]:
        lang = journey.lang
        if not journey.lessons_done:
            return [self._between_lessons(journey)]
        items = lang.checklist(journey.org)
        if any(item.id not in journey.confirmations for item in items):
            return [self._checklist_card(journey)]
        if journey.certificate is not None:
            if journey.certificate.pdf_path is None:
                journey.certificate.pdf_path = self._write_pdf(journey.certificate, lang)
            return [self._certificate_card(journey, journey.certificate)]
        attempt = journey.attempt
        if attempt is not None and attempt.finished_at is None:
            return [self._next_quiz_question(journey, attempt)]
        if attempt is not None and (attempt.passed or not advance):
            return await self._quiz_outcome(session, journey, attempt)
        attempt = await self._start_attempt(session, journey)
        journey = await self._journey(session, journey.enrolment.id)
        intro = Text(lang.s("quiz.intro", total=len(attempt.question_ids), **self._pass_mark()))
        return [intro, self._next_quiz_question(journey, attempt)]

    def _pass_mark(self) -> dict[str, int]:
        return {"pass_mark": round(self.course.meta.final_quiz.pass_mark * 100)}

    def _checklist_card(self, journey: Journey) -> ChecklistCard:
        lang, org = journey.lang, journey.org
        items = tuple((item.id, lang.fill(item.text, org)) for item in lang.checklist(org))
        module = lang.final_module
        intro = lang.fill(module.intro or "", org)
        confirm = Choice("confirm_checklist", "", lang.s("button.confirm_checklist"))
        return ChecklistCard(module.title, intro, items, confirm)

    async def _start_attempt(self, session: AsyncSession, journey: Journey) -> QuizAttempt:
        used = {qid for attempt in journey.attempts for qid in attempt.question_ids}
        pool = [question.id for question in journey.lang.quiz_pool]
        draw = self.course.meta.final_quiz.draw
        rng = random.SystemRandom()
        fresh = [qid for qid in pool if qid not in used]
        chosen = rng.sample(fresh, min(draw, len(fresh)))
        if len(chosen) < draw:
            spare = [qid for qid in pool if qid not in chosen]
            chosen += rng.sample(spare, draw - len(chosen))
        number = len(journey.attempts) + 1
        values = {
            "enrolment_id": journey.enrolment.id,
            "number": number,
            "question_ids": chosen,
            "started_at": self.clock(),
        }
        await session.execute(self.db.insert_ignore(QuizAttempt).values(**values))
        query = select(QuizAttempt).filter_by(enrolment_id=journey.enrolment.id, number=number)
        return (await session.execute(query)).scalar_one()

    def _next_quiz_question(self, journey: Journey, attempt: QuizAttempt) -> Message:
        context = _quiz_context(attempt)
        for question_id in attempt.question_ids:
            if (question_id, context) not in journey.answers:
                question = journey.lang.question(question_id)
                return self._question_card(journey, context, question, None)
        raise AssertionError("an attempt with every question answered is finished")

    async def _finish_attempt(self, session: AsyncSession, journey: Journey) -> Journey:
        attempt = journey.attempt
        context = _quiz_context(attempt)
        answers = [journey.answers.get((qid, context)) for qid in attempt.question_ids]
        if attempt.finished_at is not None or any(answer is None for answer in answers):
            return journey
        correct = sum(answer.correct for answer in answers)
        passed = correct / len(answers) >= self.course.meta.final_quiz.pass_mark
        statement = (
            update(QuizAttempt)
            .where(QuizAttempt.id == attempt.id, QuizAttempt.finished_at.is_(None))
            .values(finished_at=self.clock(), correct=correct, passed=passed)
        )
        await session.execute(statement)
        return await self._journey(session, journey.enrolment.id)

    def _quiz_result(self, journey: Journey, attempt: QuizAttempt) -> QuizResult:
        lang = journey.lang
        total = len(attempt.question_ids)
        values = {"correct": attempt.correct, "total": total, **self._pass_mark()}
        if attempt.passed:
            return QuizResult(
                lang.s("quiz.passed_heading"),
                lang.s("quiz.passed", **values),
                True,
                attempt.correct or 0,
                total,
            )
        context = _quiz_context(attempt)
        missed: list[str] = []
        for qid in attempt.question_ids:
            answer = journey.answers.get((qid, context))
            if answer is not None and not answer.correct and answer.topic:
                lesson = lang.lesson(answer.topic)
                line = lang.s(
                    "quiz.look_back", title=lesson.title, tip=lang.fill(lesson.tip, journey.org)
                )
                if line not in missed:
                    missed.append(line)
        return QuizResult(
            lang.s("quiz.failed_heading"),
            lang.s("quiz.failed", **values),
            False,
            attempt.correct or 0,
            total,
            tuple(missed),
        )

    async def _certify(self, session: AsyncSession, journey: Journey) -> list[Message]:
        certificate = await self._issue_certificate(session, journey)
        journey.certificate = certificate
        return [self._certificate_card(journey, certificate)]

    async def _issue_certificate(self, session: AsyncSession, journey: Journey) -> Certificate:
        enrolment, attempt = journey.enrolment, journey.attempt
        issued = self.clock()
        values = {
            "code": certificates.new_code(),
            "enrolment_id": enrolment.id,
            "organisation_id": enrolment.organisation_id,
            "person_id": enrolment.person_id,
            "learner_name": journey.person.name,
            "organisation_name": journey.org.text("name", journey.lang.code)
            or journey.organisation.name,
            "course_title": journey.lang.text.title,
            "course_version": self.course.version,
            "content_hash": self.course.content_hash,
            "language": journey.lang.code,
            "track": enrolment.track,
            "score": (attempt.correct or 0) / len(attempt.question_ids),
            "pass_mark": self.course.meta.final_quiz.pass_mark,
            "issued_at": issued,
            "expires_at": dates.add_months(issued, self.settings.certificate_valid_months),
        }
        await session.execute(self.db.insert_ignore(Certificate).values(**values))
        query = select(Certificate).filter_by(enrolment_id=enrolment.id)
        certificate = (await session.execute(query)).scalar_one()
        if certificate.pdf_path is None:
            certificate.pdf_path = self._write_pdf(certificate, journey.lang)
        enrolment.status = "completed"
        enrolment.completed_at = enrolment.completed_at or issued
        logger.info("certificate issued for enrolment %s", enrolment.id)
        return certificate

    def _write_pdf(self, certificate: Certificate, lang: Language) -> str | None:
        """The PDF, or None if it cannot be written now: the certificate stands either way."""
        try:
            return str(certificates.write_pdf(certificate, self.settings, lang))
        except OSError as error:
            logger.warning(
                "certificate PDF not written to %s: %s",
                self.settings.certificate_dir,
                error.strerror or error,
            )
            return None

    def _certificate_card(self, journey: Journey, certificate: Certificate) -> CertificateCard:
        lang = journey.lang
        expires = dates.format_date(certificate.expires_at, lang.code)
        score = round(certificate.score * 100)
        text = lang.s("certificate.text", score=score, expires=expires)
        state = certificates.status(certificate, self.clock())
        if state != "valid":  # an expired or revoked certificate is never called valid
            text = lang.s(f"schedule.certificate_{state}", score=score, expires=expires)
        return CertificateCard(
            heading=lang.s("certificate.heading"),
            text=text,
            code=certificate.code,
            verify_url=self.settings.verify_url(certificate.code),
            pdf_path=certificates.pdf_path(certificate),
            expires_at=certificate.expires_at,
            credential_url=self._credential_url(certificate),
        )

    def _credential_url(self, certificate: Certificate) -> str | None:
        if not self.settings.signing_key:
            return None
        return self.settings.verify_url(certificate.code) + "/credential"

    # -- progress ---------------------------------------------------------------------------

    def _module_progress(self, journey: Journey) -> dict[str, ModuleProgress]:
        done = {delivery.lesson_id for delivery in journey.deliveries if delivery.completed_at}
        result: dict[str, ModuleProgress] = {}
        for module in journey.lang.modules:
            lessons = [
                lesson for lesson in journey.plan if journey.lang.module_of(lesson.id) is module
            ]
            if module is journey.lang.final_module:
                finished = self._final_done(journey)
                result[module.id] = ModuleProgress(module.id, module.title, finished, 2)
            else:
                count = sum(lesson.id in done for lesson in lessons)
                result[module.id] = ModuleProgress(module.id, module.title, count, len(lessons))
        return result

    def _final_done(self, journey: Journey) -> int:
        items = journey.lang.checklist(journey.org)
        checklist = bool(items) and all(item.id in journey.confirmations for item in items)
        return int(checklist) + int(journey.certificate is not None)

    def _stats(self, journey: Journey) -> dict[str, int]:
        points = sum(self._answer_points(a.context, a.correct) for a in journey.answers.values())
        points += self.points.reflection * sum(
            1 for r in journey.reflections.values() if r.text or r.text_deleted_at
        )
        return {"points": points, "streak": self._streak(journey)}

    def _streak(self, journey: Journey) -> int:
        """Lessons in a row finished on the day they arrived (the learner's local day)."""
        zone = dates.zone(journey.person.timezone)
        streak = 0
        for delivery in reversed(journey.deliveries):
            if delivery.completed_at is None:
                continue
            arrived = delivery.delivered_at.astimezone(zone).date()
            if delivery.completed_at.astimezone(zone).date() != arrived:
                break
            streak += 1
        return streak

    def _progress_card(self, journey: Journey) -> ProgressCard:
        lang = journey.lang
        stats = self._stats(journey)
        deadline = (
            dates.format_date(journey.enrolment.deadline, lang.code)
            if journey.enrolment.deadline
            else lang.s("progress.no_deadline")
        )
        summary = lang.s(
            "progress.summary",
            points=stats["points"],
            streak=stats["streak"],
            track=lang.s(f"track.{journey.enrolment.track}"),
            deadline=deadline,
        )
        modules = tuple(self._module_progress(journey).values())
        return ProgressCard(lang.s("progress.heading"), modules, summary)


_JOURNEY_TABLES = (
    (LessonDelivery, LessonDelivery.position),
    (Answer, Answer.id),
    (Reflection, Reflection.id),
    (ChecklistConfirmation, ChecklistConfirmation.id),
    (QuizAttempt, QuizAttempt.number),
    (Certificate, Certificate.id),
)


def _columns(delivery: LessonDelivery) -> dict[str, Any]:
    names = ("enrolment_id", "lesson_id", "position", "recap_question_id", "content_version")
    return {name: getattr(delivery, name) for name in names} | {
        "delivered_at": delivery.delivered_at
    }


def _quiz_context(attempt: QuizAttempt) -> str:
    return f"quiz:{attempt.number}"
