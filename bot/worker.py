"""The worker: daily lessons, reminders, digests and refreshers, each sent exactly once.

A tick goes PLAN -> CLAIM -> COMPOSE -> SEND:

- PLAN writes one planned_sends row per (person, kind, local day) with INSERT … SELECT …
  ON CONFLICT DO NOTHING, one statement per group of people sharing an organisation,
  zone and local time, so the number of queries follows the groups, not the learners.
- CLAIM takes due rows in batches (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
  BEGIN IMMEDIATE serialises the same statement), with a lease that runs out if the
  worker dies, so another one takes the row over.
- COMPOSE asks the course engine for a whole batch at once.
- SEND: each organisation has its own task and pacer; a 429 pauses only that
  organisation. A row is marked "sending" (committed) before the platform call and
  "sent" with the platform's message id after it. A row found "sending" again was
  perhaps sent by a worker that died: the platform's history is checked first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.orm import aliased

from bot import privacy, schedule
from bot.coach import Coach, Journey
from bot.delivery import (
    CannotTell,
    Messenger,
    RateLimited,
    Recipient,
    Unreachable,
    WorkspaceDown,
)
from bot.digest import ORG_DIGEST_TO, Digests
from bot.lessons.messages import Message, Text
from bot.programme import Programme
from bot.store.models import (
    Certificate,
    Enrolment,
    Organisation,
    Person,
    PlannedSend,
    ProcessedEvent,
    TeamManager,
    TeamMember,
    UTCDateTime,
)

logger = logging.getLogger(__name__)

DAILY, DIGEST, REFRESHER, REFRESHER_NOTE = "daily", "digest", "refresher", "refresher_manager"
ORG_DIGEST = "org_digest"
MAX_ATTEMPTS = 5
RETRY_LATER = timedelta(minutes=5)
CHECK_AGAIN = timedelta(seconds=60)
REPLAN_SECONDS = 900.0  # a group planned today is planned again after this, for newcomers
SEND_SECONDS = 2  # rows marked "sending" at once: about this many seconds of sending
EVENT_DAYS = 7


@dataclass
class Claimed:
    """A claimed row and whom it goes to."""

    row: PlannedSend
    to: Recipient
    was_sending: bool


@dataclass
class Composed:
    """What a composer decided to send for a row."""

    what: str
    messages: list[Message]
    language: str


@dataclass
class Outgoing:
    claimed: Claimed
    composed: Composed


@dataclass
class Result:
    """How a row ended this round; `status` "sending" leaves it to be checked later."""

    row_id: int
    status: str
    what: str | None = None
    message_id: str | None = None
    error: str | None = None
    lease_until: datetime | None = None


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    later: int = 0

    def add(self, results: list[Result]) -> None:
        for result in results:
            if result.status == "sent":
                self.sent += 1
            elif result.status == "skipped":
                self.skipped += 1
            elif result.status == "failed":
                self.failed += 1
            else:
                self.later += 1


Composer = Callable[[list[Claimed]], Awaitable[dict[int, Composed | None]]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the schedule against one database, with one Messenger per platform."""

    def __init__(
        self,
        coach: Coach,
        messengers: dict[str, Messenger],
        composers: dict[str, Composer] | None = None,
        name: str | None = None,
    ) -> None:
        self.coach = coach
        self.db = coach.db
        self.settings = coach.settings
        self.messengers = messengers
        self.composers = composers if composers is not None else default_composers(coach)
        self.name = name or worker_name()
        self.programme = Programme(coach)
        self._planned: dict[tuple[Any, ...], float] = {}
        self._housekept: date | None = None
        self._refreshed = -math.inf
        self._org_digest_to: list[int] = []
        self.stop = asyncio.Event()

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every WORKER_INTERVAL seconds until `stop` is set."""
        logger.info("worker %s started (%s)", self.name, ", ".join(self.messengers) or "no chat")
        self.stop = stop
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                logger.exception("worker tick failed; trying again next interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.worker_interval)
        logger.info("worker %s stopped", self.name)

    async def tick(self) -> Tally:
        """Plan what is due now, then send every due row; returns what became of them."""
        now = self.coach.clock()
        await self._housekeeping(now)
        await self.plan(now)
        tally = await self.drain()
        if tally.sent or tally.failed:
            logger.info(
                "worker %s: %s sent, %s skipped, %s failed, %s later",
                self.name,
                tally.sent,
                tally.skipped,
                tally.failed,
                tally.later,
            )
        return tally

    # -- PLAN -------------------------------------------------------------------------------

    async def plan(self, now: datetime) -> None:
        if not self.messengers:
            return
        organisations = await self._organisations()
        if time.monotonic() - self._refreshed >= REPLAN_SECONDS:
            await self._plan_refreshers(now)
            self._refreshed = time.monotonic()
        await self._plan_kind(now, DAILY, organisations)
        if DIGEST in self.composers:
            await self._plan_kind(now, DIGEST, organisations)
        if ORG_DIGEST in self.composers:
            self._org_digest_to = _org_digest_recipients(organisations)
            await self._plan_kind(now, ORG_DIGEST, organisations)

    async def _organisations(self) -> dict[int, dict[str, Any]]:
        query = select(Organisation.id, Organisation.settings).where(
            Organisation.platform.in_(list(self.messengers))
        )
        async with self.db.session() as session:
            return {row[0]: row[1] or {} for row in (await session.execute(query)).all()}

    def _people(self, kind: str) -> Any:
        """The people a kind of send goes to, as a query on Person (and Enrolment for daily)."""
        reachable = and_(
            Person.active.is_(True),
            Person.erased_at.is_(None),
            Person.unreachable_reason.is_(None),
        )
        if kind == DAILY:
            query = select(Person, Enrolment).join(Enrolment, Enrolment.person_id == Person.id)
            return query.where(reachable, Enrolment.status == "active")
        if kind == ORG_DIGEST:
            return select(Person).where(reachable, Person.id.in_(self._org_digest_to))
        managers = select(TeamManager.person_id)
        return select(Person).where(
            reachable, Person.digest_off.is_(False), Person.id.in_(managers)
        )

    async def _plan_kind(
        self, now: datetime, kind: str, organisations: dict[int, dict[str, Any]]
    ) -> None:
        """One DISTINCT query for the groups, then one INSERT … SELECT per group that is due."""
        groups = self._people(kind).with_only_columns(
            Person.organisation_id, Person.timezone, Person.lesson_time
        )
        groups = groups.where(Person.organisation_id.in_(list(organisations))).distinct()
        async with self.db.session() as session:
            found = (await session.execute(groups)).all()
        for organisation_id, zone, local in found:
            due = self._due(now, kind, organisations[organisation_id], zone, local)
            if due is not None:
                await self._plan_group(now, kind, organisation_id, zone, local, *due)

    def _due(
        self, now: datetime, kind: str, organisation: dict[str, Any], zone: str | None, local: Any
    ) -> tuple[date, datetime] | None:
        """The group's local day and due instant, if it is due now; None otherwise."""
        name = schedule.zone_name(zone, organisation, self.settings)
        day = schedule.local_day(now, name)
        if kind == DAILY:
            if not schedule.is_workday(day, schedule.country(organisation, self.settings)):
                return None
            at = schedule.lesson_time(local, self.settings)
        else:
            if day.weekday() != schedule.MONDAY:
                return None
            at = self.settings.digest_time
        due = schedule.due_at(day, at, name)
        return (day, due) if now >= due else None

    async def _plan_group(
        self,
        now: datetime,
        kind: str,
        organisation_id: int,
        zone: str | None,
        local: str | None,
        day: date,
        due: datetime,
    ) -> None:
        key = (kind, organisation_id, zone, local, day)
        if time.monotonic() - self._planned.get(key, -math.inf) < REPLAN_SECONDS:
            return
        people = self._people(kind).where(
            Person.organisation_id == organisation_id,
            Person.timezone.is_(None) if zone is None else Person.timezone == zone,
            Person.lesson_time.is_(None) if local is None else Person.lesson_time == local,
        )
        enrolment = Enrolment.id if kind == DAILY else literal(None, Integer())
        rows = people.with_only_columns(
            Person.organisation_id, Person.id, enrolment, *_row_values(kind, day, due, now)
        )
        statement = self.db.insert_ignore(PlannedSend).from_select(SEND_COLUMNS, rows)
        async with self.db.session() as session:
            result = await session.execute(statement)
        self._planned[key] = time.monotonic()
        logger.debug(
            "planned %s %s for organisation %s (%s)", result.rowcount, kind, organisation_id, zone
        )

    async def _plan_refreshers(self, now: datetime) -> None:
        """Certificates about to expire: the next cycle of the course, and a word to the learner.

        One INSERT … SELECT for the enrolments and one each for the learners' and
        managers' notes; the unique keys make it happen once per certificate.
        """
        horizon = now + timedelta(days=self.settings.refresher_days)
        newer = aliased(Enrolment)
        expiring = (
            select(Enrolment, Certificate.expires_at)
            .join(Certificate, Certificate.enrolment_id == Enrolment.id)
            .join(Person, Person.id == Enrolment.person_id)
            .join(Organisation, Organisation.id == Enrolment.organisation_id)
            .where(
                Certificate.revoked_at.is_(None),
                Certificate.expires_at <= horizon,
                Person.active.is_(True),
                Person.erased_at.is_(None),
                Organisation.platform.in_(list(self.messengers)),
                ~exists().where(
                    newer.person_id == Enrolment.person_id, newer.cycle > Enrolment.cycle
                ),
            )
        )
        rows = expiring.with_only_columns(
            Enrolment.organisation_id,
            Enrolment.person_id,
            Enrolment.cycle + 1,
            Enrolment.track,
            Enrolment.language,
            self._day_of(Certificate.expires_at),
            literal("active", String()),
            literal(self.coach.course.version, String()),
            literal(self.coach.course.content_hash, String()),
            literal(now, UTCDateTime()),
        )
        columns = ["organisation_id", "person_id", "cycle", "track", "language", "deadline"]
        columns += ["status", "content_version", "content_hash", "enrolled_at"]
        async with self.db.session() as session:
            created = await session.execute(
                self.db.insert_ignore(Enrolment).from_select(columns, rows)
            )
            if created.rowcount:
                await self._plan_refresher_notes(session, now)
        if created.rowcount:
            logger.info("refresher: %s learners enrolled in the next cycle", created.rowcount)

    async def _plan_refresher_notes(self, session: Any, now: datetime) -> None:
        planned = select(PlannedSend.id).where(
            PlannedSend.enrolment_id == Enrolment.id, PlannedSend.kind == REFRESHER
        )
        fresh = select(
            Enrolment.organisation_id,
            Enrolment.person_id,
            Enrolment.id,
            *_row_values(REFRESHER, now.date(), now, now),
        ).where(Enrolment.cycle > 1, Enrolment.enrolled_at == now, ~exists(planned))
        await session.execute(self.db.insert_ignore(PlannedSend).from_select(SEND_COLUMNS, fresh))
        managers = (
            select(
                Person.organisation_id,
                TeamManager.person_id,
                literal(None, Integer()),
                *_row_values(REFRESHER_NOTE, now.date(), now, now),
            )
            .join(TeamMember, TeamMember.team_id == TeamManager.team_id)
            .join(Enrolment, Enrolment.person_id == TeamMember.person_id)
            .join(Person, Person.id == TeamManager.person_id)
            .where(Enrolment.cycle > 1, Enrolment.enrolled_at == now, Person.active.is_(True))
            .distinct()
        )
        await session.execute(
            self.db.insert_ignore(PlannedSend).from_select(SEND_COLUMNS, managers)
        )

    def _day_of(self, moment: Any) -> Any:
        """The UTC date of a stored timestamp, in SQL."""
        if self.db.is_sqlite:
            return func.date(moment)
        return func.date(func.timezone("UTC", moment))

    # -- CLAIM ------------------------------------------------------------------------------

    async def claim(self, exclude: frozenset[int] | set[int] = frozenset()) -> list[Claimed]:
        """Up to WORKER_BATCH due rows, leased to this worker; rows of `exclude` orgs stay."""
        now = self.coach.clock()
        lease = now + timedelta(seconds=self.settings.send_lease_seconds)
        claimable = and_(
            PlannedSend.due_at <= now,
            PlannedSend.kind.in_(list(self.composers)),
            (
                (PlannedSend.status == "planned")
                & (PlannedSend.lease_until.is_(None) | (PlannedSend.lease_until < now))
            )
            | (PlannedSend.status.in_(("claimed", "sending")) & (PlannedSend.lease_until < now)),
        )
        if exclude:
            claimable = and_(claimable, PlannedSend.organisation_id.not_in(list(exclude)))
        picked = (
            select(PlannedSend.id)
            .where(claimable)
            .order_by(PlannedSend.due_at, PlannedSend.id)
            .limit(self.settings.worker_batch)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(PlannedSend)
            .where(PlannedSend.id.in_(picked.scalar_subquery()))
            .values(
                status=case((PlannedSend.status == "sending", "sending"), else_="claimed"),
                claimed_by=self.name,
                lease_until=lease,
                attempts=PlannedSend.attempts + 1,
            )
            .returning(PlannedSend)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            rows = list((await session.execute(statement)).scalars().all())
        if not rows:
            return []
        return await self._recipients(rows)

    async def _recipients(self, rows: list[PlannedSend]) -> list[Claimed]:
        query = (
            select(Person, Organisation)
            .join(Organisation, Organisation.id == Person.organisation_id)
            .where(Person.id.in_({row.person_id for row in rows}))
        )
        async with self.db.session() as session:
            found = {
                person.id: (person, org) for person, org in (await session.execute(query)).all()
            }
        claimed = []
        for row in rows:
            person, organisation = found[row.person_id]
            to = Recipient(
                person.id,
                organisation.id,
                organisation.platform,
                organisation.external_id,
                person.platform_user_id,
                person.language,
                person.timezone,
            )
            claimed.append(Claimed(row, to, row.status == "sending"))
        return claimed

    # -- COMPOSE and SEND -------------------------------------------------------------------

    async def drain(self) -> Tally:
        """Claim, compose and hand over to the organisations' senders until nothing is due."""
        tally = Tally()
        if not self.messengers:
            return tally  # no platform to send to: leave every row for a worker that has one
        senders: dict[int, OrgSender] = {}
        while not self.stop.is_set():
            busy = {org for org, sender in senders.items() if sender.full or sender.down}
            claimed = await self.claim(busy)
            if not claimed:
                if all(sender.idle.is_set() for sender in senders.values()):
                    break
                await self._until_room(senders)
                continue
            outgoing = await self._compose(claimed, tally)
            for item in outgoing:
                org = item.claimed.to.organisation_id
                if org not in senders:
                    messenger = self.messengers[item.claimed.to.platform]
                    senders[org] = OrgSender(self, org, messenger, tally)
                senders[org].add(item)
        for sender in senders.values():
            await sender.close()
        return tally

    async def _until_room(self, senders: dict[int, OrgSender]) -> None:
        """Wait until a full sender has room again, a busy one has finished, or we stop."""
        waits = [s.room.wait() for s in senders.values() if s.full and not s.down]
        waits += [s.idle.wait() for s in senders.values() if not s.idle.is_set()]
        waits.append(self.stop.wait())
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    async def _compose(self, claimed: list[Claimed], tally: Tally) -> list[Outgoing]:
        results: list[Result] = []
        outgoing: list[Outgoing] = []
        usable = []
        for item in claimed:
            if item.row.attempts > MAX_ATTEMPTS:
                results.append(Result(item.row.id, "failed", error="too many attempts"))
            elif item.to.platform not in self.messengers:
                results.append(Result(item.row.id, "planned", lease_until=self._later()))
            else:
                usable.append(item)
        by_kind: dict[str, list[Claimed]] = {}
        for item in usable:
            by_kind.setdefault(item.row.kind, []).append(item)
        for kind, items in by_kind.items():
            composed = await self.composers[kind](items)
            for item in items:
                done = composed.get(item.row.id)
                if done is None:
                    results.append(Result(item.row.id, "skipped", what="nothing"))
                else:
                    outgoing.append(Outgoing(item, done))
        await self.record(results)
        tally.add(results)
        return outgoing

    def _later(self) -> datetime:
        return self.coach.clock() + RETRY_LATER

    async def mark_sending(self, row_ids: list[int]) -> set[int]:
        """Mark rows "sending" and renew their lease; only rows still ours come back."""
        now = self.coach.clock()
        lease = now + timedelta(seconds=self.settings.send_lease_seconds)
        statement = (
            update(PlannedSend)
            .where(
                PlannedSend.id.in_(row_ids),
                PlannedSend.claimed_by == self.name,
                PlannedSend.lease_until > now,
                PlannedSend.status.in_(("claimed", "sending")),
            )
            .values(status="sending", lease_until=lease)
            .returning(PlannedSend.id)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            return set((await session.execute(statement)).scalars().all())

    async def record(self, results: list[Result]) -> None:
        """Write many rows' outcomes in one executemany, only where this worker still holds them."""
        if not results:
            return
        table = PlannedSend.__table__
        now = self.coach.clock()
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.claimed_by == self.name)
            .values(
                status=bindparam("b_status"),
                sent_what=bindparam("b_what"),
                message_id=bindparam("b_message"),
                error=bindparam("b_error"),
                lease_until=bindparam("b_lease"),
                sent_at=bindparam("b_sent"),
            )
        )
        params = [
            {
                "b_id": r.row_id,
                "b_status": r.status,
                "b_what": r.what,
                "b_message": r.message_id,
                "b_error": (r.error or "")[:200] or None,
                "b_lease": r.lease_until,
                "b_sent": now if r.status == "sent" else None,
            }
            for r in results
        ]
        async with self.db.session() as session:
            await session.execute(statement, params)

    # -- housekeeping -----------------------------------------------------------------------

    async def _housekeeping(self, now: datetime) -> None:
        """Once a day: forget platform event ids older than a week (retries stop long before)."""
        if self._housekept == now.date():
            return
        async with self.db.session() as session:
            cutoff = now - timedelta(days=EVENT_DAYS)
            await session.execute(delete(ProcessedEvent).where(ProcessedEvent.received_at < cutoff))
        days = self.settings.reflection_retention_days
        if days is not None:
            purged = await privacy.purge_reflections(self.db, days, now)
            logger.info("deleted %s reflection texts older than %s days", purged, days)
        self._housekept = now.date()


def _org_digest_recipients(organisations: dict[int, dict[str, Any]]) -> list[int]:
    """The admins who asked for their organisation's weekly digest."""
    return [
        person_id
        for settings in organisations.values()
        for person_id in settings.get(ORG_DIGEST_TO) or []
    ]


class OrgSender:
    """One organisation's queue, task and pacer: its pauses and failures stay its own."""

    def __init__(self, worker: Worker, organisation_id: int, messenger: Messenger, tally: Tally):
        from aiolimiter import AsyncLimiter

        self.worker = worker
        self.organisation_id = organisation_id
        self.messenger = messenger
        self.tally = tally
        rate = max(messenger.rate, 0.001)
        # A burst of a twentieth of a second at most: a full second's burst on top of the
        # steady rate would break a per-second limit, no burst at all loses turns to lag.
        burst = max(1.0, rate / 20)
        self.limiter = AsyncLimiter(burst, burst / rate)
        self.in_flight = asyncio.Semaphore(max(2, min(32, math.ceil(rate / 4))))
        self.capacity = max(1, int(rate * worker.settings.send_lease_seconds / 3))
        self.chunk = max(1, math.ceil(rate * SEND_SECONDS))
        self.queue: list[Outgoing] = []
        self.paused_until = 0.0
        self.down = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.room = asyncio.Event()
        self.room.set()
        self.task: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.capacity

    def add(self, item: Outgoing) -> None:
        self.queue.append(item)
        self.idle.clear()
        if self.full:
            self.room.clear()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self.task is not None:
            await self.task

    async def _run(self) -> None:
        try:
            while self.queue and not self.worker.stop.is_set():
                chunk, self.queue = self.queue[: self.chunk], self.queue[self.chunk :]
                if len(self.queue) < self.capacity // 2:
                    self.room.set()
                await self._send_chunk(chunk)
            await self._hand_back()
        except Exception:
            logger.exception("sender of organisation %s failed", self.organisation_id)
        finally:
            self.idle.set()
            self.room.set()

    async def _hand_back(self) -> None:
        """Stopping: rows not yet begun go back at once, for the next worker to take over.

        A row found "sending" stays so, to be looked up in the history before a resend.
        """
        chunk, self.queue = self.queue, []
        now = self.worker.coach.clock()
        results = [
            Result(i.claimed.row.id, "sending", lease_until=now)
            if i.claimed.was_sending
            else Result(i.claimed.row.id, "planned")
            for i in chunk
        ]
        await self.worker.record(results)
        if results:
            logger.info("organisation %s: %s sends handed back", self.organisation_id, len(results))

    async def _send_chunk(self, chunk: list[Outgoing]) -> None:
        if self.down:
            results = [
                Result(i.claimed.row.id, "planned", lease_until=self.worker._later()) for i in chunk
            ]
        else:
            ours = await self.worker.mark_sending([item.claimed.row.id for item in chunk])
            mine = [item for item in chunk if item.claimed.row.id in ours]
            results = list(await asyncio.gather(*(self._one(item) for item in mine)))
        await self.worker.record(results)
        self.tally.add(results)
        await self._unreachable(chunk, results)

    async def _one(self, item: Outgoing) -> Result:
        async with self.in_flight:
            try:
                return await self._deliver(item)
            except Unreachable as error:
                return Result(item.claimed.row.id, "failed", error=f"unreachable: {error}")
            except WorkspaceDown as error:
                self.down = True
                logger.warning("organisation %s cannot be sent to: %s", self.organisation_id, error)
                return Result(item.claimed.row.id, "planned", lease_until=self.worker._later())
            except Exception as error:  # the message may have left: check before a resend
                logger.warning(
                    "send of row %s failed (%s); checked again later",
                    item.claimed.row.id,
                    type(error).__name__,
                )
                later = self.worker.coach.clock() + CHECK_AGAIN
                return Result(
                    item.claimed.row.id, "sending", error=type(error).__name__, lease_until=later
                )

    async def _deliver(self, item: Outgoing) -> Result:
        row, to, composed = item.claimed.row, item.claimed.to, item.composed
        lang = self.worker.coach.course.language(composed.language)
        key = send_key(row)
        sent: dict[int, str] = {}
        if item.claimed.was_sending:
            try:
                found = await self._paced(
                    lambda: self.messenger.find(to, key, row.due_at, self.pace)
                )
            except CannotTell:
                logger.warning("row %s may have been sent already; not sending it again", row.id)
                return Result(row.id, "skipped", what=composed.what, error="may have been sent")
            sent.update(found)
        if self.down:
            return Result(row.id, "planned", lease_until=self.worker._later())
        if len(sent) < len(composed.messages):
            await self._paced(
                lambda: self.messenger.deliver(to, composed.messages, lang, key, sent, self.pace)
            )
        return Result(row.id, "sent", what=composed.what, message_id=sent.get(min(sent, default=0)))

    async def pace(self) -> None:
        """Before every platform call: wait out a 429 pause, then take a turn from the pacer."""
        loop = asyncio.get_running_loop()
        while True:
            wait = self.paused_until - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.limiter.acquire()
            if self.paused_until <= loop.time():
                return

    async def _paced(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run a platform call; on a 429, pause the whole organisation and try again."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await call()
            except RateLimited as limited:
                self.paused_until = max(self.paused_until, loop.time() + limited.retry_after)
                logger.warning(
                    "organisation %s rate limited; pausing %.1f s",
                    self.organisation_id,
                    limited.retry_after,
                )

    async def _unreachable(self, chunk: list[Outgoing], results: list[Result]) -> None:
        people = {item.claimed.row.id: item.claimed.to.person_id for item in chunk}
        for result in results:
            if result.status == "failed" and (result.error or "").startswith("unreachable: "):
                reason = result.error.removeprefix("unreachable: ")
                await self.worker.programme.mark_unreachable(people[result.row_id], reason)


def send_key(row: PlannedSend) -> str:
    """The planned send's identity on the platform, to recognise it in the history."""
    return f"nis2:{row.id}:{row.kind}:{row.day.isoformat()}"


SEND_COLUMNS = ["organisation_id", "person_id", "enrolment_id", "kind", "day", "due_at"]
SEND_COLUMNS += ["status", "attempts", "created_at"]


def _row_values(kind: str, day: date, due: datetime, now: datetime) -> list[Any]:
    """The constant part of a planned_sends row, typed so PostgreSQL reads the parameters."""
    return [
        literal(kind, String()),
        literal(day, Date()),
        literal(due, UTCDateTime()),
        literal("planned", String()),
        literal(0, Integer()),
        literal(now, UTCDateTime()),
    ]


# -- composers ------------------------------------------------------------------------------


def default_composers(coach: Coach) -> dict[str, Composer]:
    """Daily lessons and refreshers always; digests once bot.digest is there."""
    composers: dict[str, Composer] = {
        DAILY: DailyComposer(coach),
        REFRESHER: RefresherComposer(coach).learners,
        REFRESHER_NOTE: RefresherComposer(coach).managers,
    }

    async def digests(items: list[Claimed]) -> dict[int, Composed | None]:
        return await _compose_digests(coach, items, DIGEST, Digests(coach).for_manager)

    async def org_digests(items: list[Claimed]) -> dict[int, Composed | None]:
        return await _compose_digests(coach, items, ORG_DIGEST, Digests(coach).for_admin)

    composers[DIGEST] = digests
    composers[ORG_DIGEST] = org_digests
    return composers


async def _compose_digests(
    coach: Coach,
    items: list[Claimed],
    kind: str,
    make: Callable[[int, date], Awaitable[list[Message]]],
) -> dict[int, Composed | None]:
    """A manager's or admin's digest; nothing when they turned it off or have no team."""
    composed: dict[int, Composed | None] = {}
    for item in items:
        messages = await make(item.row.person_id, item.row.day)
        language = coach.course.language(item.to.language).code
        composed[item.row.id] = Composed(kind, messages, language) if messages else None
    return composed


@dataclass
class DailyComposer:
    """Today's lesson, a reminder of the open one, or nothing, for a whole batch at once."""

    coach: Coach
    reminders: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.reminders = self.coach.settings.reminders

    async def __call__(self, items: list[Claimed]) -> dict[int, Composed | None]:
        journeys = await self.coach.journeys(
            [i.row.enrolment_id for i in items if i.row.enrolment_id]
        )
        composed: dict[int, Composed | None] = {}
        starting: list[tuple[Claimed, Journey]] = []
        for item in items:
            journey = journeys.get(item.row.enrolment_id or 0)
            decision = await self._decide(item, journey) if journey else None
            if decision == "next":
                starting.append((item, journey))
            else:
                composed[item.row.id] = decision
        lessons = await self.coach.deliver_next([journey for _, journey in starting])
        for item, journey in starting:
            messages = lessons.get(journey.enrolment.id)
            composed[item.row.id] = (
                Composed("lesson", messages, journey.lang.code) if messages else None
            )
        return composed

    async def _decide(self, item: Claimed, journey: Journey) -> Composed | str | None:
        enrolment, person = journey.enrolment, journey.person
        if enrolment.status != "active" or not person.active or person.erased_at is not None:
            return None  # paused, finished or gone since the row was planned
        if journey.certificate is not None:
            return None
        delivery = journey.open_delivery
        if delivery is not None:
            return self._open_lesson(item, journey, delivery.delivered_at)
        if journey.next_lesson() is not None:
            return None if self._lesson_today(journey, item.row.day) else "next"
        return await self._final_steps(item, journey)

    def _lesson_today(self, journey: Journey, day: date) -> bool:
        """A lesson already arrived on this local day: at enrolment, or by `next` after a pause.

        That one is the day's lesson; a second from the worker would break one-a-workday.
        """
        if not journey.deliveries:
            return False
        latest = max(delivery.delivered_at for delivery in journey.deliveries)
        return schedule.local_day(latest, self._zone(journey)) == day

    def _open_lesson(self, item: Claimed, journey: Journey, delivered: datetime) -> Composed | None:
        row = item.row
        if delivered >= row.created_at:
            # Started after this row was planned: by this row's earlier attempt (show it
            # again) or by the learner asking for it (then they have it already).
            messages = self.coach.reopen(journey)
            return Composed("lesson", messages, journey.lang.code) if row.attempts > 1 else None
        if self._workdays_since(journey, delivered, row.day) not in self.reminders:
            return None
        nudge = Text(journey.lang.s("schedule.reminder"))
        return Composed("reminder", [nudge, *self.coach.reopen(journey)], journey.lang.code)

    async def _final_steps(self, item: Claimed, journey: Journey) -> Composed | None:
        """Checklist and quiz: offered the workday after the last step, then reminded."""
        moments = [d.completed_at or d.delivered_at for d in journey.deliveries]
        moments += [c.confirmed_at for c in journey.confirmations.values()]
        moments += [a.finished_at or a.started_at for a in journey.attempts]
        if not moments:
            return None
        days = self._workdays_since(journey, max(moments), item.row.day)
        eid, code = journey.enrolment.id, journey.lang.code
        if days == 1:
            return Composed("lesson", await self.coach.next(eid), code)
        if days - 1 in self.reminders:
            nudge = Text(journey.lang.s("schedule.reminder"))
            return Composed("reminder", [nudge, *await self.coach.resume(eid)], code)
        return None

    def _workdays_since(self, journey: Journey, moment: datetime, day: date) -> int:
        start = schedule.local_day(moment, self._zone(journey))
        country = schedule.country(journey.organisation.settings, self.coach.settings)
        return schedule.workdays_between(start, day, country)

    def _zone(self, journey: Journey) -> str:
        settings = self.coach.settings
        return schedule.zone_name(journey.person.timezone, journey.organisation.settings, settings)


@dataclass
class RefresherComposer:
    """The learner's note that the refresher has started, and their managers' short line."""

    coach: Coach

    async def learners(self, items: list[Claimed]) -> dict[int, Composed | None]:
        ids = [item.to.person_id for item in items]
        query = (
            select(Certificate.person_id, func.max(Certificate.expires_at))
            .where(Certificate.person_id.in_(ids), Certificate.revoked_at.is_(None))
            .group_by(Certificate.person_id)
        )
        async with self.coach.db.session() as session:
            expiry = dict((await session.execute(query)).all())
        composed: dict[int, Composed | None] = {}
        for item in items:
            lang = self.coach.course.language(item.to.language)
            when = expiry.get(item.to.person_id)
            if when is None:
                composed[item.row.id] = None
                continue
            from bot import dates

            text = lang.s("schedule.refresher", expires=dates.format_date(when, lang.code))
            composed[item.row.id] = Composed(REFRESHER, [Text(text)], lang.code)
        return composed

    async def managers(self, items: list[Claimed]) -> dict[int, Composed | None]:
        query = (
            select(TeamManager.person_id, Person.name, Enrolment.enrolled_at)
            .join(TeamMember, TeamMember.team_id == TeamManager.team_id)
            .join(Enrolment, Enrolment.person_id == TeamMember.person_id)
            .join(Person, Person.id == TeamMember.person_id)
            .where(
                TeamManager.person_id.in_([item.to.person_id for item in items]),
                Enrolment.cycle > 1,
                Person.erased_at.is_(None),
            )
        )
        async with self.coach.db.session() as session:
            found = (await session.execute(query)).all()
        composed: dict[int, Composed | None] = {}
        for item in items:
            names = sorted(
                {
                    name
                    for manager, name, at in found
                    if manager == item.to.person_id and at.date() == item.row.day
                }
            )
            lang = self.coach.course.language(item.to.language)
            text = lang.s("schedule.refresher_manager", count=len(names), names=", ".join(names))
            composed[item.row.id] = (
                Composed(REFRESHER_NOTE, [Text(text)], lang.code) if names else None
            )
        return composed
