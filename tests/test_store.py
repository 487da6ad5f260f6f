"""The database layer: migrations match the models, times are UTC, both SDKs install together."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update

from bot import certificate as certificates
from bot.cli import main
from bot.coach import Coach
from bot.store.db import Database, async_url
from bot.store.models import Base, Certificate, Organisation


async def test_migrations_match_the_models(db: Database) -> None:
    def differences(connection) -> list:
        context = MigrationContext.configure(connection)
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_times_are_stored_and_read_as_utc(coach: Coach) -> None:
    organisation = await coach.organisation("test", "x", "X")
    async with coach.db.session() as session:
        stored = await session.get(Organisation, organisation.id, populate_existing=True)
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == timedelta(0)


def test_database_urls_pick_the_async_driver() -> None:
    assert async_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_slack_and_teams_sdks_install_and_import_together() -> None:
    """C20: pip check is clean and both SDKs import in one process."""
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    code = (
        "import slack_bolt.async_app, slack_sdk.web.async_client, botbuilder.core,"
        " botbuilder.integration.aiohttp, aiohttp, sqlalchemy.ext.asyncio, alembic, yaml,"
        " pydantic; print('ok')"
    )
    both = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert both.stdout.strip() == "ok", both.stderr


@pytest.fixture
def verify_env(monkeypatch: pytest.MonkeyPatch, db: Database, settings) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    if db.schema:
        monkeypatch.setenv("DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("CERTIFICATE_DIR", str(settings.certificate_dir))


async def _certificate(coach: Coach, **changes) -> str:
    organisation = await coach.organisation("test", "acme", "Acme")
    person = await coach.person(organisation.id, "ada", "Ada")
    enrolment, _ = await coach.enrol(person.id)
    now = datetime.now(UTC)
    values = {
        "code": certificates.new_code(),
        "enrolment_id": enrolment.id,
        "organisation_id": organisation.id,
        "person_id": person.id,
        "learner_name": "Ada",
        "organisation_name": "Acme",
        "course_title": "NIS2 Awareness",
        "course_version": "1.0.0",
        "content_hash": "0" * 64,
        "language": "en",
        "track": "core",
        "score": 0.9,
        "pass_mark": 0.8,
        "issued_at": now,
        "expires_at": now + timedelta(days=365),
    } | changes
    async with coach.db.session() as session:
        session.add(Certificate(**values))
    return values["code"]


@pytest.mark.parametrize(
    ("changes", "expected", "exit_code"),
    [
        ({}, "valid", 0),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "expired", 1),
        (
            {"revoked_at": datetime(2026, 1, 1, tzinfo=UTC), "revoked_reason": "issued in error"},
            "revoked",
            1,
        ),
    ],
)
async def test_certificate_verify_prints_the_status(
    coach: Coach, verify_env, capsys, changes, expected, exit_code
) -> None:
    code = await _certificate(coach, **changes)
    assert await _run_cli(["certificate", "verify", code.lower()]) == exit_code
    assert capsys.readouterr().out.splitlines()[0] == expected


async def test_certificate_verify_unknown_code(coach: Coach, verify_env, capsys) -> None:
    assert await _run_cli(["certificate", "verify", "NIS2-AAAA-BBBB"]) == 1
    assert capsys.readouterr().out.strip() == "unknown"


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_codes_are_long_and_random() -> None:
    codes = {certificates.new_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(code.replace("-", "")) >= 28 for code in codes)


async def test_revoking_in_the_database_is_seen(coach: Coach) -> None:
    code = await _certificate(coach)
    async with coach.db.session() as session:
        await session.execute(
            update(Certificate).where(Certificate.code == code).values(revoked_at=datetime.now(UTC))
        )
        stored = (await session.execute(select(Certificate).filter_by(code=code))).scalar_one()
    assert certificates.status(stored) == "revoked"
