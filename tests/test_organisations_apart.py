"""Organisations apart: every admin and manager command, tried by those who may not use it.

Acme (a Slack workspace, a Teams tenant) has learners, a manager, a certificate and an
overdue learner. A learner of Acme, a manager of another Acme team, and an admin of a
second organisation each try every command. Each is refused or acts on their own
organisation only, and no reply, upload or Home view carries a name, figure or code of
Acme's that the asker may not see.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import func, select, update

from bot import audit, server
from bot import certificate as certificates
from bot.app import App
from bot.coach import Coach
from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import AuditEvent, Certificate, Enrolment, Organisation, Person
from tests.fakes.bot_connector import FakeConnector
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_auth import TeamsConfig, authentication_for
from tests.slack_harness import ADMIN, LEARNER, SECRET, TEAM, TOKEN, SlackHarness, populate
from tests.test_admin_audit import certify
from tests.test_teams import (
    ADA,
    APP_ID,
    GRACE,
    OTHER_TENANT,
    OWNER,
    PASSWORD,
    TENANT,
    TeamsHarness,
    in_channel,
    mention,
    personal,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RIVAL, RIVAL_TOKEN = "T0RIVAL1", "xoxb-rival"
RIVAL_ADMIN = "URIVALAD"
MANAGER = "UMANAGE1"
# What only Acme's admins (and, for their own team, its manager) may see.
ACME_SECRETS = ("Lars Learner", "Alma Admin", "Dorthe Dansk", "Acme", "Enrolled 3", "overdue 1")


def slack_commands(code: str) -> list[str]:
    """Every /nis2 admin and manager command, aimed at Acme's channel, people and certificate."""
    return [
        "status",
        "enroll <#C0SECURE|security> track=management",
        "unenroll <#C0SECURE|security>",
        f"unenroll <@{LEARNER}|lars>",
        f"manager <@{MANAGER}|mona> <#C0SECURE|security>",
        "remind",
        f"revoke {code} taken over",
        f"my-data <@{LEARNER}|lars>",
        "report",
        "report format=csv",
    ]


@pytest.fixture
async def two_slack(
    course: Course, db: Database, settings: Settings
) -> AsyncIterator[SlackHarness]:
    """The real server in OAuth mode with two installed workspaces: Acme and Rival."""
    fake = FakeSlack()
    await fake.start()
    populate(fake)
    fake.add_user(TEAM, MANAGER, "Mona Manager")
    fake.add_channel(TEAM, "C0PAYROL", "payroll", [MANAGER, "UDANE001"])
    fake.add_workspace(RIVAL, RIVAL_TOKEN, name="Rival")
    fake.add_user(RIVAL, RIVAL_ADMIN, "Rita Rival", is_admin=True)
    fake.add_user(RIVAL, "URIVAL02", "Rolf Rival")
    fake.add_channel(RIVAL, "C0RIVALS", "rivals", [RIVAL_ADMIN, "URIVAL02"])
    many = settings.model_copy(
        update={
            "slack_client_id": "111.222",
            "slack_client_secret": "secret",
            "slack_signing_secret": SECRET,
            "slack_api_url": fake.api_url,
        }
    )
    app = App(many, course, db, Coach(course, db, many))
    web_app = server.build(app)
    store = web_app[server.SLACK_KEY].installation_store
    for team, token in ((TEAM, TOKEN), (RIVAL, RIVAL_TOKEN)):
        installation = Installation(
            app_id="AFAKEAPP1",
            team_id=team,
            team_name=team,
            bot_token=token,
            bot_id="B" + team,
            bot_user_id="UBOT",
            bot_scopes=["chat:write", "commands"],
            user_id=ADMIN if team == TEAM else RIVAL_ADMIN,
        )
        await store.async_save(installation)
    harness = SlackHarness(fake, app, web_app)
    await harness.start()
    yield harness
    await harness.stop()
    await fake.stop()


async def ask(slack: SlackHarness, user: str, text: str, team: str) -> str:
    before = len(slack.fake.responses)
    status, _, _ = await slack.command(user, text, team=team)
    assert status == 200
    await slack.until(lambda: len(slack.fake.responses) > before)
    return slack.fake.responses[-1]["text"]


async def acme_state(db: Database, platform: str, external_id: str) -> tuple:
    """Everything of Acme's an intruder could change: enrolments, certificates, audit log."""
    async with db.session() as session:
        acme = (
            await session.execute(
                select(Organisation.id).filter_by(platform=platform, external_id=external_id)
            )
        ).scalar_one()
        enrolments = (
            await session.execute(
                select(Person.platform_user_id, Enrolment.status, Enrolment.track)
                .join(Enrolment, Enrolment.person_id == Person.id)
                .where(Person.organisation_id == acme)
                .order_by(Person.platform_user_id)
            )
        ).all()
        certificates_of_acme = (
            await session.execute(
                select(Certificate.code, Certificate.revoked_at).filter_by(organisation_id=acme)
            )
        ).all()
        events = (
            await session.execute(
                select(func.count()).select_from(AuditEvent).filter_by(organisation_id=acme)
            )
        ).scalar()
    return tuple(enrolments), tuple(certificates_of_acme), events


async def set_up_acme(slack: SlackHarness) -> str:
    """Acme enrols #security and #payroll, Mona manages #payroll, Lars is overdue and certified."""
    await ask(slack, ADMIN, "enroll <#C0SECURE|security> deadline=2099-01-01", TEAM)
    await ask(slack, ADMIN, "enroll <#C0PAYROL|payroll>", TEAM)
    assert "Mona Manager now follows" in await ask(
        slack, ADMIN, f"manager <@{MANAGER}|mona> <#C0PAYROL|payroll>", TEAM
    )
    for user in (ADMIN, LEARNER, "UDANE001", MANAGER):
        dm = slack.fake.dm_channel(TEAM, user)
        await slack.until(lambda dm=dm: slack.waiting(dm))
    async with slack.app.db.session() as session:
        lars = select(Person.id).where(Person.platform_user_id == LEARNER)
        await session.execute(
            update(Enrolment).where(Enrolment.person_id.in_(lars)).values(deadline=date(2020, 1, 1))
        )
    admin_view = await ask(slack, ADMIN, "status", TEAM)
    assert "Enrolled 4" in admin_view and "overdue 1" in admin_view  # what must not leak
    return await certify(slack.app.coach, "slack", TEAM, LEARNER)


def refused_or_own(reply: str, command: str) -> bool:
    word = command.split()[0]
    return (
        "only admins can use" in reply
        or "only your own data" in reply
        or f"I don't know “{word}”" in reply
        or word == "status"
    )


async def test_slack_every_command_refused_or_confined_to_the_askers_organisation(
    two_slack: SlackHarness,
) -> None:
    slack = two_slack
    code = await set_up_acme(slack)
    before = await acme_state(slack.app.db, "slack", TEAM)
    secrets = (*ACME_SECRETS, "Enrolled 4", code)

    for user in (LEARNER, MANAGER):  # a learner, and the manager of another team
        for command in slack_commands(code):
            reply = await ask(slack, user, command, TEAM)
            assert refused_or_own(reply, command), (user, command, reply)
            shown = reply.replace(code, "CODE")  # the code they typed, echoed
            leaked = [s for s in secrets if s in shown and s != "Lars Learner"]
            assert not leaked, (user, command, reply)
            if user == MANAGER:
                assert "Lars" not in reply and "*security*" not in reply, (command, reply)
    mona = await ask(slack, MANAGER, "status", TEAM)
    assert "*payroll*: enrolled 2" in mona  # her own team's figures she does see

    rival_files = len([f for f in slack.fake.files if f["team_id"] == RIVAL])
    for command in slack_commands(code):  # an admin of another workspace
        reply = await ask(slack, RIVAL_ADMIN, command, RIVAL)
        leaked = [s for s in secrets if s in reply.replace(code, "CODE")]  # their own words
        assert not leaked, (command, reply)
    # Another organisation's certificate is answered exactly as a code that does not exist.
    unknown = certificates.new_code()
    theirs = await ask(slack, RIVAL_ADMIN, f"revoke {code} x", RIVAL)
    nothing = await ask(slack, RIVAL_ADMIN, f"revoke {unknown} x", RIVAL)
    assert "There is no certificate" in theirs
    assert theirs.replace(code, "CODE") == nothing.replace(unknown, "CODE")
    assert "Enrolled 0" in await ask(slack, RIVAL_ADMIN, "status", RIVAL)

    await slack.event(
        {"type": "app_home_opened", "user": RIVAL_ADMIN, "tab": "home", "channel": "D0R"},
        "EvRivalHome",
        team=RIVAL,
    )
    home = await slack.until(
        lambda: (
            [v for v in slack.fake.views if v.get("team_id") == RIVAL]
            or [v for v in slack.fake.views if RIVAL_ADMIN in json.dumps(v)]
        )
    )
    shown = json.dumps(home[-1], ensure_ascii=False)
    assert "Enrolled 0" in shown and not [s for s in secrets if s in shown]

    uploads = [f for f in slack.fake.files if f["team_id"] == RIVAL][rival_files:]
    for upload in uploads:
        content = (upload.get("content") or b"").decode("utf-8", "replace")
        assert not [s for s in secrets if s in content], upload["filename"]
    rival_messages = [m for m in slack.fake.messages if m.get("team_id") == RIVAL]
    assert not [s for m in rival_messages for s in secrets if s in json.dumps(m)]

    assert await acme_state(slack.app.db, "slack", TEAM) == before
    assert certificates.status(await certificates.find(slack.app.db, code)) == "valid"
    acme = await slack.app.coach.organisation("slack", TEAM, "Acme")
    assert {e.actor for e in await audit.events(slack.app.db, acme.id)} == {ADMIN}


# -- Teams ------------------------------------------------------------------------------------

PAYROLL = "19:payroll-acme@thread.tacv2"
RIVAL_TEAM = "19:general-rival@thread.tacv2"
MIA = {"id": "29:1mia", "aadObjectId": "aad-mia", "name": "Mia Member", "userRole": "user"}
BEA = {"id": "29:1bea", "aadObjectId": "aad-bea", "name": "Bea Boss", "userRole": "owner"}
BOB = {"id": "29:1bob", "aadObjectId": "aad-bob", "name": "Bob Rival", "userRole": "user"}
TEAMS_SECRETS = ("Ada Lovelace", "Grace Hopper", "Olga Owner", "Mia Member", "Enrolled 3")


def in_team(member: dict[str, Any], url: str, text: str, team: str, tenant: str) -> dict:
    activity = in_channel(member, url, text, tenant)
    activity["conversation"]["id"] = team
    activity["channelData"]["team"] = {"id": team}
    activity["channelData"]["channel"] = {"id": team}
    return activity


def teams_commands(code: str) -> list[str]:
    return [
        "status",
        "enroll track=management",
        "unenroll",
        "manager",
        "remind",
        f"revoke {code} taken over",
        "my-data",
        "report",
    ]


@pytest.fixture
async def two_tenants(
    course: Course, db: Database, settings: Settings
) -> AsyncIterator[TeamsHarness]:
    fake = FakeConnector()
    await fake.start()
    fake.add_team(
        in_channel(OWNER, "", "")["channelData"]["team"]["id"], TENANT, [OWNER, ADA, GRACE]
    )
    fake.add_team(PAYROLL, TENANT, [OWNER, ADA, MIA])
    fake.add_team(RIVAL_TEAM, OTHER_TENANT, [BEA, BOB])
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


def replies_in(teams: TeamsHarness, conversation_id: str, since: int) -> list[str]:
    return [
        json.dumps(s["activity"], ensure_ascii=False)
        for s in teams.fake.sends[since:]
        if s["conversation_id"] == conversation_id
    ]


async def test_teams_every_command_refused_or_confined_to_the_askers_organisation(
    two_tenants: TeamsHarness,
) -> None:
    teams, url = two_tenants, two_tenants.fake.url
    general = in_channel(OWNER, url, "")["conversation"]["id"]
    assert await teams.post(in_team(OWNER, url, "enroll", general, TENANT)) == 201
    assert await teams.post(in_team(OWNER, url, "enroll", PAYROLL, TENANT)) == 201
    command = in_team(OWNER, url, f"manager <at>{ADA['name']}</at>", PAYROLL, TENANT)
    command["entities"].append(mention(ADA))
    assert await teams.post(command) == 201
    code = await certify(teams.app.coach, "teams", TENANT, GRACE["aadObjectId"])
    before = await acme_state(teams.app.db, "teams", TENANT)
    secrets = (*TEAMS_SECRETS, code)

    # Grace, a learner; Ada, manager of payroll (not of general): in Acme's General channel.
    for member, own_name in ((GRACE, "Grace Hopper"), (ADA, "Ada Lovelace")):
        for text in teams_commands(code):
            since = len(teams.fake.sends)
            activity = in_team(member, url, text, general, TENANT)
            if text == "manager":
                activity["text"] += f" <at>{member['name']}</at>"
                activity["entities"].append(mention(member))
            assert await teams.post(activity) == 201
            (reply,) = replies_in(teams, general, since)
            word = text.split()[0]
            if word in ("enroll", "unenroll", "manager", "remind", "revoke", "report"):
                refused = ("only admins can use", "I don't know", "Awareness Coach — commands")
                assert any(words in reply for words in refused), (text, reply)
            leaked = [s for s in secrets if s in reply and s != own_name]
            assert not leaked, (member["name"], text, reply)

    for text in teams_commands(code):
        since = len(teams.fake.sends)
        activity = in_team(BEA, url, text, RIVAL_TEAM, OTHER_TENANT)
        if text == "manager":
            activity["text"] += f" <at>{ADA['name']}</at>"
            activity["entities"].append(mention(ADA))
        assert await teams.post(activity) in (200, 201)
        sent = [
            json.dumps(s, ensure_ascii=False).replace(code, "CODE")  # the code they typed
            for s in teams.fake.sends[since:]
        ]
        leaked = [s for s in secrets if any(s in reply for reply in sent)]
        assert not leaked, (text, sent)

    async def revoke_reply(some_code: str) -> str:
        since = len(teams.fake.sends)
        await teams.post(in_team(BEA, url, f"revoke {some_code} x", RIVAL_TEAM, OTHER_TENANT))
        card = teams.fake.sends[since:][0]["activity"]["attachments"][0]["content"]
        return card["body"][0]["text"].replace(some_code, "CODE")

    theirs, unknown = await revoke_reply(code), await revoke_reply(certificates.new_code())
    assert "There is no certificate" in theirs and theirs == unknown

    rival_chat = "a:rival-bea"
    since = len(teams.fake.sends)
    mine = personal(BEA, url, rival_chat, text="my-data")
    mine["conversation"]["tenantId"] = OTHER_TENANT
    mine["channelData"]["tenant"]["id"] = OTHER_TENANT
    assert await teams.post(mine) == 201
    answers = replies_in(teams, rival_chat, since)
    assert len(answers) == 1 and "/downloads/" in answers[0]
    for reply in answers:
        assert not [s for s in secrets if s in reply]
        if "/downloads/" in reply:
            link = reply.rsplit("/downloads/", 1)[1].split('"')[0]  # the card, not its summary
            async with teams.session.get(f"{teams.url}/downloads/{link}") as response:
                body = await response.text()
            assert "Bea Boss" in body
            assert not [s for s in secrets if s in body]

    assert await acme_state(teams.app.db, "teams", TENANT) == before
    assert certificates.status(await certificates.find(teams.app.db, code)) == "valid"
