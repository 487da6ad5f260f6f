"""The worker with a controllable clock: local times, workdays, reminders, pause, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from tests.worker_kit import Kit, worker_kit

ZONES = {"UCPH": "Europe/Copenhagen", "UNYC": "America/New_York", "UTYO": "Asia/Tokyo"}


def local(message: dict, zone: str) -> datetime:
    return datetime.fromtimestamp(float(message["ts"]), UTC).astimezone(ZoneInfo(zone))


TIMES = ("02:15", "02:30", "03:15", "09:15", "09:30", "09:45", "15:00")


async def run_days(
    kit: Kit,
    first: date,
    last: date,
    zones: tuple[str, ...] = ("Europe/Copenhagen",),
    finish: bool = True,
) -> None:
    """Tick at a few local times of every day from `first` to `last` (learners answer at once)."""
    worker = kit.worker()
    moments = set()
    day = first
    while day <= last:
        for zone in zones:
            for at in TIMES:
                moment = datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=ZoneInfo(zone))
                moments.add(moment.astimezone(UTC))
        day += timedelta(days=1)
    for moment in sorted(moments):
        kit.clock.now = moment
        await worker.tick()
        if finish:
            await kit.finish_open_lessons()


def lesson_days(kit: Kit, user_id: str, zone: str) -> list[date]:
    """Local days on which a lesson card reached the learner."""
    cards = [m for m in kit.dms(user_id) if (m["metadata"] or {}).get("event_payload", {})]
    firsts = [m for m in cards if m["metadata"]["event_payload"]["part"] == 0]
    return [local(m, zone).date() for m in firsts]


async def test_lessons_arrive_at_local_time_in_three_zones(
    course: Course, db: Database, settings: Settings
) -> None:
    start = datetime(2027, 1, 5, tzinfo=UTC)
    async with worker_kit(course, db, settings, start) as kit:
        for user_id, zone in ZONES.items():
            await kit.learner(user_id, zone)
        await run_days(kit, date(2027, 1, 5), date(2027, 1, 7), tuple(ZONES.values()))
        for user_id, zone in ZONES.items():
            wednesday = [m for m in kit.dms(user_id) if local(m, zone).date() == date(2027, 1, 6)]
            # 09:30 on Wednesday 6 January where they are, not 09:15 nor 09:45.
            assert {local(m, zone).strftime("%H:%M") for m in wednesday} == {"09:30"}, user_id
            assert wednesday[0]["blocks"][0]["type"] == "header", user_id


async def test_weekends_and_danish_holidays_are_skipped(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2026, 12, 22, tzinfo=UTC)) as kit:
        await kit.learner("UDK01")
        await run_days(kit, date(2026, 12, 23), date(2027, 1, 5))
        days = lesson_days(kit, "UDK01", "Europe/Copenhagen")
        assert days == [
            date(2026, 12, 23),
            date(2026, 12, 28),
            date(2026, 12, 29),
            date(2026, 12, 30),
            date(2027, 1, 4),
            date(2027, 1, 5),
        ]


async def test_reminders_on_the_set_workdays_and_no_more(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2027, 1, 3, tzinfo=UTC)) as kit:
        person = await kit.learner("USLOW1")
        await run_days(kit, date(2027, 1, 4), date(2027, 1, 29), finish=False)
        sent = [(s.day, s.sent_what) for s in await kit.sends(person) if s.status == "sent"]
        assert sent == [
            (date(2027, 1, 4), "lesson"),
            (date(2027, 1, 6), "reminder"),  # 2 workdays on
            (date(2027, 1, 8), "reminder"),  # 4
            (date(2027, 1, 13), "reminder"),  # 7, and then no more
        ]
        reminder = [m for m in kit.dms("USLOW1") if "waiting" in m["text"]]
        assert len(reminder) == 3
        # The reminder shows the same lesson again: its card follows the nudge.
        assert kit.dms("USLOW1")[0]["text"] in [m["text"] for m in kit.dms("USLOW1")[3:]]


async def test_a_paused_learner_gets_nothing_until_they_come_back(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2027, 1, 3, tzinfo=UTC)) as kit:
        await kit.learner("UPAUSE")
        enrolment = await kit.coach.current_enrolment(
            (await kit.coach.find_learner("slack", "T0WORK", "UPAUSE"))[0].id
        )
        await kit.coach.pause(enrolment.id)
        await run_days(kit, date(2027, 1, 4), date(2027, 1, 8))
        assert kit.dms("UPAUSE") == []
        await kit.coach.next(enrolment.id)  # back from holiday: asks for the next lesson
        await kit.finish_open_lessons()
        await run_days(kit, date(2027, 1, 11), date(2027, 1, 11))
        assert lesson_days(kit, "UPAUSE", "Europe/Copenhagen") == [date(2027, 1, 11)]


async def test_daylight_saving_weeks_neither_skip_nor_double(
    course: Course, db: Database, settings: Settings
) -> None:
    async with worker_kit(course, db, settings, datetime(2027, 3, 20, tzinfo=UTC)) as kit:
        await kit.learner("UDST01")
        await kit.learner("UDST02", lesson_time="02:30")
        await run_days(kit, date(2027, 3, 22), date(2027, 4, 2))
        # Easter 2027 falls on the change: Maundy Thursday to Easter Monday are holidays.
        spring = [date(2027, 3, d) for d in (22, 23, 24, 30, 31)] + [date(2027, 4, 1)]
        spring.append(date(2027, 4, 2))
        assert lesson_days(kit, "UDST01", "Europe/Copenhagen") == spring
        assert lesson_days(kit, "UDST02", "Europe/Copenhagen") == spring
        times = {local(m, "Europe/Copenhagen").strftime("%H:%M") for m in kit.dms("UDST01")}
        assert times == {"09:30"}

        await run_days(kit, date(2027, 10, 25), date(2027, 11, 5))
        autumn = [date(2027, 10, d) for d in range(25, 30)] + [date(2027, 11, d) for d in (1, 2)]
        autumn += [date(2027, 11, d) for d in (3, 4, 5)]
        assert lesson_days(kit, "UDST01", "Europe/Copenhagen")[len(spring) :] == autumn
        assert lesson_days(kit, "UDST02", "Europe/Copenhagen")[len(spring) :] == autumn


async def test_a_lesson_taken_earlier_today_is_the_day_s_lesson(
    course: Course, db: Database, settings: Settings
) -> None:
    """Enrolled (or back from a pause) after 09:30 and done with the lesson at once: the
    worker sends nothing more that day, not even when the learner moves their time."""
    start = datetime(2027, 1, 6, 11, 0, tzinfo=UTC)  # Wednesday, 12:00 in Copenhagen
    async with worker_kit(course, db, settings, start) as kit:
        person = await kit.learner("UEARLY")
        enrolment = await kit.coach.current_enrolment(person)
        await kit.coach.next(enrolment.id)  # the welcome lesson, or `next` after a pause
        await kit.finish_open_lessons()
        worker = kit.worker()
        kit.clock.advance(minutes=10)
        await worker.tick()
        await kit.coach.set_lesson_time(enrolment.id, "08:00")
        kit.clock.advance(minutes=10)
        await worker.tick()
        assert [m["text"] for m in kit.dms("UEARLY")] == []
        assert [s.status for s in await kit.sends(person)] == ["skipped"]

        for at in ("08:00", "09:30", "12:00"):  # Thursday: one lesson, at the new time
            kit.clock.at(f"2027-01-07T{at}", "Europe/Copenhagen")
            await worker.tick()
        assert lesson_days(kit, "UEARLY", "Europe/Copenhagen") == [date(2027, 1, 7)]
        times = {local(m, "Europe/Copenhagen").strftime("%H:%M") for m in kit.dms("UEARLY")}
        assert times == {"08:00"}
