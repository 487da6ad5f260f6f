"""Exactly once through crashes, one organisation's trouble kept its own, queries per batch."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.adapters.slack.messenger import SlackMessenger
from bot.delivery import CannotTell, Recipient
from bot.lessons.course import Course, Language
from bot.lessons.messages import Message, Text
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import (
    Certificate,
    Enrolment,
    Person,
    PlannedSend,
    Team,
    TeamManager,
    TeamMember,
)
from bot.worker import DAILY, DIGEST, Claimed, Composed, DailyComposer, Worker
from tests.worker_kit import TEAM, TOKEN, Kit, worker_kit

WEDNESDAY = datetime(2027, 1, 6, 9, 0, tzinfo=UTC)  # 10:00 in Copenhagen


class Crash(BaseException):
    """The process dying at this point: nothing after it runs, nothing is cleaned up."""


def parts_by_key(kit: Kit) -> Counter[tuple[str, int]]:
    keys = Counter()
    for message in kit.fake.messages:
        payload = (message["metadata"] or {}).get("event_payload") or {}
        if payload:
            keys[(payload["key"], payload["part"])] += 1
    return keys


async def sent_rows(kit: Kit) -> list[PlannedSend]:
    async with kit.coach.db.session() as session:
        return list((await session.execute(select(PlannedSend))).scalars().all())


def crash_after(worker: Worker, method: str, when: Any = None) -> None:
    """Die right after `method` returns; with `when`, right before it runs when when(args)."""
    original = getattr(worker, method)

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        if when is not None and when(*args):
            raise Crash(method)
        result = await original(*args, **kwargs)
        if when is None:
            raise Crash(method)
        return result

    setattr(worker, method, crashing)


def with_sent(results: list[Any]) -> bool:
    return any(result.status == "sent" for result in results)


@pytest.mark.parametrize(
    "point",
    [("claim", None), ("mark_sending", None), ("record", with_sent)],
    ids=["after-claim", "after-marking-sending", "after-the-platform-call"],
)
async def test_c08_a_killed_worker_loses_nothing_and_doubles_nothing(
    course: Course, db: Database, settings: Settings, point: tuple[str, Any]
) -> None:
    """C08: a worker dies after claiming, after marking "sending", or after Slack took the
    messages but before it wrote that down; after a restart every learner has one lesson."""
    async with worker_kit(course, db, settings, WEDNESDAY) as kit:
        users = [f"UKILL{n}" for n in range(6)]
        for user_id in users:
            await kit.learner(user_id)
        doomed = kit.worker()
        crash_after(doomed, *point)
        with pytest.raises(Crash):
            await doomed.tick()

        kit.clock.advance(seconds=kit.settings.send_lease_seconds + 1)
        await kit.worker().tick()

        rows = await sent_rows(kit)
        assert [row.status for row in rows] == ["sent"] * len(users)
        assert all(row.message_id for row in rows)
        parts = parts_by_key(kit)
        assert set(parts.values()) == {1}, parts  # no part posted twice
        for user_id in users:
            firsts = [m for m in kit.dms(user_id) if m["metadata"]["event_payload"]["part"] == 0]
            assert len(firsts) == 1, user_id


class HistorylessMessenger:
    """A platform like Teams: it sends, but cannot say afterwards what it sent."""

    rate = 100.0

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    async def deliver(
        self,
        to: Recipient,
        messages: list[Message],
        lang: Language,
        key: str,
        sent: dict[int, str],
        pace: Any,
    ) -> None:
        for index, _ in enumerate(messages):
            await pace()
            self.sent.append((to.person_id, key))
            sent[index] = f"activity-{len(self.sent)}"

    async def find(self, to: Recipient, key: str, since: datetime, pace: Any) -> dict[int, str]:
        raise CannotTell()


async def test_a_send_that_cannot_be_checked_is_not_repeated(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, WEDNESDAY) as kit:
        await kit.learner("UTEAMS1")
        messenger = HistorylessMessenger()
        doomed = Worker(kit.coach, {"slack": messenger})
        crash_after(doomed, "record", with_sent)
        with pytest.raises(Crash):
            await doomed.tick()
        kit.clock.advance(seconds=kit.settings.send_lease_seconds + 1)
        await Worker(kit.coach, {"slack": messenger}).tick()
        assert len({key for _, key in messenger.sent}) == 1
        (row,) = await sent_rows(kit)
        assert (row.status, row.error) == ("skipped", "may have been sent")


class Installations:
    """The tokens of several workspaces, as slack_sdk's installation store hands them out."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    async def async_find_bot(self, enterprise_id: Any, team_id: str) -> Any:
        token = self.tokens.get(team_id)
        return None if token is None else type("Bot", (), {"bot_token": token})()


async def test_a_rate_limited_or_broken_workspace_holds_up_no_other(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, WEDNESDAY, slack_send_rate=20.0) as kit:
        kit.fake.add_workspace("T0SLOW", "xoxb-slow", name="Slow")
        kit.fake.add_workspace("T0DEAD", "xoxb-dead", name="Dead")
        slow = await kit.coach.organisation("slack", "T0SLOW", "Slow")
        dead = await kit.coach.organisation("slack", "T0DEAD", "Dead")
        for n in range(8):
            await kit.learner(f"UFAST{n}")
            kit.fake.add_user("T0SLOW", f"USLOW{n}", "Slow learner")
            person = await kit.coach.person(slow.id, f"USLOW{n}", "Slow learner", "en")
            await kit.coach.enrol(person.id)
        person = await kit.coach.person(dead.id, "UDEAD0", "Dead learner", "en")
        await kit.coach.enrol(person.id)
        kit.fake.rate_limit("chat.postMessage", times=1, retry_after=2, team_id="T0SLOW")
        # T0DEAD's token is not the one Slack knows: every call answers invalid_auth.
        tokens = {TEAM: TOKEN, "T0SLOW": "xoxb-slow", "T0DEAD": "xoxb-revoked"}
        messenger = SlackMessenger(kit.settings, Installations(tokens))
        started = time.monotonic()
        tally = await Worker(kit.coach, {"slack": messenger}).tick()

        posts = kit.fake.calls_to("chat.postMessage", TEAM)
        slow_posts = kit.fake.calls_to("chat.postMessage", "T0SLOW")
        assert len(posts) == len(slow_posts) == 16  # lesson card and question, 8 learners
        assert max(call.done for call in posts) < started + 2  # never waited for T0SLOW
        assert min(call.at for call in slow_posts) >= min(c.at for c in kit.fake.calls) + 2
        assert tally.sent == 16
        rows = {row.person_id: row for row in await sent_rows(kit)}
        assert rows[person.id].status == "planned"  # back in the queue, for later
        assert rows[person.id].lease_until > kit.clock.now


async def test_a_person_slack_cannot_reach_is_marked_and_not_retried(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, WEDNESDAY) as kit:
        await kit.learner("UHERE01")
        gone = await kit.coach.person(kit.organisation_id, "UGONE99", "Gone", "en")
        await kit.coach.enrol(gone.id)
        await kit.worker().tick()
        rows = {row.person_id: row for row in await sent_rows(kit)}
        assert rows[gone.id].status == "failed"
        assert "channel_not_found" in rows[gone.id].error
        async with kit.coach.db.session() as session:
            person = await session.get_one(Person, gone.id)
            assert person.unreachable_reason == "channel_not_found"
        kit.clock.advance(days=1)
        await kit.worker().tick()
        assert [r.status for r in await sent_rows(kit) if r.person_id == gone.id] == ["failed"]


async def test_queries_grow_with_batches_not_with_learners(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, WEDNESDAY) as kit:
        counted: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
            counted.append(statement)

        for n in range(4):
            await kit.learner(f"UFEW{n}")
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        await kit.worker().tick()
        few = len(counted)
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)

        await kit.finish_open_lessons()
        for n in range(60):
            await kit.learner(f"UMANY{n}")
        kit.clock.advance(days=1)
        counted.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        await kit.worker().tick()
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert len(kit.fake.calls_to("chat.postMessage")) == 2 * 4 + 2 * 64
        assert len(counted) == few, counted


async def test_refresher_starts_thirty_days_before_expiry_once(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2027, 5, 3, 8, tzinfo=UTC)) as kit:
        learner = await kit.learner("UCERT01")
        later = await kit.learner("UCERT02")
        manager = await kit.learner("UBOSS01")
        expiry = datetime(2027, 6, 2, 7, tzinfo=UTC)  # 30 days on
        await _certify(kit, learner, expiry)
        await _certify(kit, later, expiry + timedelta(days=10))
        await _team(kit, manager, [learner, later])

        await kit.worker().tick()
        enrolments = await _enrolments(kit, learner)
        assert [(e.cycle, e.status) for e in enrolments] == [(1, "completed"), (2, "active")]
        assert enrolments[1].deadline == date(2027, 6, 2)
        assert [(e.cycle, e.status) for e in await _enrolments(kit, later)] == [(1, "completed")]
        note = [m for m in kit.dms("UCERT01") if "runs out on 2 June 2027" in m["text"]]
        assert len(note) == 1
        told = [m for m in kit.dms("UBOSS01") if "runs out within a month (1): " in m["text"]]
        assert len(told) == 1 and "UCERT01" in told[0]["text"]

        kit.clock.advance(days=1)
        await kit.worker().tick()
        assert len([m for m in kit.dms("UCERT01") if "runs out" in m["text"]]) == 1
        assert len(await _enrolments(kit, learner)) == 2


async def _certify(kit: Kit, person_id: int, expires: datetime) -> None:
    async with kit.coach.db.session() as session:
        query = select(Enrolment).filter_by(person_id=person_id)
        enrolment = (await session.execute(query)).scalar_one()
        enrolment.status, enrolment.completed_at = "completed", expires - timedelta(days=365)
        session.add(
            Certificate(
                code=f"NIS2-{person_id:04d}",
                enrolment_id=enrolment.id,
                organisation_id=enrolment.organisation_id,
                person_id=person_id,
                learner_name="x",
                organisation_name="Work",
                course_title="NIS2",
                course_version="1.0.0",
                content_hash="h",
                language="en",
                track="core",
                score=1.0,
                pass_mark=0.8,
                issued_at=expires - timedelta(days=365),
                expires_at=expires,
            )
        )


async def _team(kit: Kit, manager: int, members: list[int]) -> None:
    async with kit.coach.db.session() as session:
        team = Team(organisation_id=kit.organisation_id, external_id="C0TEAM", name="Team")
        session.add(team)
        await session.flush()
        session.add(TeamManager(team_id=team.id, person_id=manager))
        for member in members:
            session.add(TeamMember(team_id=team.id, person_id=member))


async def _enrolments(kit: Kit, person_id: int) -> list[Enrolment]:
    async with kit.coach.db.session() as session:
        query = select(Enrolment).filter_by(person_id=person_id).order_by(Enrolment.cycle)
        return list((await session.execute(query)).scalars().all())


async def test_digests_go_to_managers_on_monday_at_their_local_time(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2027, 1, 9, tzinfo=UTC)) as kit:
        learner = await kit.learner("UTEAM01")
        boss = await kit.learner("UBOSS02", zone="America/New_York")
        quiet = await kit.learner("UBOSS03")
        await _team(kit, boss, [learner])
        async with kit.coach.db.session() as session:
            session.add(TeamManager(team_id=1, person_id=quiet))
            (await session.get_one(Person, quiet)).digest_off = True
        asked: list[tuple[int, date]] = []

        async def digest(items: list[Claimed]) -> dict[int, Composed | None]:
            asked.extend((item.to.person_id, item.row.day) for item in items)
            return {item.row.id: Composed(DIGEST, [Text("Your team")], "en") for item in items}

        worker = Worker(
            kit.coach,
            {"slack": SlackMessenger(kit.settings)},
            {DAILY: DailyComposer(kit.coach), DIGEST: digest},
        )
        while kit.clock.now < datetime(2027, 1, 13, tzinfo=UTC):
            await worker.tick()
            kit.clock.advance(minutes=30)
        assert asked == [(boss, date(2027, 1, 11))]
        (sent,) = [m for m in kit.dms("UBOSS02") if m["text"] == "Your team"]
        arrived = datetime.fromtimestamp(float(sent["ts"]), UTC)
        assert arrived == datetime(2027, 1, 11, 13, 0, tzinfo=UTC)  # 08:00 in New York


async def test_an_expired_certificate_is_never_called_valid(
    course: Course, db: Database, settings: Settings
) -> None:
    from bot.lessons.messages import CertificateCard
    from bot.store.models import ChecklistConfirmation, LessonDelivery

    async with worker_kit(course, db, settings, datetime(2027, 6, 3, 8, tzinfo=UTC)) as kit:
        person_id = await kit.learner("UOLD001")
        await _certify(kit, person_id, datetime(2027, 6, 2, 7, tzinfo=UTC))
        enrolment = (await _enrolments(kit, person_id))[0]
        lang = course.language("en")
        async with kit.coach.db.session() as session:
            for position, lesson in enumerate(lang.plan("core"), start=1):
                session.add(
                    LessonDelivery(
                        enrolment_id=enrolment.id,
                        lesson_id=lesson.id,
                        position=position,
                        content_version=course.version,
                        delivered_at=kit.clock.now - timedelta(days=400),
                        completed_at=kit.clock.now - timedelta(days=400),
                    )
                )
            for item in lang.final_module.checklist:
                session.add(
                    ChecklistConfirmation(enrolment_id=enrolment.id, item_id=item.id, text="x")
                )
        (card,) = await kit.coach.next(enrolment.id)
        assert isinstance(card, CertificateCard)
        assert "expired on 2 June 2027" in card.text and "valid until" not in card.text


async def test_monday_brings_the_real_digests_to_managers_and_the_admin_who_asked(
    course: Course, db: Database, settings: Settings
) -> None:
    """The worker's own composers: figures and chart for the manager, the whole organisation
    for an admin who turned it on, and nothing for people who manage nothing."""
    from bot.digest import Digests

    async with worker_kit(course, db, settings, datetime(2027, 1, 11, 6, tzinfo=UTC)) as kit:
        learner = await kit.learner("UTEAM01")
        boss = await kit.learner("UBOSS02")
        admin = await kit.learner("UADMIN3")
        await _team(kit, boss, [learner])
        await Digests(kit.coach).set_org_digest(kit.organisation_id, admin, True, "UADMIN3")
        worker = kit.worker()
        while kit.clock.now < datetime(2027, 1, 11, 12, tzinfo=UTC):
            await worker.tick()
            kit.clock.advance(minutes=30)

        boss_texts = " ".join(m["text"] for m in kit.dms("UBOSS02"))
        assert "Weekly digest: Team" in boss_texts
        admin_texts = " ".join(m["text"] for m in kit.dms("UADMIN3"))
        assert "Weekly digest for the whole organisation" in admin_texts
        assert "Weekly digest" not in " ".join(m["text"] for m in kit.dms("UTEAM01"))
        charts = [f for f in kit.fake.files if f["filename"].endswith(".png")]
        assert len(charts) == 2 and all(f["content"][:4] == b"\x89PNG" for f in charts)
        rows = [*await kit.sends(boss), *await kit.sends(admin)]
        kinds = Counter(row.kind for row in rows)
        assert kinds["digest"] == 1 and kinds["org_digest"] == 1


async def test_housekeeping_deletes_reflection_texts_past_retention(
    course: Course, db: Database, settings: Settings
) -> None:
    from bot.store.models import Reflection

    async with worker_kit(course, db, settings, WEDNESDAY, reflection_retention_days=30) as kit:
        person_id = await kit.learner("UREFL01")
        enrolment = (await _enrolments(kit, person_id))[0]
        async with kit.coach.db.session() as session:
            for lesson_id, age in (("old", 31), ("new", 29)):
                written = WEDNESDAY - timedelta(days=age)
                session.add(
                    Reflection(
                        enrolment_id=enrolment.id,
                        lesson_id=lesson_id,
                        text="I would ring back.",
                        submitted_at=written,
                    )
                )
        await kit.worker(reflection_retention_days=30).tick()
        async with kit.coach.db.session() as session:
            rows = (await session.execute(select(Reflection.lesson_id, Reflection.text))).all()
        assert sorted(rows) == [("new", "I would ring back."), ("old", None)]


async def test_a_stopped_worker_ends_within_seconds_and_hands_its_rows_back(
    course: Course, db: Database, settings: Settings
) -> None:
    """SIGTERM in the middle of a slow morning: the worker finishes what it has begun and
    stops, instead of sending on for minutes; the rest goes at once to the next worker."""
    async with worker_kit(course, db, settings, WEDNESDAY) as kit:
        users = [f"USTOP{n:02d}" for n in range(60)]
        for user_id in users:
            await kit.learner(user_id)
        stop = asyncio.Event()
        running = asyncio.create_task(kit.worker(slack_send_rate=5.0).run(stop))
        for _ in range(200):  # until the first messages have gone
            if len(kit.fake.messages) >= 4:
                break
            await asyncio.sleep(0.05)
        stopped_at = time.monotonic()
        stop.set()
        await asyncio.wait_for(running, 10)
        assert time.monotonic() - stopped_at < 6  # sending all 120 messages takes 24 s

        rows = await sent_rows(kit)
        left = [row for row in rows if row.status != "sent"]
        assert left and {row.status for row in left} == {"planned"}
        assert all(row.lease_until is None for row in left)  # no lease to wait out
        await kit.worker().tick()
        assert [row.status for row in await sent_rows(kit)] == ["sent"] * len(users)
        assert set(parts_by_key(kit).values()) == {1}
        assert len(parts_by_key(kit)) == 2 * len(users)  # both parts of every lesson
