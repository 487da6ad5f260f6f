"""A worker against the fake Slack with a clock the test moves: shared by the worker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.adapters.slack.messenger import SlackMessenger
from bot.coach import Coach
from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import LessonDelivery, PlannedSend
from bot.worker import Worker
from tests.fakes.slack_api import FakeSlack

TEAM, TOKEN = "T0WORK", "xoxb-work-token"


class Clock:
    """The time the coach, the worker and the fake Slack all read."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, text: str, zone: str = "UTC") -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Kit:
    fake: FakeSlack
    clock: Clock
    coach: Coach
    settings: Settings
    organisation_id: int

    def worker(self, **changes: object) -> Worker:
        settings = self.settings.model_copy(update=changes) if changes else self.settings
        coach = Coach(self.coach.course, self.coach.db, settings, clock=self.clock)
        return Worker(coach, {"slack": SlackMessenger(settings)})

    async def learner(
        self, user_id: str, zone: str | None = "Europe/Copenhagen", lesson_time: str | None = None
    ) -> int:
        """A learner in the fake workspace and the database; returns their person id."""
        self.fake.add_user(TEAM, user_id, f"Learner {user_id}", tz=zone or "Europe/Copenhagen")
        person = await self.coach.person(self.organisation_id, user_id, user_id, "en", zone)
        if lesson_time:
            async with self.coach.db.session() as session:
                found = await session.get_one(type(person), person.id)
                found.lesson_time = lesson_time
        await self.coach.enrol(person.id)
        return person.id

    def dms(self, user_id: str) -> list[dict]:
        """Every message posted to the learner's DM, oldest first."""
        channel = self.fake.dm_channel(TEAM, user_id)
        return [m for m in self.fake.messages if m["channel"] == channel]

    async def sends(self, person_id: int) -> list[PlannedSend]:
        async with self.coach.db.session() as session:
            query = select(PlannedSend).filter_by(person_id=person_id).order_by(PlannedSend.day)
            return list((await session.execute(query)).scalars().all())

    async def finish_open_lessons(self) -> None:
        """As if every learner had answered everything they were sent."""
        async with self.coach.db.session() as session:
            statement = (
                update(LessonDelivery)
                .where(LessonDelivery.completed_at.is_(None))
                .values(completed_at=self.clock.now)
            )
            await session.execute(statement)


@asynccontextmanager
async def worker_kit(
    course: Course, db: Database, settings: Settings, start: datetime, **changes: object
) -> AsyncIterator[Kit]:
    fake = FakeSlack()
    await fake.start()
    clock = Clock(start)
    fake.clock = lambda: clock.now.timestamp()
    fake.add_workspace(TEAM, TOKEN, name="Work")
    values = {"slack_bot_token": TOKEN, "slack_api_url": fake.api_url, "slack_send_rate": 500.0}
    settings = settings.model_copy(update=values | changes)
    coach = Coach(course, db, settings, clock=clock)
    organisation = await coach.organisation("slack", TEAM, "Work")
    try:
        yield Kit(fake, clock, coach, settings, organisation.id)
    finally:
        await fake.stop()
