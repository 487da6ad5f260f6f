"""Faults real Slack bots shipped (CASES.md C01–C07, C10), each tried against the real server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import func, select

from bot import server
from bot.adapters.slack.app import SlackAdapter
from bot.app import App
from bot.coach import Coach
from bot.lessons.course import Course
from bot.programme import EnrolRequest, Member, Programme
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import Answer, Enrolment, LessonDelivery, ProcessedEvent
from tests.fakes.slack_api import FakeSlack, FakeSocketMode
from tests.slack_harness import ADMIN, LEARNER, SECRET, TEAM, TOKEN, SlackHarness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def enrol_quietly(slack: SlackHarness, user: str = LEARNER) -> int:
    """Enrol a learner straight in the database, with no welcome sent."""
    coach = slack.app.coach
    organisation = await coach.organisation("slack", TEAM, "Acme")
    outcome = await Programme(coach).enrol_members(
        organisation.id, [Member(user, "Lars Learner")], EnrolRequest()
    )
    return outcome.enrolment_ids[user]


async def count(db: Database, model: type, **where: object) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return (await session.execute(query)).scalar_one()


def dm_event(slack: SlackHarness, text: str, user: str = LEARNER) -> dict:
    now = f"{time.time():.6f}"
    channel = slack.fake.dm_channel(TEAM, user)
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "channel": channel,
        "ts": now,
        "event_ts": now,
    }


async def test_c01_retried_events_are_handled_once(slack: SlackHarness) -> None:
    """C01: the same event three times (retries 1 and 2) has one effect; all acked fast."""
    await enrol_quietly(slack)
    slack.fake.delays["chat.postMessage"] = 1.0  # a slow handler
    event = dm_event(slack, "next")
    answers = [
        await slack.event(event, "Ev1"),
        await slack.event(event, "Ev1", retry=1),
        await slack.event(event, "Ev1", retry=2),
    ]
    assert all(status == 200 and elapsed < 1 for status, _, elapsed in answers)
    await slack.until(lambda: len(slack.fake.calls_to("chat.postMessage")) >= 2)
    await asyncio.sleep(1.5)
    assert await count(slack.app.db, LessonDelivery) == 1
    assert len(slack.fake.calls_to("chat.postMessage")) == 2  # the lesson and its question
    assert await count(slack.app.db, ProcessedEvent, event_id="Ev1") == 1


async def test_c02_deduplication_is_durable(slack: SlackHarness, course: Course) -> None:
    """C02: an event seen only as a retry is processed; one seen again after a restart is not."""
    await enrol_quietly(slack)
    status, _, _ = await slack.event(dm_event(slack, "next"), "Ev2", retry=1)
    assert status == 200
    await slack.until(lambda: len(slack.fake.calls_to("chat.postMessage")) == 2)

    await slack.event(dm_event(slack, "progress"), "Ev3")
    await slack.until(lambda: len(slack.fake.calls_to("chat.postMessage")) == 3)
    await slack.stop()  # a restart: nothing held in memory survives
    restarted = App(
        slack.app.settings, course, slack.app.db, Coach(course, slack.app.db, slack.app.settings)
    )
    again = SlackHarness(slack.fake, restarted, server.build(restarted))
    await again.start()
    try:
        status, _, _ = await again.event(dm_event(slack, "progress"), "Ev3", retry=3)
        assert status == 200
        await asyncio.sleep(0.5)
        assert len(slack.fake.calls_to("chat.postMessage")) == 3
    finally:
        await again.stop()
        slack._runner = None
        slack._session = None


async def test_c03_slow_member_lists_are_fetched_after_the_ack(slack: SlackHarness) -> None:
    """C03: a slow conversations.members does not delay the 200; the result follows."""
    slack.fake.delays["conversations.members"] = 4.0
    status, body, elapsed = await slack.command(ADMIN, "enroll <#C0SECURE|security>")
    assert status == 200 and elapsed < 3
    assert "Working on it" in body
    assert not slack.fake.responses
    result = await slack.until(lambda: slack.fake.responses, within=15)
    assert "Enrolled 3" in result[-1]["text"]


@pytest.mark.parametrize("kind", ["json", "form"])
async def test_c04_signatures_over_the_exact_bytes(slack: SlackHarness, kind: str) -> None:
    """C04: non-ASCII and +/%2B survive; a flipped byte or an old timestamp gets 401."""
    await enrol_quietly(slack)
    text = "Grüße ✓ *fett* a+b%2B"
    if kind == "json":
        body, content_type = slack.event_body(dm_event(slack, text), "Ev4"), "application/json"
    else:
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": LEARNER},
            "api_app_id": "AFAKEAPP1",
            "token": "legacy",
            "trigger_id": "1.2.3",
            "channel": {"id": "D1"},
            "actions": [
                {
                    "action_id": "nis2.progress.0",
                    "value": text,
                    "type": "button",
                    "action_ts": "1.2",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload, ensure_ascii=False)}).encode()
        content_type = "application/x-www-form-urlencoded"
    assert (await slack.post(body, content_type))[0] == 200

    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    headers = slack.headers(body)
    assert (await slack.post(bytes(flipped), content_type, headers=headers))[0] == 401
    old = slack.headers(body, timestamp=int(time.time()) - 301)
    assert (await slack.post(body, content_type, headers=old))[0] == 401
    wrong_secret = slack.headers(body, secret="not-the-secret")
    assert (await slack.post(body, content_type, headers=wrong_secret))[0] == 401


@asynccontextmanager
async def two_workspaces(
    course: Course, db: Database, settings: Settings
) -> AsyncIterator[tuple[FakeSlack, SlackAdapter]]:
    """The OAuth (many workspaces) mode with two installations in slack_sdk's store."""
    fake = FakeSlack()
    await fake.start()
    for team, token in (("T0AAAAAA", "xoxb-a"), ("T0BBBBBB", "xoxb-b")):
        fake.add_workspace(team, token, name=team)
        fake.add_user(team, "U0PERSON", "Pat Person")
    many = settings.model_copy(
        update={
            "slack_client_id": "111.222",
            "slack_client_secret": "secret",
            "slack_signing_secret": SECRET,
            "slack_api_url": fake.api_url,
        }
    )
    app = App(many, course, db, Coach(course, db, many))
    adapter = SlackAdapter(app)
    for team, token in (("T0AAAAAA", "xoxb-a"), ("T0BBBBBB", "xoxb-b")):
        await adapter.installation_store.async_save(
            Installation(
                app_id="AFAKEAPP1",
                team_id=team,
                team_name=team,
                bot_token=token,
                bot_id="B1",
                bot_user_id="UBOT",
                bot_scopes=["chat:write"],
                user_id="U0PERSON",
            )
        )
    try:
        yield fake, adapter
    finally:
        await adapter.close()
        await fake.stop()


async def test_c05_a_429_pauses_only_its_workspace(
    course: Course, db: Database, settings: Settings
) -> None:
    """C05: Retry-After 2 on workspace A: A waits 2 s and delivers once; B is not held up."""
    async with two_workspaces(course, db, settings) as (fake, adapter):
        fake.rate_limit("chat.postMessage", times=1, retry_after=2, team_id="T0AAAAAA")
        programme = Programme(adapter.coach)
        learners = {}
        for team in ("T0AAAAAA", "T0BBBBBB"):
            organisation = await adapter.coach.organisation("slack", team, team)
            outcome = await programme.enrol_members(
                organisation.id, [Member("U0PERSON", "Pat Person")], EnrolRequest()
            )
            learners[team] = outcome.enrolment_ids["U0PERSON"]
        started = time.monotonic()
        await asyncio.gather(
            *(adapter.start_learner(team, "U0PERSON", learners[team]) for team in learners)
        )
        a_posts = [
            c for c in fake.calls if c.method == "chat.postMessage" and c.team_id == "T0AAAAAA"
        ]
        b_posts = fake.calls_to("chat.postMessage", "T0BBBBBB")
        assert a_posts[0].status == 429
        assert a_posts[1].at - a_posts[0].at >= 2
        assert all(call.at - started < 1.5 for call in b_posts)
        welcomes = [
            m for m in fake.messages if m["team_id"] == "T0AAAAAA" and "enrolled you" in m["text"]
        ]
        assert len(welcomes) == 1


@asynccontextmanager
async def slow_database(db: Database, delay: float) -> AsyncIterator[None]:
    original = db.session

    @asynccontextmanager
    async def slow():
        await asyncio.sleep(delay)
        async with original() as session:
            yield session

    db.session = slow
    try:
        yield
    finally:
        db.session = original


async def test_c06_reflection_modal_opens_before_the_database(slack: SlackHarness) -> None:
    """C06: with a 3.5 s database the modal still opens inside 3 s, then gets filled in."""
    enrolment_id = await enrol_quietly(slack)
    messages = await slack.app.coach.next(enrolment_id)
    lesson = next(m for m in messages if hasattr(m, "lesson_id"))
    value = f"en|{lesson.lesson_id}"
    message = {"channel": "D0LEARN", "ts": "1700000000.000100", "text": "", "blocks": []}
    button = {"action_id": "nis2.reflect.0", "value": value, "type": "button", "block_id": "b"}
    async with slow_database(slack.app.db, 3.5):
        clicked = time.monotonic()
        status, _, elapsed = await slack.click(LEARNER, message, button)
        assert status == 200 and elapsed < 3
        opened = await slack.until(lambda: slack.fake.calls_to("views.open"), within=3)
        assert opened[0].at - clicked < 3
    assert slack.fake.views[0]["view"]["callback_id"] == "nis2.reflection"


async def test_c07_a_double_click_records_one_answer(slack: SlackHarness, course: Course) -> None:
    """C07: two clicks 200 ms apart: one answer, both acked, the buttons gone after."""
    await slack.command(ADMIN, f"enroll <@{LEARNER}|lars>")
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    message, elements = await slack.until(lambda: slack.waiting(dm))
    assert elements[0]["action_id"].startswith("nis2.answer.")
    first = await slack.click(LEARNER, message, elements[0])
    await asyncio.sleep(0.2)
    second = await slack.click(LEARNER, message, elements[0])
    assert first[0] == second[0] == 200 and max(first[2], second[2]) < 3
    await slack.until(lambda: slack.fake.updates)
    await asyncio.sleep(0.5)
    assert await count(slack.app.db, Answer) == 1
    updated = [m for m in slack.current(dm) if m["ts"] == message["ts"]][0]
    assert not any(block["type"] == "actions" for block in updated["blocks"])


async def test_c10_socket_mode_reconnects_and_reports_health(
    course: Course, db: Database, settings: Settings
) -> None:
    """C10: a disconnect and one refused reconnect: it reconnects; while down, /healthz says so."""
    fake = FakeSlack()
    await fake.start()
    socket = FakeSocketMode(fake)
    fake.add_workspace(TEAM, TOKEN)
    fake.add_app_token("xapp-1-test")
    socket_settings = settings.model_copy(
        update={
            "slack_bot_token": TOKEN,
            "slack_app_token": "xapp-1-test",
            "slack_api_url": fake.api_url,
            "slack_socket_ping": 0.3,
        }
    )
    app = App(socket_settings, course, db, Coach(course, db, socket_settings))
    web_app = server.build(app)
    runner = aiohttp.web.AppRunner(web_app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/healthz"
    try:
        async with aiohttp.ClientSession() as session:
            await socket.wait_connected(1)
            await asyncio.sleep(0.4)
            assert (await session.get(url)).status == 200

            socket.refuse_next(1)
            await socket.send_disconnect()
            await socket.wait_connected(2, timeout=15)
            await asyncio.sleep(0.5)
            assert (await session.get(url)).status == 200

            socket.refuse_next(10_000)
            await socket.send_disconnect()
            await asyncio.sleep(2.0)
            response = await session.get(url)
            assert response.status == 503
            assert "socket mode" in (await response.json())["problems"][0]
            socket.refuse_next(0)
    finally:
        await runner.cleanup()
        await fake.stop()


async def test_non_admins_are_refused_every_admin_command(slack: SlackHarness) -> None:
    commands = [
        "enroll <#C0SECURE|security>",
        "unenroll <@UADMIN01|alma>",
        "manager <@UADMIN01|alma> <#C0SECURE|security>",
        "remind",
    ]
    for text in commands:
        status, _, _ = await slack.command(LEARNER, text)
        assert status == 200
    replies = await slack.until(lambda: len(slack.fake.responses) == 4 and slack.fake.responses)
    for reply in replies:
        assert "only admins can use" in reply["text"], reply
        assert reply["response_type"] == "ephemeral"
    assert await count(slack.app.db, Enrolment) == 0
    assert not slack.fake.calls_to("conversations.members")


async def test_oauth_install_stores_the_workspace_in_our_database(
    course: Course, db: Database, settings: Settings
) -> None:
    """Many workspaces: install, Slack's redirect back, and the token kept by slack_sdk."""
    fake = FakeSlack()
    await fake.start()
    fake.add_workspace("T0NEWCO1", "xoxb-unused", name="Newco")
    fake.add_oauth_code("code-123", "T0NEWCO1", "U0INSTALL")
    many = settings.model_copy(
        update={
            "slack_client_id": "111.222",
            "slack_client_secret": "secret",
            "slack_signing_secret": SECRET,
            "slack_api_url": fake.api_url,
        }
    )
    app = App(many, course, db, Coach(course, db, many))
    runner = aiohttp.web.AppRunner(server.build(app))
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/slack/install", allow_redirects=False) as response:
                assert response.status in (200, 302)
                page = await response.text()
                location = response.headers.get("Location", "") + page
                cookie = response.headers["Set-Cookie"].split(";")[0]  # Secure: sent by hand
            state = location.split("state=")[1].split("&")[0].split('"')[0]
            async with session.get(
                f"{base}/slack/oauth_redirect?code=code-123&state={state}",
                headers={"Cookie": cookie},
                allow_redirects=False,
            ) as response:
                assert response.status in (200, 302), await response.text()
        adapter = SlackAdapter(app)
        client = await adapter.client_for("T0NEWCO1")
        assert client.token == "xoxb-T0NEWCO1-oauth"
        await adapter.close()
    finally:
        await runner.cleanup()
        await fake.stop()
