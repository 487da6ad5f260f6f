"""Start-up and shutdown in one place: settings, course, database, coach."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.coach import Coach
from bot.lessons.course import Course
from bot.lessons.loader import load_course
from bot.settings import Settings
from bot.store.db import Database

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be opened; the message names it (password hidden) and says why."""

    def __init__(self, url: str, error: BaseException) -> None:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        safe = make_url(url).render_as_string(hide_password=True)
        super().__init__(f"cannot use the database {safe}: {type(error).__name__}: {reason}")


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
    try:
        db = Database(settings.database_url, settings.database_schema)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise DatabaseUnavailable(settings.database_url, error) from None
    try:
        if migrate:
            try:
                await db.upgrade()
            except (SQLAlchemyError, OSError, ImportError, ValueError, OverflowError) as error:
                raise DatabaseUnavailable(settings.database_url, error) from None
        logger.info(
            "course %s %s loaded (%s)", course.meta.id, course.version, course.content_hash[:12]
        )
        yield App(settings, course, db, Coach(course, db, settings))
    finally:
        await db.dispose()
        await _settle_database_threads()


async def _settle_database_threads() -> None:
    """Let aiosqlite's threads report back while the event loop still runs.

    After a failed connect its thread may still be finishing; if the loop has closed by
    then, it prints a traceback at exit instead of our one-line message.
    """
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)") and thread.is_alive():
            await asyncio.to_thread(thread.join, 2)
