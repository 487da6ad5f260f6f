"""Turning digests on and off in Slack and Teams, refusals for non-admins, and digests delivered
through each platform: Block Kit plus an uploaded PNG in Slack, a card with the image in Teams."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot import audit
from bot.adapters.teams.app import TeamsAdapter
from bot.digest import Digests
from bot.server import SLACK_KEY
from bot.store.models import Organisation, Person
from tests.fakes.teams_auth import TeamsConfig, authentication_for
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness
from tests.test_slack_admin import reply_to
from tests.test_teams import (
    ADA,
    APP_ID,
    OWNER,
    PASSWORD,
    TeamsHarness,
    in_channel,
    personal,
    teams,  # noqa: F401  (the fixture)
)
from tests.test_teams import TEAM as CHANNEL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PNG = b"\x89PNG\r\n\x1a\n"


async def person(db, user_id: str) -> Person:
    async with db.session() as session:
        query = select(Person).where(Person.platform_user_id == user_id)
        return (await session.execute(query)).scalar_one()


async def test_slack_manager_turns_digest_off_and_on(slack: SlackHarness) -> None:
    assert "don't manage a team yet" in await reply_to(slack, LEARNER, "digest off")
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> deadline=2099-01-01")
    await reply_to(slack, ADMIN, f"manager <@{LEARNER}|lars> <#C0SECURE|security>")

    assert "Your weekly digest is off" in await reply_to(slack, LEARNER, "digest off")
    lars = await person(slack.app.db, LEARNER)
    assert lars.digest_off is True
    today = datetime.now(UTC).date()
    assert await Digests(slack.app.coach).for_manager(lars.id, today) == []
    assert "Your weekly digest is on" in await reply_to(slack, LEARNER, "digest on")
    assert len(await Digests(slack.app.coach).for_manager(lars.id, today)) == 1

    reply = await reply_to(slack, LEARNER, "digest sideways")
    assert reply.startswith("Usage: digest off|on")
    assert "digest org on|off" in await reply_to(slack, LEARNER, "help")


async def test_slack_only_admins_change_the_organisation_digest(slack: SlackHarness) -> None:
    assert "only admins can use “digest org”" in await reply_to(slack, LEARNER, "digest org on")
    assert "only admins can use “ranking”" in await reply_to(slack, LEARNER, "ranking on")
    assert "Usage: ranking on|off" in await reply_to(slack, ADMIN, "ranking maybe")
    assert "organisation's weekly digest every Monday" in await reply_to(
        slack, ADMIN, "digest org on"
    )
    assert "ranked by completion" in await reply_to(slack, ADMIN, "ranking on")
    alma = await person(slack.app.db, ADMIN)
    async with slack.app.db.session() as session:
        organisation = (await session.execute(select(Organisation))).scalar_one()
    assert organisation.settings["org_digest_to"] == [alma.id]
    assert organisation.settings["rank_teams"] is True
    events = await audit.events(slack.app.db, organisation.id)
    assert [(e.actor, e.action) for e in events] == [(ADMIN, "digest"), (ADMIN, "settings")]


async def test_slack_digest_is_posted_with_its_chart_uploaded(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> deadline=2099-01-01")
    await reply_to(slack, ADMIN, f"manager <@{LEARNER}|lars> <#C0SECURE|security>")
    lars = await person(slack.app.db, LEARNER)
    messages = await Digests(slack.app.coach).for_manager(lars.id, datetime.now(UTC).date())
    adapter = slack.web_app[SLACK_KEY]
    client = await adapter.client_for(TEAM)
    before = len(slack.fake.calls_to("chat.postMessage"))
    await adapter.send(client, LEARNER, messages, adapter.language("en"), LEARNER)

    posts = slack.fake.calls_to("chat.postMessage")[before:]
    assert len(posts) == 1
    assert "Weekly digest: security" in str(posts[0].params["blocks"])
    assert "Enrolled: 3 (+3 since last week)" in str(posts[0].params["blocks"])
    [chart] = slack.fake.files
    assert chart["content"].startswith(PNG) and chart["filename"].endswith(".png")
    assert chart["channel_id"] == slack.fake.dm_channel(TEAM, LEARNER)


async def test_teams_digest_commands_and_refusals(teams: TeamsHarness) -> None:  # noqa: F811
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    chat = teams.chat_with(ADA)

    def last_reply(conversation: str) -> str:
        sends = [s for s in teams.fake.sends if s["conversation_id"] == conversation]
        return sends[-1]["activity"]["attachments"][0]["content"]["body"][0]["text"]

    await teams.post(personal(ADA, teams.fake.url, chat, text="digest off"))
    assert "don't manage a team yet" in last_reply(chat)
    command = in_channel(OWNER, teams.fake.url, f"manager <at>{ADA['name']}</at>")
    command["entities"].append(
        {
            "type": "mention",
            "text": f"<at>{ADA['name']}</at>",
            "mentioned": {"id": ADA["id"], "name": ADA["name"]},
        }
    )
    assert await teams.post(command) == 201
    await teams.post(personal(ADA, teams.fake.url, chat, text="digest off"))
    assert "Your weekly digest is off" in last_reply(chat)
    ada = await person(teams.app.db, ADA["aadObjectId"])
    assert ada.digest_off is True
    await teams.post(personal(ADA, teams.fake.url, chat, text="digest on"))
    assert "Your weekly digest is on" in last_reply(chat)

    await teams.post(in_channel(ADA, teams.fake.url, "ranking on"))
    assert "only admins can use “ranking”" in last_reply(CHANNEL)
    await teams.post(personal(ADA, teams.fake.url, chat, text="digest org on"))
    assert "only admins can use “digest org”" in last_reply(chat)
    await teams.post(in_channel(OWNER, teams.fake.url, "digest org on"))
    assert "organisation's weekly digest" in last_reply(CHANNEL)
    await teams.post(in_channel(OWNER, teams.fake.url, "ranking on"))
    async with teams.app.db.session() as session:
        organisation = (await session.execute(select(Organisation))).scalar_one()
    owner = await person(teams.app.db, OWNER["aadObjectId"])
    assert organisation.settings["org_digest_to"] == [owner.id]
    assert organisation.settings["rank_teams"] is True


async def test_teams_digest_arrives_as_a_card_with_the_chart(teams: TeamsHarness) -> None:  # noqa: F811
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    ada = await person(teams.app.db, ADA["aadObjectId"])
    async with teams.app.db.session() as session:
        organisation = (await session.execute(select(Organisation))).scalar_one()
    digests = Digests(teams.app.coach)
    await digests.set_org_digest(organisation.id, ada.id, True, actor="test")
    messages = await digests.for_admin(ada.id, datetime.now(UTC).date())
    adapter = TeamsAdapter(teams.app, authentication_for(teams.fake, TeamsConfig(APP_ID, PASSWORD)))
    before = len(teams.fake.sends)
    await adapter.send_to(ada.id, messages, adapter.language("en"))
    [sent] = teams.fake.sends[before:]
    card = sent["activity"]["attachments"][0]["content"]
    assert "Weekly digest for the whole organisation" in card["body"][0]["text"]
    [image] = [element for element in card["body"] if element["type"] == "Image"]
    assert base64.b64decode(image["url"].split(",", 1)[1]).startswith(PNG)
