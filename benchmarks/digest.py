"""How long every manager's weekly digest figures take for a large organisation.

Builds one organisation with N learners (default 100,000) in teams of 50 (2,000
teams, one manager each), each with 20 lessons delivered and answered, some
certified, some overdue; then times `Digests.all_managers`, which computes every
manager's figures (enrolled, in progress, certified, overdue with names, change
since last week, eight weeks of completion, three most-missed topics) in SQL.
Charts are excluded from that time and timed on their own (per chart).

Rows are bulk loaded: COPY through asyncpg on PostgreSQL, executemany through
sqlite3 on SQLite. PostgreSQL runs in its own schema, dropped afterwards.

    .venv/bin/python benchmarks/digest.py [--learners 100000] [--sqlite] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.coach import Coach  # noqa: E402
from bot.digest import Digests, completion_chart  # noqa: E402
from bot.lessons.loader import load_course  # noqa: E402
from bot.settings import REPO_CONTENT, Settings  # noqa: E402
from bot.store.db import Database  # noqa: E402

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
TEAM_SIZE = 50
LESSONS = 20
CHARTS_TIMED = 40
HASH = "0" * 64

TABLES: dict[str, tuple[str, ...]] = {
    "people": ("id", "organisation_id", "platform_user_id", "name", "language", "active",
               "digest_off", "created_at"),
    "teams": ("id", "organisation_id", "external_id", "name", "keep_open", "created_at"),
    "team_members": ("team_id", "person_id"),
    "team_managers": ("team_id", "person_id"),
    "enrolments": ("id", "organisation_id", "person_id", "cycle", "track", "language", "deadline",
                   "status", "content_version", "content_hash", "enrolled_at", "completed_at"),
    "lesson_deliveries": ("id", "enrolment_id", "lesson_id", "position", "content_version",
                          "delivered_at", "completed_at"),
    "answers": ("id", "enrolment_id", "question_id", "option_id", "correct", "context", "topic",
                "content_version", "content_hash", "answered_at"),
    "certificates": ("id", "code", "enrolment_id", "organisation_id", "person_id",
                     "learner_name", "organisation_name", "course_title", "course_version",
                     "content_hash", "language", "track", "score", "pass_mark", "issued_at",
                     "expires_at"),
}  # fmt: skip


class Generator:
    """Deterministic rows for one organisation: the same data on SQLite and PostgreSQL."""

    def __init__(self, organisation_id: int, learners: int, lessons: list[str]) -> None:
        self.org = organisation_id
        self.learners = learners
        self.teams = max(learners // TEAM_SIZE, 1)
        self.lessons = lessons[:LESSONS]
        self.random = random.Random(5)
        self.plans = [self._plan(person_id) for person_id in range(1, learners + 1)]

    def _plan(self, person_id: int) -> dict[str, Any]:
        """When this learner enrolled, started, finished (if so) and their deadline."""
        pick = self.random
        enrolled = NOW - timedelta(days=pick.randint(10, 120), minutes=pick.randint(0, 1440))
        started = enrolled + timedelta(hours=pick.randint(1, 72))
        done = pick.random() < 0.45
        finished = started + timedelta(days=pick.randint(7, 60)) if done else None
        if finished is not None and finished > NOW:
            finished = None
        deadline = TODAY + timedelta(days=pick.randint(-40, 40))
        return {"id": person_id, "enrolled": enrolled, "started": started, "done": finished,
                "deadline": deadline}  # fmt: skip

    def people(self) -> Iterator[tuple]:
        for person_id in range(1, self.learners + self.teams + 1):
            role = "learner" if person_id <= self.learners else "manager"
            yield (person_id, self.org, f"U{person_id:07d}", f"{role.title()} {person_id:07d}",
                   "en", True, False, NOW)  # fmt: skip

    def team_rows(self) -> Iterator[tuple]:
        for team_id in range(1, self.teams + 1):
            yield (team_id, self.org, f"C{team_id:06d}", f"Team {team_id:04d}", False, NOW)

    def members(self) -> Iterator[tuple]:
        for person_id in range(1, self.learners + 1):
            yield ((person_id - 1) % self.teams + 1, person_id)

    def managers(self) -> Iterator[tuple]:
        for team_id in range(1, self.teams + 1):
            yield (team_id, self.learners + team_id)

    def enrolments(self) -> Iterator[tuple]:
        for plan in self.plans:
            yield (plan["id"], self.org, plan["id"], 1, "core", "en", plan["deadline"], "active",
                   "bench", HASH, plan["enrolled"], plan["done"])  # fmt: skip

    def deliveries(self) -> Iterator[tuple]:
        for plan in self.plans:
            for position, lesson in enumerate(self.lessons):
                at = plan["started"] + timedelta(days=position)
                yield (plan["id"] * LESSONS + position, plan["id"], lesson, position + 1, "bench",
                       at, at + timedelta(minutes=5))  # fmt: skip

    def answers(self) -> Iterator[tuple]:
        pick = random.Random(7)
        for plan in self.plans:
            for position, lesson in enumerate(self.lessons):
                at = plan["started"] + timedelta(days=position, minutes=3)
                correct = pick.random() > 0.15 + 0.02 * (position % 7)
                yield (plan["id"] * LESSONS + position, plan["id"], f"q{position}", "a", correct,
                       "lesson", lesson, "bench", HASH, at)  # fmt: skip

    def certificates(self) -> Iterator[tuple]:
        for plan in self.plans:
            if plan["done"] is None:
                continue
            yield (plan["id"], f"code{plan['id']:08d}", plan["id"], self.org, plan["id"],
                   f"Learner {plan['id']:07d}", "Bench Org", "NIS2", "bench", HASH, "en",
                   "core", 0.9, 0.8, plan["done"],
                   plan["done"] + timedelta(days=365))  # fmt: skip

    def tables(self) -> list[tuple[str, Iterator[tuple]]]:
        return [
            ("people", self.people()),
            ("teams", self.team_rows()),
            ("team_members", self.members()),
            ("team_managers", self.managers()),
            ("enrolments", self.enrolments()),
            ("lesson_deliveries", self.deliveries()),
            ("answers", self.answers()),
            ("certificates", self.certificates()),
        ]


# -- loading -----------------------------------------------------------------------------------


async def load_postgres(schema: str, generator: Generator) -> None:
    connection = await asyncpg.connect(PG_URL)
    try:
        for table, rows in generator.tables():
            await connection.copy_records_to_table(
                table, records=rows, columns=list(TABLES[table]), schema_name=schema
            )
        await connection.execute(f'ANALYZE "{schema}".lesson_deliveries, "{schema}".answers')
        await connection.execute(f'ANALYZE "{schema}".enrolments, "{schema}".certificates')
        await connection.execute(f'ANALYZE "{schema}".people, "{schema}".team_members')
    finally:
        await connection.close()


def _sqlite_value(value: Any) -> Any:
    """The text SQLAlchemy writes for times and dates on SQLite, so comparisons match."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_sqlite(path: Path, generator: Generator) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        for table, rows in generator.tables():
            columns = TABLES[table]
            marks = ", ".join("?" * len(columns))
            statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            converted = (tuple(_sqlite_value(value) for value in row) for row in rows)
            connection.executemany(statement, converted)
        connection.commit()
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()


# -- timing ------------------------------------------------------------------------------------


async def measure(label: str, database: Database, coach: Coach) -> None:
    statements: list[str] = []

    def count(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    digests = Digests(coach)
    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    times = []
    for _ in range(2):
        statements.clear()
        started = time.perf_counter()
        found = await digests.all_managers(TODAY)
        times.append(time.perf_counter() - started)
    event.remove(database.engine.sync_engine, "before_cursor_execute", count)

    teams = sum(len(manager.teams) for manager in found)
    overdue = sum(team.now.overdue for manager in found for team in manager.teams)
    names = sum(len(team.overdue_names) for manager in found for team in manager.teams)
    print(
        f"{label}: every manager's figures in {times[0]:.2f} s (first run), "
        f"{times[1]:.2f} s (second run); {len(statements)} SQL statements; "
        f"{len(found)} managers, {teams} teams, {overdue} overdue ({names} names)"
    )
    lang = coach.course.language("en")
    shares = found[0].teams[0].shares
    started = time.perf_counter()
    for _ in range(CHARTS_TIMED):
        chart = completion_chart(shares, lang)
    per_chart = (time.perf_counter() - started) / CHARTS_TIMED
    print(
        f"{label}: charts (not in the time above) {1000 * per_chart:.0f} ms each, "
        f"{len(chart) / 1024:.0f} KB; {len(found)} charts would take {per_chart * len(found):.0f} s"
    )


async def organisation(coach: Coach) -> int:
    return (await coach.organisation("bench", "T0BENCH", "Bench Org")).id


async def run_sqlite(learners: int) -> None:
    course = load_course(REPO_CONTENT)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digest.db"
        database = Database(f"sqlite:///{path}")
        await database.upgrade()
        coach = Coach(course, database, Settings(database_url=database.url), clock=lambda: NOW)
        org = await organisation(coach)
        started = time.perf_counter()
        generator = Generator(org, learners, _lessons(course))
        await asyncio.to_thread(load_sqlite, path, generator)
        print(f"SQLite: built {learners} learners in {time.perf_counter() - started:.1f} s")
        await measure("SQLite", database, coach)
        await database.dispose()


async def run_postgres(learners: int) -> None:
    course = load_course(REPO_CONTENT)
    schema = f"bench_digest_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    await admin.close()
    database = Database(PG_URL, schema=schema)
    try:
        await database.upgrade()
        settings = Settings(database_url=database.url, database_schema=schema)
        coach = Coach(course, database, settings, clock=lambda: NOW)
        org = await organisation(coach)
        started = time.perf_counter()
        await load_postgres(schema, Generator(org, learners, _lessons(course)))
        print(f"PostgreSQL: built {learners} learners in {time.perf_counter() - started:.1f} s")
        await measure("PostgreSQL", database, coach)
    finally:
        await database.dispose()
        admin = await asyncpg.connect(PG_URL)  # a fresh connection: the build can take minutes
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def _lessons(course: Any) -> list[str]:
    return [lesson.id for lesson in course.language("en").plan("core")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true", help="only SQLite")
    parser.add_argument("--postgres", action="store_true", help="only PostgreSQL")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure shows as soon as it is known
    if args.learners < TEAM_SIZE:
        parser.error(f"--learners must be at least {TEAM_SIZE}")
    both = not (args.sqlite or args.postgres)
    if args.sqlite or both:
        asyncio.run(run_sqlite(args.learners))
    if args.postgres or both:
        asyncio.run(run_postgres(args.learners))


if __name__ == "__main__":
    main()
