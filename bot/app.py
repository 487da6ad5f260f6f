"""Start-up and shutdown in one place: settings, course, database, coach."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.coach import Coach
from bot.lessons.course import Course
from bot.lessons.loader import load_course
from bot.settings import Settings
from bot.store.db import Database

logger = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    course: Course
    db: Database
    coach: Coach


@asynccontextmanager
async def open_app(settings: Settings, migrate: bool = True) -> AsyncIterator[App]:
    """Check the course, open and migrate the database, and close it all afterwards.

    A broken course raises ContentError before anything else is touched.
    """
    course = load_course(settings.content_dir)
    db = Database(settings.database_url, settings.database_schema)
    try:
        if migrate:
            await db.upgrade()
        logger.info(
            "course %s %s loaded (%s)", course.meta.id, course.version, course.content_hash[:12]
        )
        yield App(settings, course, db, Coach(course, db, settings))
    finally:
        await db.dispose()
