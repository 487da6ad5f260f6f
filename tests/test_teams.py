"""The course in Teams: activities into /api/messages of the real server, sends to a fake connector.

Only botbuilder's token fetch and its OpenID metadata URL point at the fake (see
tests/fakes/teams_auth.py); everything else is the production CloudAdapter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot import server
from bot.adapters.teams.app import TeamsAdapter
from bot.app import App
from bot.coach import Coach
from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import Answer, Enrolment, Person
from tests.fakes.bot_connector import FakeConnector
from tests.fakes.teams_auth import TeamsConfig, authentication_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

APP_ID = "6f1c2a4e-0000-4000-8000-00000000a001"
PASSWORD = "app-secret"
TENANT = "7a3c0d2e-1111-4111-8111-0000000000aa"
OTHER_TENANT = "9b4d1e3f-2222-4222-8222-0000000000bb"
TEAM = "19:general-acme@thread.tacv2"
OWNER = {"id": "29:1owner", "aadObjectId": "aad-owner", "name": "Olga Owner", "userRole": "owner"}
ADA = {"id": "29:1ada", "aadObjectId": "aad-ada", "name": "Ada Lovelace", "userRole": "user"}
GRACE = {"id": "29:1grace", "aadObjectId": "aad-grace", "name": "Grace Hopper", "userRole": "user"}


@dataclass
class TeamsHarness:
    fake: FakeConnector
    app: App
    url: str
    session: aiohttp.ClientSession

    async def post(self, activity: dict[str, Any], token: str | None = "valid") -> int:
        if token == "valid":
            token = self.fake.channel_token(APP_ID, activity["serviceUrl"])
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(
            f"{self.url}/api/messages", json=activity, headers=headers
        ) as response:
            return response.status

    def chat_with(self, member: dict[str, Any]) -> str:
        """The 1:1 conversation the bot created with a member (the fake keeps one per person)."""
        for (_, tenant, member_id), conversation_id in self.fake._personal.items():
            if member_id == member["id"] and tenant == TENANT:
                return conversation_id
        raise AssertionError(f"no 1:1 chat with {member['name']}")

    def cards_in(self, conversation_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(activity id, card) of every card sent there, as it looks now (updates applied)."""
        current: dict[str, dict[str, Any]] = {}
        for send in self.fake.sends:
            if send["conversation_id"] == conversation_id:
                current[send["activity_id"]] = send["activity"]
        for update in self.fake.updates:
            if update["conversation_id"] == conversation_id:
                current[update["activity_id"]] = update["activity"]
        return [
            (activity_id, activity["attachments"][0]["content"])
            for activity_id, activity in current.items()
            if activity.get("attachments")
        ]


def personal(
    member: dict[str, Any], service_url: str, conversation_id: str, **fields: Any
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"1:{time.monotonic_ns()}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "text": "",
        "from": {"id": member["id"], "name": member["name"], "aadObjectId": member["aadObjectId"]},
        "recipient": {"id": f"28:{APP_ID}", "name": "NIS2 Coach"},
        "conversation": {"id": conversation_id, "conversationType": "personal", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
        **fields,
    }


def in_channel(
    member: dict[str, Any], service_url: str, text: str, tenant: str = TENANT
) -> dict[str, Any]:
    mention = f"<at>NIS2 Coach</at> {text}"
    return {
        "type": "message",
        "id": f"1:{time.monotonic_ns()}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "text": mention,
        "from": {"id": member["id"], "name": member["name"], "aadObjectId": member["aadObjectId"]},
        "recipient": {"id": f"28:{APP_ID}", "name": "NIS2 Coach"},
        "conversation": {
            "id": TEAM,
            "conversationType": "channel",
            "isGroup": True,
            "tenantId": tenant,
        },
        "channelData": {"tenant": {"id": tenant}, "team": {"id": TEAM}, "channel": {"id": TEAM}},
        "entities": [
            {
                "type": "mention",
                "text": "<at>NIS2 Coach</at>",
                "mentioned": {"id": f"28:{APP_ID}", "name": "NIS2 Coach"},
            }
        ],
    }


@pytest.fixture
async def teams(course: Course, db: Database, settings: Settings) -> AsyncIterator[TeamsHarness]:
    fake = FakeConnector()
    await fake.start()
    fake.add_team(TEAM, TENANT, [OWNER, ADA, GRACE])
    teams_settings = settings.model_copy(
        update={"microsoft_app_id": APP_ID, "microsoft_app_password": PASSWORD}
    )
    app = App(teams_settings, course, db, Coach(course, db, teams_settings))
    fake.register_app(APP_ID, PASSWORD)
    authentication = authentication_for(fake, TeamsConfig(APP_ID, PASSWORD))
    runner = web.AppRunner(server.build(app, authentication))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as session:
        yield TeamsHarness(fake, app, f"http://127.0.0.1:{runner.addresses[0][1]}", session)
    await runner.cleanup()
    await fake.stop()


async def count(db: Database, model: type) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


def submit_for(card: dict[str, Any], course: Course, fail_quiz: bool) -> dict[str, Any] | None:
    """The value a learner's click sends for this card (C15: an object)."""
    actions = {
        a["data"]["action"]: a["data"]
        for a in card.get("actions", [])
        if a["type"] == "Action.Submit"
    }
    if "answer" in actions:
        data = actions["answer"]
        question = course.language("en").question(data["value"].split("|")[1])
        wrong = next(o for o in question.options if not o.correct)
        option = (
            wrong if fail_quiz and data["value"].startswith("quiz") else question.correct_option
        )
        return {**data, "option": option.id}
    if "reflect" in actions:
        return {**actions["reflect"], "reflection": "I will call back on a known number."}
    for action in ("confirm_checklist", "retry_quiz", "next"):
        if action in actions:
            return actions[action]
    return None


async def test_whole_course_in_teams(teams: TeamsHarness, course: Course) -> None:
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    assert {c.get("isGroup") for c in teams.fake.created} == {False}  # C14
    assert all(
        c.get("tenantId") == TENANT or c.get("tenantID") == TENANT for c in teams.fake.created
    )
    chat = teams.chat_with(ADA)
    failed = False
    for _ in range(400):
        cards = teams.cards_in(chat)
        if any("🎓" in str(card) for _, card in cards):
            break
        activity_id, card = next((a, c) for a, c in reversed(cards) if c.get("actions"))
        failed = failed or "retry_quiz" in str(card)
        value = submit_for(card, course, fail_quiz=not failed)
        assert value is not None, card
        activity = personal(ADA, teams.fake.url, chat, value=value, replyToId=activity_id)
        assert await teams.post(activity) == 201
    else:
        raise AssertionError("the course did not end")
    assert failed, "the first quiz attempt should have failed"
    assert teams.fake.updates, "answers update their card in place (C18)"
    certificate = [card for _, card in teams.cards_in(chat) if "🎓" in str(card)][-1]
    urls = [a["url"] for a in certificate["actions"] if a["type"] == "Action.OpenUrl"]
    download = next(url for url in urls if url.endswith("/pdf"))
    local = teams.url + "/certificates/" + download.split("/certificates/")[1]
    async with teams.session.get(local) as response:
        assert response.status == 200 and (await response.read()).startswith(b"%PDF")


async def test_c11_unreachable_people_are_marked_and_listed(teams: TeamsHarness) -> None:
    teams.fake.page_size = 1  # the roster comes page by page
    teams.fake.fail(status=403, code="ConversationBlockedByUser", operation="create", times=1)
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    async with teams.app.db.session() as session:
        reasons = (await session.execute(select(Person.unreachable_reason))).scalars().all()
    assert reasons.count("ConversationBlockedByUser") == 1
    reply = teams.fake.sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]
    assert "Could not reach 1 people" in reply
    assert await count(teams.app.db, Enrolment) == 3


async def test_c12_lessons_reach_a_stored_chat_after_a_restart(
    teams: TeamsHarness, course: Course
) -> None:
    await teams.post(in_channel(OWNER, teams.fake.url, "enroll"))
    found = await teams.app.coach.find_learner("teams", TENANT, ADA["aadObjectId"])
    restarted = TeamsAdapter(
        teams.app, authentication_for(teams.fake, TeamsConfig(APP_ID, PASSWORD))
    )
    before = len(teams.fake.sends)
    lang = course.language("en")
    from bot.lessons.messages import Text

    await restarted.send_to(found[0].id, [Text("A proactive hello")], lang)
    sent = teams.fake.sends[before:]
    assert len(sent) == 1 and sent[0]["token"]


async def test_c13_single_tenant_tokens(course: Course, db: Database, settings: Settings) -> None:
    fake = FakeConnector()
    await fake.start()
    single = settings.model_copy(
        update={
            "microsoft_app_id": APP_ID,
            "microsoft_app_password": PASSWORD,
            "microsoft_app_type": "SingleTenant",
            "microsoft_app_tenant_id": TENANT,
        }
    )
    app = App(single, course, db, Coach(course, db, single))
    fake.register_app(APP_ID, PASSWORD, tenant_id=TENANT)
    authentication = authentication_for(fake, TeamsConfig(APP_ID, PASSWORD, "SingleTenant", TENANT))
    runner = web.AppRunner(server.build(app, authentication))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as session:
            harness = TeamsHarness(fake, app, url, session)
            ours = personal(ADA, fake.url, "a:chat", text="help")
            assert await harness.post(ours) in (200, 201)
            theirs = personal(ADA, fake.url, "a:chat", text="help")
            theirs["channelData"]["tenant"]["id"] = OTHER_TENANT
            theirs["conversation"]["tenantId"] = OTHER_TENANT
            assert await harness.post(theirs) == 401
            stale = fake.channel_token(APP_ID, fake.url, expired_seconds_ago=360)
            assert await harness.post(personal(ADA, fake.url, "a:chat"), token=stale) == 401
            assert await harness.post(personal(ADA, fake.url, "a:chat"), token=None) == 401
    finally:
        await runner.cleanup()
        await fake.stop()


async def test_c15_and_c16_object_submits_recorded_once(teams: TeamsHarness) -> None:
    await teams.post(in_channel(OWNER, teams.fake.url, "enroll"))
    chat = teams.chat_with(ADA)
    activity_id, card = next((a, c) for a, c in reversed(teams.cards_in(chat)) if c.get("actions"))
    data = card["actions"][0]["data"]
    value = {**data, "option": card["body"][2]["choices"][0]["value"]}
    activity = personal(ADA, teams.fake.url, chat, value=value, replyToId=activity_id, text="")
    assert await teams.post(activity) == 201
    assert await teams.post(activity) == 201  # Teams redelivers after 15 s (C16)
    assert await count(teams.app.db, Answer) == 1


async def test_c19_throttling_is_retried_and_delivered_once(teams: TeamsHarness) -> None:
    teams.fake.fail(status=429, retry_after=1, times=1)
    teams.fake.fail(status=502, times=1)
    started = time.monotonic()
    assert await teams.post(in_channel(OWNER, teams.fake.url, "status")) == 201
    assert time.monotonic() - started >= 1
    replies = [s for s in teams.fake.sends if s["conversation_id"] == TEAM]
    assert len(replies) == 1


async def test_a_non_owner_is_refused_the_admin_commands(teams: TeamsHarness) -> None:
    for command in ("enroll", "unenroll", "remind"):
        assert await teams.post(in_channel(ADA, teams.fake.url, command)) == 201
    replies = [
        s["activity"]["attachments"][0]["content"]["body"][0]["text"]
        for s in teams.fake.sends
        if s["conversation_id"] == TEAM
    ]
    assert len(replies) == 3 and all("only admins can use" in reply for reply in replies)
    assert await count(teams.app.db, Enrolment) == 0
    await asyncio.sleep(0)


def mention(member: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "mention",
        "text": f"<at>{member['name']}</at>",
        "mentioned": {"id": member["id"], "name": member["name"]},
    }


async def test_kept_team_enrols_people_added_later_and_managers_follow_it(
    teams: TeamsHarness,
) -> None:
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll keep=yes track=technical"))
    newcomer = {
        "id": "29:1nina",
        "aadObjectId": "aad-nina",
        "name": "Nina Newhire",
        "userRole": "user",
    }
    teams.fake.add_team(TEAM, TENANT, [OWNER, ADA, GRACE, newcomer])
    added = in_channel(OWNER, teams.fake.url, "")
    added.update(
        type="conversationUpdate",
        text=None,
        entities=None,
        membersAdded=[
            {"id": newcomer["id"], "name": newcomer["name"], "aadObjectId": newcomer["aadObjectId"]}
        ],
    )
    assert await teams.post(added) in (200, 201)
    found = await teams.app.coach.find_learner("teams", TENANT, "aad-nina")
    assert found is not None and found[1].track == "technical"
    assert teams.chat_with(newcomer)

    command = in_channel(OWNER, teams.fake.url, f"manager <at>{ADA['name']}</at>")
    command["entities"].append(mention(ADA))
    assert await teams.post(command) == 201
    reply = teams.fake.sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]
    assert "Ada Lovelace now follows the progress of" in reply


def test_teams_package_is_ready_to_upload(tmp_path, monkeypatch, capsys) -> None:
    import json
    import struct
    import zipfile

    from bot.cli import main

    monkeypatch.delenv("MICROSOFT_APP_ID", raising=False)
    assert main(["teams-package", "--output", str(tmp_path / "x.zip")]) == 2
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    assert main(["teams-package", "--output", str(tmp_path / "app.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
        sizes = {
            name: struct.unpack(">II", archive.read(name)[16:24])
            for name in ("color.png", "outline.png")
        }
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID and set(bot["scopes"]) == {"personal", "team"}
    titles = {c["title"] for lists in bot["commandLists"] for c in lists["commands"]}
    assert {"next", "progress", "enroll", "unenroll", "manager", "status", "remind"} <= titles
    assert sizes == {"color.png": (192, 192), "outline.png": (32, 32)}


async def test_one_server_serves_slack_and_teams(
    course: Course, db: Database, settings: Settings
) -> None:
    both = settings.model_copy(
        update={
            "microsoft_app_id": APP_ID,
            "microsoft_app_password": PASSWORD,
            "slack_bot_token": "xoxb-x",
            "slack_signing_secret": "secret",
        }
    )
    web_app = server.build(App(both, course, db, Coach(course, db, both)))
    paths = {route.resource.canonical for route in web_app.router.routes()}
    assert {"/slack/events", "/api/messages", "/healthz", "/certificates/{code}"} <= paths


async def test_enrolling_named_members_only(teams: TeamsHarness) -> None:
    command = in_channel(OWNER, teams.fake.url, f"enroll <at>{GRACE['name']}</at> lang=da")
    command["entities"].append(mention(GRACE))
    assert await teams.post(command) == 201
    assert await count(teams.app.db, Enrolment) == 1
    found = await teams.app.coach.find_learner("teams", TENANT, GRACE["aadObjectId"])
    assert found[1].language == "da"


async def test_c14_a_new_chat_carries_the_tenant(teams: TeamsHarness) -> None:
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    assert len(teams.fake.created) == 3
    for body in teams.fake.created:
        assert body["isGroup"] is False
        assert TENANT in (body.get("tenantID"), body.get("tenantId"))
        assert body["channelData"]["tenant"]["id"] == TENANT


async def test_c18_an_answer_replaces_its_card_in_place(teams: TeamsHarness) -> None:
    await teams.post(in_channel(OWNER, teams.fake.url, "enroll"))
    chat = teams.chat_with(ADA)
    activity_id, card = next((a, c) for a, c in reversed(teams.cards_in(chat)) if c.get("actions"))
    value = {**card["actions"][0]["data"], "option": card["body"][2]["choices"][0]["value"]}
    await teams.post(personal(ADA, teams.fake.url, chat, value=value, replyToId=activity_id))
    (update,) = [u for u in teams.fake.updates if u["conversation_id"] == chat]
    assert update["activity_id"] == activity_id
    replaced = update["activity"]["attachments"][0]["content"]
    assert "actions" not in replaced and "Input.ChoiceSet" not in str(replaced)


async def test_status_shows_each_person_only_what_is_theirs(teams: TeamsHarness) -> None:
    await teams.post(in_channel(OWNER, teams.fake.url, "enroll"))

    def last_text(conversation_id: str) -> str:
        sends = [s for s in teams.fake.sends if s["conversation_id"] == conversation_id]
        return sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]

    # Asked in the team's channel, the status goes to the asker's personal chat only.
    await teams.post(in_channel(ADA, teams.fake.url, "status"))
    assert "sent your status to our personal chat" in last_text(TEAM)
    learner_view = last_text(teams.chat_with(ADA))
    assert "Your progress" in learner_view and "Enrolled 3" not in learner_view
    await teams.post(in_channel(OWNER, teams.fake.url, "status"))
    owner_view = last_text(teams.chat_with(OWNER))
    assert "Enrolled 3" in owner_view and "Enrolled 3" not in last_text(TEAM)
