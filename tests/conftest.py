"""Shared fixtures: the shipped course, and a fresh database on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.coach import Coach
from bot.lessons.course import Course
from bot.lessons.loader import load_course
from bot.settings import REPO_CONTENT, Settings
from bot.store.db import Database

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reason() -> str | None:
    """None when the test PostgreSQL answers, else why its tests skip."""

    async def probe() -> None:
        connection = await asyncpg.connect(PG_URL, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as error:  # any failure to connect means: no PostgreSQL here
        return f"PostgreSQL at {PG_URL} is not reachable ({type(error).__name__})"
    return None


POSTGRES_MISSING = _postgres_reason()


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

    if POSTGRES_MISSING:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {POSTGRES_MISSING}")
        pytest.skip(POSTGRES_MISSING)
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
