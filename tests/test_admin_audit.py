"""Every admin action in Slack and Teams lands in the audit log: who, what, when; and revoke,
my-data as a learner sees them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import audit
from bot import certificate as certificates
from bot.coach import Coach
from bot.store.models import Certificate, Enrolment, Organisation, Person
from tests import test_teams
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness
from tests.test_slack_admin import reply_to
from tests.test_teams import ADA, GRACE, OWNER, TENANT, TeamsHarness, in_channel, mention, personal

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
teams = test_teams.teams  # the Teams fixture: the real server and a fake Bot Connector


async def certify(coach: Coach, platform: str, organisation: str, user_id: str) -> str:
    """A certificate, as the course issues it, for an enrolled person; returns its code."""
    async with coach.db.session() as session:
        query = (
            select(Enrolment)
            .join(Person, Person.id == Enrolment.person_id)
            .join(Organisation, Organisation.id == Person.organisation_id)
            .where(
                Organisation.platform == platform,
                Organisation.external_id == organisation,
                Person.platform_user_id == user_id,
            )
        )
        enrolment = (await session.execute(query)).scalar_one()
        person = await session.get_one(Person, enrolment.person_id)
        now = datetime.now(UTC)
        code = certificates.new_code()
        session.add(
            Certificate(
                code=code,
                enrolment_id=enrolment.id,
                organisation_id=enrolment.organisation_id,
                person_id=person.id,
                learner_name=person.name,
                organisation_name="Acme",
                course_title="NIS2 Awareness",
                course_version="1.0.0",
                content_hash="0" * 64,
                language="en",
                track="core",
                score=1.0,
                pass_mark=0.8,
                issued_at=now,
                expires_at=now + timedelta(days=365),
            )
        )
    return code


async def organisation_id(coach: Coach, platform: str, external_id: str) -> int:
    return (await coach.organisation(platform, external_id, external_id)).id


async def test_slack_admin_actions_are_recorded_with_who_what_and_when(
    slack: SlackHarness,
) -> None:
    started = datetime.now(UTC)
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> track=technical deadline=2099-01-01")
    await reply_to(slack, ADMIN, f"manager <@{LEARNER}|lars> <#C0SECURE|security>")
    await reply_to(slack, ADMIN, "remind")
    await reply_to(slack, ADMIN, "unenroll <@UDANE001|dorthe>")
    code = await certify(slack.app.coach, "slack", TEAM, LEARNER)
    reply = await reply_to(slack, ADMIN, f"revoke {code.lower()} issued to the wrong person")
    assert f"Certificate {code} is revoked" in reply
    assert "already revoked" in await reply_to(slack, ADMIN, f"revoke {code} again")
    assert "Usage: revoke CODE" in await reply_to(slack, ADMIN, f"revoke {code}")
    await reply_to(slack, LEARNER, "remind")  # refused: not an admin, not recorded

    events = await audit.events(slack.app.db, await organisation_id(slack.app.coach, "slack", TEAM))
    seen = [(e.actor, e.action, e.target) for e in events]
    assert seen == [
        (ADMIN, "enrol", "#security"),
        (ADMIN, "manager", LEARNER),
        (ADMIN, "remind", None),
        (ADMIN, "unenrol", "@UDANE001"),  # people by id, never by name
        (ADMIN, "revoke", code),
    ]
    enrol, manager, remind, unenrol, revoke = (e.detail for e in events)
    assert enrol["enrolled"] == 3 and enrol["skipped"] == 3 and enrol["track"] == "technical"
    assert enrol["deadline"] == "2099-01-01"
    assert manager == {"teams": ["#security"]} and list(remind) == ["reminded"]
    assert unenrol == {"unenrolled": 1} and revoke == {"reason": "issued to the wrong person"}
    assert all(started <= e.at <= datetime.now(UTC) for e in events)
    stored = await certificates.find(slack.app.db, code)
    assert certificates.status(stored) == "revoked"


async def test_slack_my_data_goes_to_the_learners_dm_only(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security>")
    dm = slack.fake.dm_channel(TEAM, LEARNER)
    await slack.until(lambda: slack.waiting(dm))  # lesson one has arrived
    reply = await reply_to(slack, LEARNER, "my-data")
    assert "I've sent you everything I store about you" in reply
    (upload,) = slack.fake.files
    assert upload["channel_id"] == slack.fake.dm_channel(TEAM, LEARNER)
    data = json.loads(upload["content"])
    assert data["person"]["name"] == "Lars Learner" and data["enrolments"][0]["deliveries"]
    assert "Alma" not in upload["content"].decode()
    reply = await reply_to(slack, LEARNER, f"my-data <@{ADMIN}|alma>")
    assert "only your own data" in reply and len(slack.fake.files) == 1
    assert "I don't store anything about you" in await reply_to(slack, "UGUEST01", "my data")

    event = {
        "type": "message",
        "channel_type": "im",
        "user": LEARNER,
        "text": "mine data",
        "channel": dm,
        "ts": "9.1",
        "event_ts": "9.1",
    }
    await slack.event(event, "EvMyData1")
    await slack.until(lambda: len(slack.fake.files) == 2)
    assert slack.fake.files[1]["channel_id"] == dm


def card_text(teams_harness: TeamsHarness, conversation_id: str) -> str:
    sends = [s for s in teams_harness.fake.sends if s["conversation_id"] == conversation_id]
    return sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]


async def test_teams_admin_actions_are_recorded_with_who_what_and_when(
    teams: TeamsHarness,
) -> None:
    started = datetime.now(UTC)
    url = teams.fake.url
    assert await teams.post(in_channel(OWNER, url, "enroll track=management")) == 201
    command = in_channel(OWNER, url, f"manager <at>{ADA['name']}</at>")
    command["entities"].append(mention(ADA))
    assert await teams.post(command) == 201
    assert await teams.post(in_channel(OWNER, url, "remind")) == 201
    code = await certify(teams.app.coach, "teams", TENANT, GRACE["aadObjectId"])
    assert await teams.post(in_channel(OWNER, url, f"revoke {code} left before finishing"))
    assert f"Certificate {code} is revoked" in card_text(
        teams, in_channel(OWNER, url, "")["conversation"]["id"]
    )
    assert await teams.post(in_channel(OWNER, url, "unenroll")) == 201
    assert await teams.post(in_channel(ADA, url, "remind")) == 201  # refused, not recorded

    events = await audit.events(
        teams.app.db, await organisation_id(teams.app.coach, "teams", TENANT)
    )
    team = in_channel(OWNER, url, "")["channelData"]["team"]["id"]
    actor = OWNER["aadObjectId"]
    assert [(e.actor, e.action, e.target) for e in events] == [
        (actor, "enrol", team),
        (actor, "manager", ADA["aadObjectId"]),
        (actor, "remind", None),
        (actor, "revoke", code),
        (actor, "unenrol", team),
    ]
    assert events[0].detail["enrolled"] == 3 and events[0].detail["track"] == "management"
    assert events[3].detail == {"reason": "left before finishing"}
    assert events[4].detail == {"unenrolled": 3}
    assert all(started <= e.at <= datetime.now(UTC) for e in events)


async def test_teams_my_data_is_a_link_for_the_asker_alone(teams: TeamsHarness) -> None:
    url = teams.fake.url
    await teams.post(in_channel(OWNER, url, "enroll"))
    chat = teams.chat_with(ADA)
    assert await teams.post(personal(ADA, url, chat, text="my-data")) == 201
    reply = card_text(teams, chat)
    assert "only for you" in reply
    link = reply.rsplit(" ", 1)[1]
    local = teams.url + "/downloads/" + link.split("/downloads/")[1]
    async with teams.session.get(local) as response:
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
        data = json.loads(await response.read())
    assert data["person"]["name"] == "Ada Lovelace"
    assert "Grace" not in json.dumps(data) and "Olga" not in json.dumps(data)
    body, signature = local.rsplit("/", 1)[1].split(".")
    other = "A" if body[3] != "A" else "B"
    async with teams.session.get(local.replace(body, body[:3] + other + body[4:])) as response:
        assert response.status == 404

    assert await teams.post(in_channel(ADA, url, "my-data")) == 201
    channel = in_channel(ADA, url, "")["conversation"]["id"]
    assert "personal chat" in card_text(teams, channel)
