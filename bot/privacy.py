"""The learner's data: everything stored about them on request, erasure, and retention.

Reflections belong to the learner: their texts are shown to them alone (here, in
`my_data`) and are deleted after the retention period; everywhere else a reflection
is only "submitted: yes/no". Erasure removes what identifies a person but keeps the
anonymous rows, so an organisation's counts and the fact that a certificate with a
given code was issued survive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import downloads
from bot.store.db import Database
from bot.store.models import (
    Answer,
    AuditEvent,
    Certificate,
    ChecklistConfirmation,
    ConversationRef,
    Enrolment,
    LessonDelivery,
    Organisation,
    Person,
    PlannedSend,
    QuizAttempt,
    Reflection,
    Team,
    TeamManager,
    TeamMember,
)

logger = logging.getLogger(__name__)

ERASED_NAME = "(erased)"
UNFINISHED = ("active", "paused")


# -- everything about one learner -----------------------------------------------------------


async def my_data(db: Database, person_id: int) -> dict[str, Any]:
    """Everything stored about a person, their own reflection texts included, as plain JSON."""
    async with db.session() as session:
        person = await session.get_one(Person, person_id)
        organisation = await session.get_one(Organisation, person.organisation_id)
        enrolments = await _all(session, select(Enrolment).filter_by(person_id=person_id))
        data = {
            "person": _row(person) | {"organisation": organisation.name},
            "teams": await _team_names(session, TeamMember, person_id),
            "manages": await _team_names(session, TeamManager, person_id),
            "enrolments": [await _enrolment(session, enrolment) for enrolment in enrolments],
            "planned_sends": [
                _row(send) for send in await _all(session, _by_person(PlannedSend, person_id))
            ],
            "conversations": len(await _all(session, _by_person(ConversationRef, person_id))),
        }
    return data


async def _enrolment(session: AsyncSession, enrolment: Enrolment) -> dict[str, Any]:
    def rows(model: Any) -> Any:
        return select(model).where(model.enrolment_id == enrolment.id).order_by(model.id)

    return _row(enrolment) | {
        "deliveries": [_row(row) for row in await _all(session, rows(LessonDelivery))],
        "answers": [_row(row) for row in await _all(session, rows(Answer))],
        "reflections": [_row(row) for row in await _all(session, rows(Reflection))],
        "checklist": [_row(row) for row in await _all(session, rows(ChecklistConfirmation))],
        "quiz_attempts": [_row(row) for row in await _all(session, rows(QuizAttempt))],
        "certificates": [
            _row(row, skip={"pdf_path"}) for row in await _all(session, rows(Certificate))
        ],
    }


async def _team_names(session: AsyncSession, link: Any, person_id: int) -> list[str]:
    query = select(Team.name).join(link, link.team_id == Team.id).where(link.person_id == person_id)
    return list((await session.execute(query.order_by(Team.name))).scalars())


def _by_person(model: Any, person_id: int) -> Any:
    return select(model).where(model.person_id == person_id).order_by(model.id)


async def _all(session: AsyncSession, query: Any) -> list[Any]:
    return list((await session.execute(query)).scalars())


def _row(row: Any, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        column.key: _plain(getattr(row, column.key))
        for column in row.__table__.columns
        if column.key not in skip
    }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


async def my_data_file(app: Any, grant: downloads.Grant) -> downloads.File:
    """The download behind a "my-data" link: only the person the link was made for."""
    async with app.db.session() as session:
        person = await session.get(Person, grant.person_id)
    if person is None or person.organisation_id != grant.organisation_id:
        raise LookupError("no such person in the link's organisation")
    return downloads.File(data_bytes(await my_data(app.db, grant.person_id)), *FILE_TYPE)


FILE_TYPE = ("application/json", "nis2-coach-my-data.json")


def data_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode()


downloads.PRODUCERS["my-data"] = my_data_file


# -- erasure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erased:
    """What erasure changed, for the audit log and the command line (counts, no names)."""

    person_id: int
    reflections: int
    checklist: int
    conversations: int
    certificates: int
    planned_sends: int


async def find_people(db: Database, organisation_id: int, who: str) -> list[Person]:
    """People of an organisation by platform user id, else by email, else by name.

    Compared with Python's casefold: SQLite's lower() folds only A-Z, so "Søren Ærø" would
    never match itself there. Only (id, value) pairs are read; erasure is rare.
    """
    wanted = who.strip().casefold()
    async with db.session() as session:
        for column in (Person.platform_user_id, Person.email, Person.name):
            query = select(Person.id, column).where(
                Person.organisation_id == organisation_id,
                Person.erased_at.is_(None),
                column.is_not(None),
            )
            rows = (await session.execute(query.order_by(Person.id))).all()
            ids = [row[0] for row in rows if row[1].strip().casefold() == wanted]
            if ids:
                found = select(Person).where(Person.id.in_(ids)).order_by(Person.id)
                return await _all(session, found)
    return []


async def find_organisations(db: Database, org: str) -> list[Organisation]:
    """Organisations by id, platform id (workspace or tenant) or name (any case, any script)."""
    wanted = org.strip().casefold()
    async with db.session() as session:
        known = await _all(session, select(Organisation).order_by(Organisation.id))
    return [
        o
        for o in known
        if org in (o.external_id, str(o.id)) or (o.name and o.name.casefold() == wanted)
    ]


async def erase(db: Database, person_id: int, now: datetime) -> Erased:
    """Remove what identifies a person; answers, dates and certificate codes stay, anonymous."""
    async with db.session() as session:
        person = await session.get_one(Person, person_id)
        old_user_id = person.platform_user_id
        opaque = f"erased-{secrets.token_hex(8)}"
        _anonymise(person, opaque, now)
        enrolment_ids = select(Enrolment.id).where(Enrolment.person_id == person_id)
        pdfs = await _erase_certificates(session, person_id, enrolment_ids)
        erased = Erased(
            person_id=person_id,
            reflections=await _erase_reflections(session, enrolment_ids, now),
            checklist=await _count(
                session,
                update(ChecklistConfirmation)
                .where(ChecklistConfirmation.enrolment_id.in_(enrolment_ids))
                .values(text=""),
            ),
            conversations=await _count(
                session, delete(ConversationRef).where(ConversationRef.person_id == person_id)
            ),
            certificates=len(pdfs),
            planned_sends=await _count(
                session,
                delete(PlannedSend).where(
                    PlannedSend.person_id == person_id, PlannedSend.status.in_(("planned",))
                ),
            ),
        )
        await _stop_course(session, person_id)
        await _rename_in_audit_log(session, person.organisation_id, old_user_id, opaque)
    for pdf in filter(None, pdfs):  # the PDFs show the name; the database no longer points there
        await asyncio.to_thread(Path(pdf).unlink, missing_ok=True)
    logger.info("person %s erased", person_id)
    return erased


def _anonymise(person: Person, opaque: str, now: datetime) -> None:
    person.name = ERASED_NAME
    person.platform_user_id = opaque
    person.email = None
    person.timezone = None
    person.lesson_time = None
    person.unreachable_reason = None
    person.erased_at = now


async def _count(session: AsyncSession, statement: Any) -> int:
    return (await session.execute(statement)).rowcount or 0


async def _erase_reflections(session: AsyncSession, enrolment_ids: Any, now: datetime) -> int:
    statement = (
        update(Reflection)
        .where(Reflection.enrolment_id.in_(enrolment_ids), Reflection.text.is_not(None))
        .values(text=None, text_deleted_at=now)
    )
    return await _count(session, statement)


async def _erase_certificates(
    session: AsyncSession, person_id: int, enrolment_ids: Any
) -> list[str | None]:
    """Blank the name and forget the PDF that shows it; code, dates and status stay."""
    query = select(Certificate).where(
        or_(Certificate.person_id == person_id, Certificate.enrolment_id.in_(enrolment_ids))
    )
    certificates = await _all(session, query)
    pdfs = [certificate.pdf_path for certificate in certificates]
    for certificate in certificates:
        certificate.learner_name = ""
        certificate.pdf_path = None
    return pdfs


async def _stop_course(session: AsyncSession, person_id: int) -> None:
    """No more lessons, reminders or digests for someone who is no longer known."""
    await session.execute(
        update(Enrolment)
        .where(Enrolment.person_id == person_id, Enrolment.status.in_(UNFINISHED))
        .values(status="unenrolled")
    )
    await session.execute(delete(TeamManager).where(TeamManager.person_id == person_id))


async def _rename_in_audit_log(
    session: AsyncSession, organisation_id: int, old: str, opaque: str
) -> None:
    """The audit log keeps what was done, under the same opaque id instead of the person's."""
    query = select(AuditEvent).where(
        AuditEvent.organisation_id == organisation_id,
        or_(AuditEvent.actor == old, AuditEvent.target.contains(old)),
    )
    for event in await _all(session, query):
        event.actor = opaque if event.actor == old else event.actor
        event.target = event.target.replace(old, opaque) if event.target else event.target


# -- retention ------------------------------------------------------------------------------

# "submitted: yes" for reports: a reflection written, whether or not its text is still kept.
SUBMITTED = or_(Reflection.text.is_not(None), Reflection.text_deleted_at.is_not(None))


def submitted(reflection: Reflection) -> bool:
    return reflection.text is not None or reflection.text_deleted_at is not None


async def purge_reflections(db: Database, days: int, now: datetime) -> int:
    """Delete reflection texts older than `days`; the rows stay as "submitted: yes"."""
    cutoff = now - timedelta(days=days)
    async with db.session() as session:
        statement = (
            update(Reflection)
            .where(Reflection.text.is_not(None), Reflection.submitted_at < cutoff)
            .values(text=None, text_deleted_at=now)
        )
        deleted = await _count(session, statement)
    logger.info("retention: %s reflection texts older than %s days deleted", deleted, days)
    return deleted
