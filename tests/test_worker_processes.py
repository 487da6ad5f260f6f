"""C08: two worker processes over the same due lessons, against PostgreSQL and a fake Slack."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import insert, select

from bot.lessons.course import Course
from bot.schedule import local_day
from bot.store.db import Database
from bot.store.models import Enrolment, Organisation, Person, PlannedSend, utcnow
from tests.conftest import PG_URL, postgres_missing
from tests.fakes.slack_api import FakeSlack

TEAM, TOKEN, LEARNERS = "T0C08", "xoxb-c08", 160


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    """A migrated PostgreSQL schema the worker processes can reach by name."""
    missing = await postgres_missing()
    if missing:
        pytest.skip(missing)
    schema = f"c08_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    database = Database(PG_URL, schema=schema)
    try:
        await database.upgrade()
        yield database
    finally:
        await database.dispose()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


async def due_lessons(db: Database, course: Course, fake: FakeSlack) -> None:
    """LEARNERS enrolled learners, each with a daily lesson due a minute ago."""
    now = utcnow()
    async with db.session() as session:
        organisation = Organisation(platform="slack", external_id=TEAM, name="C08", settings={})
        session.add(organisation)
        await session.flush()
        people = [
            {"organisation_id": organisation.id, "platform_user_id": f"UC08{n:04d}", "name": "L"}
            for n in range(LEARNERS)
        ]
        ids = (await session.execute(insert(Person).returning(Person.id), people)).scalars().all()
        enrolments = [
            {
                "organisation_id": organisation.id,
                "person_id": person_id,
                "track": "core",
                "language": "en",
                "content_version": course.version,
                "content_hash": course.content_hash,
            }
            for person_id in ids
        ]
        result = await session.execute(insert(Enrolment).returning(Enrolment.id), enrolments)
        day = local_day(now, "Europe/Copenhagen")
        sends = [
            {
                "organisation_id": organisation.id,
                "person_id": person_id,
                "enrolment_id": enrolment_id,
                "kind": "daily",
                "day": day,
                "due_at": now - timedelta(minutes=1),
                "created_at": now - timedelta(minutes=1),
            }
            for person_id, enrolment_id in zip(ids, result.scalars().all(), strict=True)
        ]
        await session.execute(insert(PlannedSend), sends)
    for n in range(LEARNERS):
        fake.add_user(TEAM, f"UC08{n:04d}", "L")


async def start_worker(db: Database, fake: FakeSlack) -> asyncio.subprocess.Process:
    env = os.environ | {
        "DATABASE_URL": PG_URL,
        "DATABASE_SCHEMA": db.schema or "",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": "c08-secret",
        "SLACK_API_URL": fake.api_url,
        "SLACK_SEND_RATE": "40",
        "WORKER_BATCH": "10",
        "WORKER_INTERVAL": "0.5",
        "LOG_LEVEL": "INFO",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_c08_two_worker_processes_send_each_lesson_exactly_once(
    pg: Database, course: Course
) -> None:
    """C08: two `nis2-coach worker` processes share the due rows through SKIP LOCKED."""
    fake = FakeSlack()
    await fake.start()
    fake.latency = 0.02
    fake.add_workspace(TEAM, TOKEN, name="C08")
    try:
        await due_lessons(pg, course, fake)
        workers = [await start_worker(pg, fake) for _ in range(2)]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with pg.session() as session:
                query = select(PlannedSend.status, PlannedSend.claimed_by)
                rows = (await session.execute(query)).all()
            if all(status == "sent" for status, _ in rows):
                break
            await asyncio.sleep(0.5)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(worker.communicate(), 30) for worker in workers]
    finally:
        await fake.stop()

    assert Counter(status for status, _ in rows) == {"sent": LEARNERS}
    # Both processes took part, and each says when it started and stopped.
    assert len({claimed_by for _, claimed_by in rows}) == 2
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()[-2000:]
        assert b"started" in stderr and b"stopped" in stderr
    firsts = Counter()
    for message in fake.messages:
        payload = message["metadata"]["event_payload"]
        firsts[(message["channel"], payload["part"])] += 1
    assert set(firsts.values()) == {1}
    assert len({channel for channel, _ in firsts}) == LEARNERS
