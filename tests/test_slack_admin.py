"""Admins and managers in Slack: enrolling, kept-open channels, managers, status, Home, settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.adapters.slack.app import SCOPES
from bot.store.models import Enrolment, Organisation, Person
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
MANIFEST = Path(__file__).parent.parent / "slack" / "manifest.yaml"


async def reply_to(slack: SlackHarness, user: str, text: str) -> str:
    before = len(slack.fake.responses)
    status, _, elapsed = await slack.command(user, text)
    assert status == 200 and elapsed < 3
    responses = await slack.until(
        lambda: len(slack.fake.responses) > before and slack.fake.responses
    )
    return responses[-1]["text"]


async def enrolments(slack: SlackHarness) -> dict[str, Enrolment]:
    async with slack.app.db.session() as session:
        rows = (
            await session.execute(
                select(Person.platform_user_id, Enrolment).join(
                    Enrolment, Enrolment.person_id == Person.id
                )
            )
        ).all()
    return {user_id: enrolment for user_id, enrolment in rows}


async def test_help_unknown_and_malformed_commands_get_usage(slack: SlackHarness) -> None:
    assert "enroll #channel" in await reply_to(slack, ADMIN, "help")
    assert "I don't know “frobnicate”" in await reply_to(slack, ADMIN, "frobnicate")
    reply = await reply_to(slack, ADMIN, "enroll #security")
    assert "I couldn't read “#security”" in reply and "Usage: enroll" in reply
    reply = await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> track=ninja")
    assert "“track=ninja” isn't a valid option" in reply
    reply = await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> deadline=2020-01-01")
    assert "“2020-01-01” isn't a date from today on" in reply
    assert "Usage: enroll" in await reply_to(slack, ADMIN, "enroll")
    assert not await enrolments(slack)


async def test_enrolling_twice_changes_nothing_and_guests_on_request(slack: SlackHarness) -> None:
    first = await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> track=technical lang=da")
    assert first.startswith("Enrolled 3 · already enrolled 0 · skipped 3")
    second = await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> guests=yes")
    assert second.startswith("Enrolled 1 · already enrolled 3 · skipped 2")
    enrolled = await enrolments(slack)
    assert set(enrolled) == {ADMIN, LEARNER, "UDANE001", "UGUEST01"}
    assert enrolled[LEARNER].track == "technical" and enrolled[LEARNER].language == "da"


async def test_kept_open_channel_enrols_new_joiners(slack: SlackHarness) -> None:
    deadline = slack.app.coach.clock().date() + timedelta(days=30)
    reply = await reply_to(
        slack, ADMIN, f"enroll <#C0SECURE|security> keep=yes deadline={deadline} track=management"
    )
    assert "join #security later will be enrolled automatically" in reply
    slack.fake.add_user(TEAM, "UNEWHIRE", "Nina Newhire")
    event = {
        "type": "member_joined_channel",
        "user": "UNEWHIRE",
        "channel": "C0SECURE",
        "channel_type": "C",
        "team": TEAM,
    }
    await slack.event(event, "EvJoin1")
    await slack.event(event, "EvJoin1", retry=1)
    dm = slack.fake.dm_channel(TEAM, "UNEWHIRE")
    await slack.until(lambda: slack.current(dm))
    joined = (await enrolments(slack))["UNEWHIRE"]
    assert joined.track == "management"
    assert joined.deadline == deadline
    await asyncio.sleep(0.3)
    assert sum("enrolled you" in m["text"] for m in slack.current(dm)) == 1


async def test_deactivated_users_stop_receiving_lessons(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    user = {"id": LEARNER, "team_id": TEAM, "deleted": True, "name": "lars"}
    await slack.event({"type": "user_change", "user": user}, "EvGone1")
    await asyncio.sleep(0.3)
    reminded = await reply_to(slack, ADMIN, "remind")
    assert "Sent a friendly nudge to 0 learners" in reminded
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    event = {
        "type": "message",
        "channel_type": "im",
        "user": LEARNER,
        "text": "next",
        "channel": dm,
        "ts": "1.1",
        "event_ts": "1.1",
    }
    before = len(slack.current(dm))
    await slack.event(event, "EvNext1")
    await slack.until(lambda: len(slack.current(dm)) > before)
    assert "not enrolled" in slack.current(dm)[-1]["text"]


async def test_remind_nudges_only_those_behind(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security>")
    for user in (ADMIN, LEARNER, "UDANE001"):
        dm = slack.fake.dm_channel(TEAM, user)
        await slack.until(lambda dm=dm: slack.waiting(dm))
    reply = await reply_to(slack, ADMIN, "remind")
    assert "Sent a friendly nudge to 0 learners" in reply  # everyone just got lesson one
    slack.app.coach.clock = lambda real=slack.app.coach.clock: real() + timedelta(days=3)
    reply = await reply_to(slack, ADMIN, "remind")
    assert "Sent a friendly nudge to 3 learners" in reply
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    await slack.until(lambda: "friendly nudge" in slack.current(dm)[-1]["text"])


async def test_managers_see_their_teams_and_admins_the_organisation(slack: SlackHarness) -> None:
    reply = await reply_to(slack, ADMIN, f"manager <@{LEARNER}|lars> <#C0SECURE|security>")
    assert "hasn't been enrolled yet" in reply
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> deadline=2099-01-01")
    for user in (ADMIN, LEARNER, "UDANE001"):
        dm = slack.fake.dm_channel(TEAM, user)
        await slack.until(lambda dm=dm: slack.waiting(dm))
    reply = await reply_to(slack, ADMIN, f"manager <@{LEARNER}|lars> <#C0SECURE|security>")
    assert "Lars Learner now follows the progress of #security" in reply

    manager_view = await reply_to(slack, LEARNER, "status")
    assert "*security*: enrolled 3 · in progress 3 · certified 0 · overdue 0" in manager_view
    assert "Acme: the whole organisation" not in manager_view
    admin_view = await reply_to(slack, ADMIN, "status")
    assert "Enrolled 3 · in progress 3 · certified 0 · overdue 0" in admin_view

    unenrolled = await reply_to(slack, ADMIN, "unenroll <@UDANE001|dorthe>")
    assert "Unenrolled 1" in unenrolled
    assert "enrolled 2" in await reply_to(slack, LEARNER, "status")


async def test_home_tab_and_organisation_settings(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{ADMIN}|alma>")
    await slack.event(
        {"type": "app_home_opened", "user": ADMIN, "tab": "home", "channel": "D0HOME"}, "EvHome1"
    )
    home = await slack.until(
        lambda: [v for v in slack.fake.views if v["method"] == "views.publish"]
    )
    text = str(home[-1]["view"])
    assert "Your NIS2 course" in text and "Organisation overview" in text
    assert "Edit settings" in text

    button = {"action_id": "nis2.edit_settings.0", "value": "-", "type": "button"}
    message = {"channel": "D0HOME", "ts": "1.1", "blocks": []}
    await slack.click(ADMIN, message, button)
    modal = await slack.until(lambda: [v for v in slack.fake.views if v["method"] == "views.open"])
    view = {**modal[-1]["view"], "id": modal[-1]["view_id"]}

    def values(**given: str) -> dict:
        return {
            name: {"value": {"type": "plain_text_input", "value": value}}
            for name, value in given.items()
        }

    bad = values(security_policy_url="intranet/policy")
    status, body, _ = await slack.submit(ADMIN, view, bad)
    assert status == 200 and "https://" in body and "security_policy_url" in body

    good = values(
        name="Acme ApS", incident_contact="Security Desk", incident_phone="+45 70 20 30 40"
    )
    assert (await slack.submit(ADMIN, view, good))[0] == 200

    async def stored() -> dict:
        async with slack.app.db.session() as session:
            query = select(Organisation.settings).filter_by(platform="slack", external_id=TEAM)
            return (await session.execute(query)).scalar_one()

    for _ in range(100):
        if (await stored()).get("incident_contact"):
            break
        await asyncio.sleep(0.05)
    assert (await stored())["incident_contact"] == "Security Desk"

    button = {"action_id": "nis2.edit_settings.0", "value": "-", "type": "button"}
    opened = len(slack.fake.calls_to("views.open"))
    await slack.click(LEARNER, message, button)
    await asyncio.sleep(0.5)
    assert len(slack.fake.calls_to("views.open")) == opened  # not an admin: no settings


def test_the_manifest_declares_what_the_app_uses() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(SCOPES)
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert events == {"app_home_opened", "member_joined_channel", "message.im", "user_change"}
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/nis2" and command["should_escape"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
