"""The evidence pack as files for chat: made on request, recorded in the audit log, and
offered through signed download links where a chat cannot attach files (Teams).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel.numbers import format_decimal
from sqlalchemy import select

from bot import audit, dates, downloads, evidence, evidence_pdf
from bot.evidence import Scope
from bot.lessons.course import Course, Language
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import Organisation, Team

logger = logging.getLogger(__name__)

FORMATS = ("csv", "pdf")
CONTENT_TYPES = {"csv": "text/csv", "pdf": "application/pdf"}


def filename(scope: Scope, fmt: str, now: datetime) -> str:
    """nis2-evidence-<organisation>[-<team>]-<date>.<format>, safe in any file system."""
    parts = [scope.organisation.external_id]
    if scope.team is not None:
        parts.append(scope.team.name)
    stem = "-".join(["nis2-evidence", *parts, now.date().isoformat()])
    safe = "".join(
        char if char.isascii() and (char.isalnum() or char in "-_") else "_" for char in stem
    )
    return f"{safe}.{fmt}"


async def make(
    db: Database,
    course: Course,
    settings: Settings,
    scope: Scope,
    fmt: str,
    lang: Language,
    now: datetime,
) -> downloads.File:
    """One file of the evidence pack, in memory (chat uploads and downloads need the bytes)."""
    if fmt == "pdf":
        content = await evidence_pdf.build(db, course, scope, lang, now, settings)
    else:
        buffer = io.BytesIO()
        await evidence.write_csv(buffer, db, course, scope, lang, now)
        content = buffer.getvalue()
    logger.info("evidence %s made for organisation %s", fmt, scope.organisation.id)
    return downloads.File(content, CONTENT_TYPES[fmt], filename(scope, fmt, now))


async def record(
    db: Database, now: datetime, scope: Scope, actor: str, formats: list[str], **detail: Any
) -> None:
    """The report request in the audit log: who asked, for what scope and formats."""
    target = scope.team.name if scope.team is not None else scope.organisation.label
    if scope.since is not None:
        detail["since"] = scope.since.isoformat()
    await audit.record(
        db, now, scope.organisation.id, actor, "report", target, formats=",".join(formats), **detail
    )


# -- signed download links (Teams) ------------------------------------------------------------


def grant_params(scope: Scope, lang: Language) -> dict[str, Any]:
    params: dict[str, Any] = {"lang": lang.code}
    if scope.team is not None:
        params["team"] = scope.team.id
    if scope.since is not None:
        params["since"] = scope.since.isoformat()
    return params


async def scope_for(
    db: Database, organisation_id: int, team_id: int | None = None, since: date | None = None
) -> Scope:
    """A scope by ids; a team of another organisation is never found."""
    async with db.session() as session:
        organisation = await session.get_one(Organisation, organisation_id)
        team = None
        if team_id is not None:
            query = select(Team).filter_by(id=team_id, organisation_id=organisation_id)
            team = (await session.execute(query)).scalar_one()
    return Scope(organisation, team, since)


async def scope_of(db: Database, grant: downloads.Grant) -> Scope:
    """The scope a download link was made for."""
    since = date.fromisoformat(grant.params["since"]) if "since" in grant.params else None
    return await scope_for(db, grant.organisation_id, grant.params.get("team"), since)


def _producer(fmt: str) -> downloads.Producer:
    async def produce(app: Any, grant: downloads.Grant) -> downloads.File:
        scope = await scope_of(app.db, grant)
        lang = app.course.language(grant.params.get("lang"))
        return await make(app.db, app.course, app.settings, scope, fmt, lang, app.coach.clock())

    return produce


for _fmt in FORMATS:
    downloads.PRODUCERS[f"report-{_fmt}"] = _producer(_fmt)


# -- the command line -------------------------------------------------------------------------

LARGE = 10_000  # from this many people, progress is shown even when stderr is not a terminal


def parse_since(value: str | None) -> date | None:
    """A YYYY-MM-DD date, or ReportError naming what was given."""
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise evidence.ReportError("report.cli.bad_since", value=value) from None


async def cli_scope(db: Database, org: str | None, team: str | None, since: str | None) -> Scope:
    """The scope the command line asked for; ReportError when any part of it is wrong."""
    moment = parse_since(since)
    organisation = await evidence.find_organisation(db, org)
    # An empty --team "" is a team name that matches nothing, never "the whole organisation".
    found = await evidence.find_team(db, organisation, team) if team is not None else None
    return Scope(organisation, found, moment)


def progress_printer(lang: Language, total: int, stream: Any) -> evidence.Progress | None:
    """Lines like '1,000 / 100,000 people' on stderr, for a person watching a large export."""
    if not (stream.isatty() or total >= LARGE):
        return None
    locale = dates.LOCALES.get(lang.code, lang.code)

    def show(done: int) -> None:
        figures = {"done": format_decimal(done, locale=locale)}
        figures["total"] = format_decimal(total, locale=locale)
        print(lang.s("report.cli.progress", **figures), file=stream, flush=True)

    return show


async def write_file(
    path: Path,
    db: Database,
    course: Course,
    settings: Settings,
    scope: Scope,
    fmt: str,
    lang: Language,
    now: datetime,
    progress: evidence.Progress | None,
) -> int:
    """Write the file beside its final name first, so a failed export leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    try:
        if fmt == "csv":
            with partial.open("wb") as out:
                people = await evidence.write_csv(out, db, course, scope, lang, now, progress)
        else:
            pack = await evidence_pdf.gather(db, course, scope, lang, now, settings, progress)
            partial.write_bytes(await asyncio.to_thread(evidence_pdf.render, pack))
            people = len(pack.people)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return people


def unwritable(path: Path) -> str | None:
    """The strings key saying why `path` cannot take the evidence pack; checked before the
    work starts, so a long export never ends in an error."""
    if not path.name or path.is_dir():
        return "report.cli.output_is_folder"
    if not path.parent.is_dir():
        return "report.cli.output_no_folder"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "report.cli.output_not_writable"
    return None
