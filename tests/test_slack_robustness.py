"""Regressions found by trying to break the Slack side: each keeps a fixed fault fixed."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot.store.models import Enrolment, Person, Reflection, Team
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness
from tests.test_slack_admin import enrolments, reply_to

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_operator_details_reach_slack_lessons(slack: SlackHarness, monkeypatch) -> None:
    monkeypatch.setenv("INCIDENT_CONTACT", "Security Desk")
    monkeypatch.setenv("INCIDENT_PHONE", "+45 70 20 30 40")
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    profile = await slack.app.coach.profile_for("slack", TEAM)
    assert profile.incident_contact == "Security Desk"
    assert profile.incident_phone == "+45 70 20 30 40"


async def test_one_unknown_target_changes_nothing(slack: SlackHarness) -> None:
    reply = await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars> <#C0NOPE99|nope>")
    assert "couldn't read the members of #nope (channel_not_found)" in reply
    assert "Nothing was changed" in reply
    assert not await enrolments(slack)


async def test_kept_open_survives_a_rerun_and_ends_with_unenroll(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> keep=yes")
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> guests=yes")

    async def kept() -> bool:
        async with slack.app.db.session() as session:
            return (await session.execute(select(Team.keep_open))).scalar_one()

    assert await kept()
    await reply_to(slack, ADMIN, "unenroll <#C0SECURE|security>")
    assert not await kept()


async def test_enrolling_again_after_unenroll_takes_the_new_options(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    await reply_to(slack, ADMIN, f"unenroll <@{LEARNER}|lars>")
    reply = await reply_to(
        slack, ADMIN, f"enroll <@{LEARNER}|lars> lang=da track=technical deadline=2099-01-31"
    )
    assert reply.startswith("Enrolled 1")
    enrolment = (await enrolments(slack))[LEARNER]
    assert (enrolment.language, enrolment.track, str(enrolment.deadline)) == (
        "da",
        "technical",
        "2099-01-31",
    )


async def test_a_returning_user_is_active_again(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    for number, deleted in enumerate((True, False)):
        user = {"id": LEARNER, "team_id": TEAM, "deleted": deleted}
        await slack.event({"type": "user_change", "user": user}, f"EvUser{number}")
        await asyncio.sleep(0.3)
    async with slack.app.db.session() as session:
        active = (
            await session.execute(select(Person.active).filter_by(platform_user_id=LEARNER))
        ).scalar_one()
    assert active


async def test_signed_but_malformed_bodies_get_400(slack: SlackHarness) -> None:
    for body in (urlencode({"payload": "[1, 2]"}).encode(), urlencode({"payload": "{"}).encode()):
        status, _, _ = await slack.post(body, "application/x-www-form-urlencoded")
        assert status == 400
    status, _, _ = await slack.post(b"[1, 2]", "application/json")
    assert status in (400, 404)


async def test_a_failed_post_lets_the_same_button_work_again(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    message, _ = await slack.until(lambda: slack.waiting(dm))
    for _ in range(20):  # answer the lesson's questions and skip its reflection
        message, elements = await slack.until(lambda: slack.waiting(dm))
        if elements[0]["action_id"].startswith("nis2.next."):
            break
        button = elements[-1] if "reflect" in elements[0]["action_id"] else elements[0]
        await slack.click(LEARNER, message, button)
        await slack.until(lambda m=message: slack.waiting(dm) and slack.waiting(dm)[0] != m)
    slack.fake.fail("chat.postMessage", "internal_error", times=1)
    posted = len(slack.fake.calls_to("chat.postMessage"))
    await slack.click(LEARNER, message, elements[0])
    await asyncio.sleep(0.5)
    await slack.click(LEARNER, message, elements[0])
    await slack.until(lambda: len(slack.fake.calls_to("chat.postMessage")) >= posted + 2)


async def test_a_reflection_written_after_skipping_is_kept(slack: SlackHarness) -> None:
    coach = slack.app.coach
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    enrolment_id = (await enrolments(slack))[LEARNER].id
    lesson_id = (await coach.resume(enrolment_id))[0].lesson_id
    await coach.reflect(enrolment_id, lesson_id, None)
    await coach.reflect(enrolment_id, lesson_id, "Written after all.")
    async with slack.app.db.session() as session:
        texts = (await session.execute(select(Reflection.text))).scalars().all()
    assert texts == ["Written after all."]


async def test_double_click_on_home_next_posts_once(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, f"enroll <@{LEARNER}|lars>")
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    await slack.until(lambda: slack.waiting(dm))
    posted = len(slack.fake.calls_to("chat.postMessage"))
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": LEARNER, "team_id": TEAM},
        "api_app_id": "AFAKEAPP1",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "container": {"type": "view", "view_id": "V1"},
        "view": {"id": "V1", "type": "home", "hash": "1700000000.abcd"},
        "actions": [
            {"action_id": "nis2.next.0", "value": "-", "type": "button", "action_ts": "1.1"}
        ],
    }
    await asyncio.gather(slack.interact(payload), slack.interact(payload))
    await asyncio.sleep(0.8)
    assert len(slack.fake.calls_to("chat.postMessage")) - posted == 2  # lesson card + question


async def test_settings_form_names_a_bad_link(slack: SlackHarness) -> None:
    view = {"id": "V1", "callback_id": "nis2.settings", "type": "modal", "private_metadata": ""}
    values = {
        "incident_procedure_url": {"value": {"type": "plain_text_input", "value": "https://x y"}}
    }
    status, body, _ = await slack.submit(ADMIN, view, values)
    assert status == 200
    assert json.loads(body)["errors"] == {
        "incident_procedure_url": "Please give a link that starts with https://"
    }
    async with slack.app.db.session() as session:
        assert not (await session.execute(select(Enrolment))).first()
