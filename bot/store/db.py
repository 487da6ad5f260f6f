"""One owner for the database engine: URL handling, SQLite tuning, migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite+aiosqlite:///nis2-coach.db"
MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """Accept the URLs operators paste (postgres://, sqlite:///) and pick the async driver."""
    parsed = make_url(url)
    drivers = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg"}
    drivers["sqlite"] = "sqlite+aiosqlite"
    name = drivers.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=name).render_as_string(hide_password=False)


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout and write locks taken up front, so concurrent writers queue (C09)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory, opened once at start-up and disposed at shutdown."""

    def __init__(self, url: str = DEFAULT_URL, schema: str | None = None) -> None:
        self.url = async_url(url)
        self.schema = schema
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            options["connect_args"] = {"timeout": 30}
        elif schema:
            options["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success and rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade)
        logger.info("database schema is up to date (%s)", make_url(self.url).drivername)

    async def dispose(self) -> None:
        await self.engine.dispose()

    def insert_ignore(self, model: Any) -> Any:
        """An INSERT that does nothing when a unique key already exists."""
        insert = sqlite_insert if self.is_sqlite else pg_insert
        return insert(model).on_conflict_do_nothing()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
