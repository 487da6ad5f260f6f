"""Learners pick their own lesson time in Slack, Teams and the terminal; zones are stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import Person
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness
from tests.test_console_robustness import chat
from tests.test_slack_admin import reply_to
from tests.test_teams import (
    ADA,
    OWNER,
    TeamsHarness,
    in_channel,
    personal,
    teams,  # noqa: F401  (the fixture)
)


async def person(db: Database, user_id: str) -> Person:
    async with db.session() as session:
        query = select(Person).filter_by(platform_user_id=user_id)
        return (await session.execute(query)).scalar_one()


def dm_event(channel: str, user: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "channel": channel,
        "ts": "2.1",
        "event_ts": "2.1",
    }


async def test_slack_learner_sets_a_time_by_dm_and_slash_command(slack: SlackHarness) -> None:
    slack.fake.add_user(TEAM, "UNYC0001", "Nina York", tz="America/New_York")
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars> <@UNYC0001|nina>")
    # Slack's tz from users.info is kept at enrolment.
    assert (await person(slack.app.db, "UNYC0001")).timezone == "America/New_York"

    dm = slack.fake.dm_channel(TEAM, LEARNER)
    await slack.until(lambda: slack.waiting(dm))
    before = len(slack.current(dm))
    await slack.event(dm_event(dm, LEARNER, "time 8:05"), "EvTime1")
    await slack.until(lambda: len(slack.current(dm)) > before)
    assert "08:05 (Europe/Copenhagen)" in slack.current(dm)[-1]["text"]
    assert (await person(slack.app.db, LEARNER)).lesson_time == "08:05"

    before = len(slack.current(dm))
    await slack.event(dm_event(dm, LEARNER, "tid halv ni"), "EvTime2")
    await slack.until(lambda: len(slack.current(dm)) > before)
    assert "couldn't read" in slack.current(dm)[-1]["text"]
    assert (await person(slack.app.db, LEARNER)).lesson_time == "08:05"

    answer = await reply_to(slack, "UNYC0001", "time 07:45")
    assert "07:45 (America/New_York)" in answer
    assert (await person(slack.app.db, "UNYC0001")).lesson_time == "07:45"


async def test_teams_learner_sets_a_time_and_the_zone_is_taken_from_the_chat(
    teams: TeamsHarness,  # noqa: F811  (the fixture imported above)
) -> None:
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    chat_id = teams.chat_with(ADA)
    activity = personal(
        ADA, teams.fake.url, chat_id, text="time 08:00", localTimezone="America/New_York"
    )
    assert await teams.post(activity) in (200, 201)
    ada = await person(teams.app.db, ADA["aadObjectId"])
    assert (ada.timezone, ada.lesson_time) == ("America/New_York", "08:00")
    reply = teams.fake.sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]
    assert "08:00 (America/New_York)" in reply


def test_terminal_learner_sets_a_time(tmp_path: Path) -> None:
    result = chat(tmp_path, ["time 7.30", "time soon", "quit"], "--name", "Ada")
    assert result.returncode == 0, result.stderr
    assert "now arrives at 07:30" in result.stdout
    assert 'couldn\'t read "soon"' in result.stdout


async def test_the_worker_sends_teams_lessons_through_the_stored_chat(
    teams: TeamsHarness,  # noqa: F811  (the fixture imported above)
) -> None:
    """Daily lessons reach Teams learners proactively; one who blocked the bot is marked."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from bot.adapters.teams.app import TeamsAdapter
    from bot.adapters.teams.messenger import TeamsMessenger
    from bot.coach import Coach
    from bot.store.models import LessonDelivery, PlannedSend
    from bot.worker import Worker
    from tests.fakes.teams_auth import TeamsConfig, authentication_for
    from tests.test_teams import APP_ID, GRACE, PASSWORD

    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    async with teams.app.db.session() as session:  # everyone finished lesson one
        done = datetime(2027, 1, 5, 10, tzinfo=UTC)
        await session.execute(update(LessonDelivery).values(completed_at=done))
    app = teams.app
    adapter = TeamsAdapter(app, authentication_for(teams.fake, TeamsConfig(APP_ID, PASSWORD)))
    coach = Coach(
        app.course, app.db, app.settings, clock=lambda: datetime(2027, 1, 6, 9, tzinfo=UTC)
    )
    grace = teams.chat_with(GRACE)
    teams.fake.fail(status=403, code="ConversationBlockedByUser", conversation_id=grace)
    before = len(teams.fake.sends)

    tally = await Worker(coach, {"teams": TeamsMessenger(adapter)}).tick()

    assert tally.sent == 2 and tally.failed == 1
    ada = teams.chat_with(ADA)
    cards = [s for s in teams.fake.sends[before:] if ada in str(s)]
    assert len(cards) == 2  # the lesson card and its first question
    async with app.db.session() as session:
        rows = (await session.execute(select(PlannedSend))).scalars().all()
    assert sorted(row.status for row in rows) == ["failed", "sent", "sent"]
    assert all(row.message_id for row in rows if row.status == "sent")
    gone = await person(app.db, GRACE["aadObjectId"])
    assert gone.unreachable_reason == "ConversationBlockedByUser"
