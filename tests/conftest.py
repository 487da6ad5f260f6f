"""Shared fixtures: the shipped course, and a fresh database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot import server
from bot.app import App
from bot.coach import Coach
from bot.lessons.course import Course
from bot.lessons.loader import load_course
from bot.settings import REPO_CONTENT, Settings
from bot.store.db import Database
from tests.fakes.slack_api import FakeSlack
from tests.slack_harness import SECRET, TOKEN, SlackHarness, populate

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


_POSTGRES: dict[str, str | None] = {}


async def postgres_missing() -> str | None:
    """None when the test PostgreSQL answers, else why its tests skip; asked once."""
    if "reason" not in _POSTGRES:
        try:
            connection = await asyncpg.connect(PG_URL, timeout=3)
            await connection.close()
            _POSTGRES["reason"] = None
        except Exception as error:  # any failure to connect means: no PostgreSQL here
            reason = f"PostgreSQL at {PG_URL} is not reachable ({type(error).__name__})"
            _POSTGRES["reason"] = reason
    return _POSTGRES["reason"]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk reads proxy variables without NO_PROXY: keep test traffic on loopback."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(REPO_CONTENT)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database of each kind, thrown away after the test."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'coach.db'}")
        await database.upgrade()
        yield database
        await database.dispose()
        return

    missing = await postgres_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {missing}")
        pytest.skip(missing)
    schema = f"t_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return Settings(
        database_url=db.url,
        database_schema=db.schema,
        certificate_dir=tmp_path / "certificates",
        org_file=tmp_path / "no-organisation.yaml",
    )


@pytest.fixture
def coach(course: Course, db: Database, settings: Settings) -> Coach:
    return Coach(course, db, settings)


@pytest.fixture
async def slack(course: Course, db: Database, settings: Settings) -> AsyncIterator[SlackHarness]:
    """The real server in single-workspace HTTP mode, talking to a fake Slack Web API."""
    fake = FakeSlack()
    await fake.start()
    populate(fake)
    slack_settings = settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": fake.api_url,
        }
    )
    app = App(slack_settings, course, db, Coach(course, db, slack_settings))
    harness = SlackHarness(fake, app, server.build(app))
    await harness.start()
    yield harness
    await harness.stop()
    await fake.stop()
