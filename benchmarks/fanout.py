"""One morning's delivery to N learners against a local fake Slack that enforces a rate limit.

    .venv/bin/python benchmarks/fanout.py                      # 10,000 learners, SQLite
    .venv/bin/python benchmarks/fanout.py --learners 100000 --postgres

The fake Slack runs in its own process (so its bookkeeping is not counted as the
worker's memory or CPU), answers every call after --latency seconds, and answers
429 with Retry-After to a token calling faster than --limit a second (a token
bucket with one second's burst, as rate limiters usually judge an average). The
worker paces itself at --pace times the limit. Printed: messages per second as a
fraction of the limit, duplicates, misses, peak memory and database queries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, func, insert, select  # noqa: E402

from bot.adapters.slack.messenger import SlackMessenger  # noqa: E402
from bot.coach import Coach  # noqa: E402
from bot.lessons.loader import load_course  # noqa: E402
from bot.settings import REPO_CONTENT, Settings  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.models import Enrolment, Organisation, Person, PlannedSend  # noqa: E402
from bot.worker import Worker  # noqa: E402

TEAM, TOKEN = "T0BENCH", "xoxb-bench"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Wednesday 6 January 2027, 09:30 in Copenhagen: the morning every learner is due.
MORNING = datetime(2027, 1, 6, 8, 30, tzinfo=UTC)
CHUNK = 5000


# -- the fake Slack, in its own process ---------------------------------------------------------


async def serve_fake(learners: int, limit: int, latency: float) -> None:
    """Run the fake; print its URL, then answer 'stats' lines on stdin with a JSON line."""
    from tests.fakes.slack_api import FakeSlack

    class CountingSlack(FakeSlack):
        """Counts each planned-send part instead of keeping every message it was sent."""

        def __init__(self) -> None:
            super().__init__()
            self.parts: Counter[tuple[str, str, int]] = Counter()
            self.first = self.last = 0.0
            self.limited = 0

        def _chat_post_message(self, workspace: Any, params: dict[str, Any]) -> dict[str, Any]:
            channel = self._channel(workspace, params.get("channel"))
            payload = (params.get("metadata") or {}).get("event_payload") or {}
            self.parts[(channel.id, payload.get("key"), payload.get("part"))] += 1
            self.first = self.first or time.monotonic()
            self.last = time.monotonic()
            return {"channel": channel.id, "ts": self._next_ts()}

        async def _respond(self, method: str, token: Any, params: Any) -> Any:
            status, body, headers = await super()._respond(method, token, params)
            self.limited += status == 429
            self.calls.clear()
            return status, body, headers

    fake = CountingSlack()
    fake.latency = latency
    fake.limit_rate(limit)
    fake.add_workspace(TEAM, TOKEN, name="Bench")
    for n in range(learners):
        fake.add_user(TEAM, f"U{n:07d}", "Learner")
    await fake.start()
    print(fake.api_url, flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "stats":
        seconds = max(fake.last - fake.first, 1e-9)
        messages = sum(fake.parts.values())
        print(
            json.dumps(
                {
                    "messages": messages,
                    "unique": len(fake.parts),
                    "duplicates": sum(count - 1 for count in fake.parts.values() if count > 1),
                    "learners": len({channel for channel, _, _ in fake.parts}),
                    "per_second": (messages - 1) / seconds,
                    "limited": fake.limited,
                }
            ),
            flush=True,
        )
    await fake.stop()


# -- the learners --------------------------------------------------------------------------


async def enrol(db: Database, learners: int, course: Any) -> None:
    """N learners in one workspace, inserted in chunks so set-up stays small in memory."""
    async with db.session() as session:
        organisation = Organisation(platform="slack", external_id=TEAM, name="Bench", settings={})
        session.add(organisation)
        await session.flush()
        org_id = organisation.id
    for start in range(0, learners, CHUNK):
        numbers = range(start, min(start + CHUNK, learners))
        async with db.session() as session:
            people = [
                {"organisation_id": org_id, "platform_user_id": f"U{n:07d}", "name": "Learner"}
                for n in numbers
            ]
            ids = (await session.execute(insert(Person).returning(Person.id), people)).scalars()
            rows = [
                {
                    "organisation_id": org_id,
                    "person_id": person_id,
                    "track": "core",
                    "language": "en",
                    "content_version": course.version,
                    "content_hash": course.content_hash,
                }
                for person_id in ids.all()
            ]
            await session.execute(insert(Enrolment), rows)


async def open_database(postgres: bool, folder: str) -> tuple[Database, Any]:
    if not postgres:
        database = Database(f"sqlite:///{folder}/fanout.db")
        await database.upgrade()
        return database, None
    import asyncpg

    schema = f"fanout_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    database = Database(PG_URL, schema=schema)
    await database.upgrade()

    async def drop() -> None:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()

    return database, drop


# -- the morning ---------------------------------------------------------------------------


async def morning(args: argparse.Namespace) -> dict[str, Any]:
    fake = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-fake",
        "--learners",
        str(args.learners),
        "--limit",
        str(args.limit),
        "--latency",
        str(args.latency),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    api_url = (await fake.stdout.readline()).decode().strip()
    course = load_course(REPO_CONTENT)
    with tempfile.TemporaryDirectory() as folder:
        db, drop = await open_database(args.postgres, folder)
        try:
            started = time.monotonic()
            await enrol(db, args.learners, course)
            setup = time.monotonic() - started
            result = await deliver(db, course, api_url, args)
            result["setup_seconds"] = round(setup, 1)
        finally:
            await db.dispose()
            if drop is not None:
                await drop()
    fake.stdin.write(b"stats\n")
    await fake.stdin.drain()
    stats = json.loads(await fake.stdout.readline())
    fake.stdin.close()
    await fake.wait()
    return result | stats


async def deliver(db: Database, course: Any, api_url: str, args: argparse.Namespace) -> dict:
    settings = Settings(
        database_url=db.url,
        slack_bot_token=TOKEN,
        slack_api_url=api_url,
        slack_send_rate=args.limit * args.pace,
        worker_batch=args.batch,
    )
    offset = time.monotonic()
    coach = Coach(course, db, settings, clock=lambda: MORNING + _since(offset))
    messenger = SlackMessenger(settings)
    worker = Worker(coach, {"slack": messenger})
    queries = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        queries[statement.split(None, 1)[0].upper()] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    started = time.monotonic()
    tally = await worker.tick()
    seconds = time.monotonic() - started
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    await messenger.close()
    async with db.session() as session:
        query = select(PlannedSend.status, func.count()).group_by(PlannedSend.status)
        statuses = dict((await session.execute(query)).all())
    return {
        "sent_rows": tally.sent,
        "statuses": statuses,
        "seconds": round(seconds, 1),
        "queries": sum(queries.values()),
        "queries_by_kind": dict(queries),
        "batches": -(-args.learners // args.batch),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _since(offset: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=time.monotonic() - offset)


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    expected = args.learners * 2  # each lesson is a lesson card and its first question
    misses = expected - result["unique"]
    print(f"database:            {'PostgreSQL' if args.postgres else 'SQLite'}")
    print(f"learners:            {args.learners:,} (set-up {result['setup_seconds']} s)")
    print(f"delivery:            {result['seconds']} s, rows {result['statuses']}")
    print(f"messages:            {result['messages']:,} to {result['learners']:,} learners")
    rate = result["per_second"]
    print(f"messages per second: {rate:.1f} = {rate / args.limit:.3f} of the limit {args.limit}")
    print(f"429 answers:         {result['limited']}")
    print(f"duplicates:          {result['duplicates']}")
    print(f"misses:              {misses}")
    print(f"peak memory (RSS):   {result['peak_rss_mb']} MB")
    print(
        f"database queries:    {result['queries']:,} for {result['batches']:,} batches "
        f"of {args.batch} ({result['queries'] / result['batches']:.1f} per batch) "
        f"{result['queries_by_kind']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=100, help="fake Slack's calls per second")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per fake call")
    parser.add_argument("--pace", type=float, default=0.95, help="worker rate / limit")
    parser.add_argument("--batch", type=int, default=200, help="WORKER_BATCH")
    parser.add_argument("--postgres", action="store_true", help="use the local PostgreSQL")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the 429 pauses are counted in the report
    if args.serve_fake:
        asyncio.run(serve_fake(args.learners, args.limit, args.latency))
        return
    report(args, asyncio.run(morning(args)))


if __name__ == "__main__":
    main()
