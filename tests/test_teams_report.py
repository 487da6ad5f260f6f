"""`report` in Teams: signed links in the owner's personal chat, working once, forged ones not."""

from __future__ import annotations

import csv
import io
import re

import pytest

from bot import audit, evidence
from tests.test_teams import ADA, OWNER, TENANT, TeamsHarness, in_channel, personal, teams  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LINK = re.compile(r"\]\((https?://[^)]+/downloads/[^)]+)\)")


def last_text(harness: TeamsHarness, conversation_id: str) -> str:
    card = harness.cards_in(conversation_id)[-1][1]
    return "\n".join(block.get("text", "") for block in card["body"])


def local(harness: TeamsHarness, url: str) -> str:
    return harness.url + "/downloads/" + url.split("/downloads/", 1)[1]


async def fetch(harness: TeamsHarness, url: str) -> tuple[int, bytes, str]:
    async with harness.session.get(url) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_owner_gets_links_in_the_personal_chat(teams: TeamsHarness) -> None:  # noqa: F811
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    assert await teams.post(in_channel(OWNER, teams.fake.url, "report")) == 201
    channel_reply = teams.fake.sends[-1]
    assert channel_reply["conversation_id"].startswith("19:")
    assert "waiting in our direct messages" in str(channel_reply["activity"])

    text = last_text(teams, teams.chat_with(OWNER))
    assert text.startswith("Your NIS2 evidence pack for")
    csv_url, pdf_url = LINK.findall(text)
    status, body, content_type = await fetch(teams, local(teams, csv_url))
    assert status == 200 and content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert sorted(row[0] for row in rows[1:]) == ["Ada Lovelace", "Grace Hopper", "Olga Owner"]
    status, body, content_type = await fetch(teams, local(teams, pdf_url))
    assert status == 200 and body.startswith(b"%PDF") and content_type == "application/pdf"

    token = local(teams, csv_url).rsplit("/", 1)[1]
    body_part, signature = token.split(".")
    forged = body_part + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert (await fetch(teams, f"{teams.url}/downloads/{forged}"))[0] == 404

    organisation = await evidence.find_organisation(teams.app.db, TENANT)
    events = [e for e in await audit.events(teams.app.db, organisation.id) if e.action == "report"]
    assert [(e.actor, e.detail["formats"]) for e in events] == [(OWNER["aadObjectId"], "csv,pdf")]


async def test_learners_are_refused_everywhere(teams: TeamsHarness) -> None:  # noqa: F811
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    sends = len(teams.fake.sends)
    assert await teams.post(in_channel(ADA, teams.fake.url, "report")) == 201
    assert "only admins can use “report”" in str(teams.fake.sends[-1]["activity"])
    chat = teams.chat_with(ADA)
    assert await teams.post(personal(ADA, teams.fake.url, chat, text="report pdf")) == 201
    assert "only admins can use “report”" in last_text(teams, chat)
    assert len(teams.fake.sends) == sends + 2
    assert "/downloads/" not in str(teams.fake.sends[sends:])


async def test_an_organisation_admin_gets_the_whole_tenant_in_personal_chat(
    teams: TeamsHarness,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.settings import Settings
    from tests.test_teams import GRACE

    admins = frozenset({GRACE["aadObjectId"]})
    monkeypatch.setattr(Settings, "aad_admins", property(lambda _settings: admins))
    assert await teams.post(in_channel(OWNER, teams.fake.url, "enroll")) == 201
    organisation = await evidence.find_organisation(teams.app.db, TENANT)
    outsider = await teams.app.coach.person(organisation.id, "aad-nils", "Nils Nobody")
    await teams.app.coach.enrol(outsider.id)

    chat = teams.chat_with(GRACE)
    assert await teams.post(personal(GRACE, teams.fake.url, chat, text="report csv")) == 201
    (csv_url,) = LINK.findall(last_text(teams, chat))
    status, body, _ = await fetch(teams, local(teams, csv_url))
    names = sorted(row[0] for row in csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert status == 200 and "Nils Nobody" in names and "Ada Lovelace" in names

    assert await teams.post(in_channel(OWNER, teams.fake.url, "report csv")) == 201
    (team_url,) = LINK.findall(last_text(teams, teams.chat_with(OWNER)))
    body = (await fetch(teams, local(teams, team_url)))[1].decode("utf-8-sig")
    assert "Ada Lovelace" in body and "Nils Nobody" not in body
