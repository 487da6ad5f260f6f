"""`/nis2 report` in Slack: the evidence pack lands in the admin's DM, and only an admin's."""

from __future__ import annotations

import csv
import io

import pytest
from pypdf import PdfReader

from bot import audit, evidence
from tests.evidence_data import SECRET, work
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness
from tests.test_slack_admin import reply_to

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_report_is_uploaded_to_the_admins_dm(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security> track=management")
    await slack.until(lambda: slack.current(slack.fake.dm_channel(TEAM, LEARNER)))
    learner = await slack.app.coach.find_learner("slack", TEAM, LEARNER)
    await work(slack.app.coach, slack.app.course, learner[1].id, 3)

    assert (
        await reply_to(slack, ADMIN, "report")
        == "Your evidence pack is waiting in our direct messages."
    )
    files = await slack.until(lambda: len(slack.fake.files) == 2 and slack.fake.files)
    dm = slack.fake.dm_channel(TEAM, ADMIN)
    assert {file["channel_id"] for file in files} == {dm}
    assert [file["filename"].rsplit(".", 1)[1] for file in files] == ["csv", "pdf"]
    assert files[0]["initial_comment"] == "NIS2 evidence pack for Acme"

    rows = list(csv.reader(io.StringIO(files[0]["content"].decode("utf-8-sig"))))
    assert sorted(row[0] for row in rows[1:]) == ["Alma Admin", "Dorthe Dansk", "Lars Learner"]
    assert {row[1] for row in rows[1:]} == {"security"}
    lars = next(row for row in rows if row[0] == "Lars Learner")
    column = {name: index for index, name in enumerate(evidence.COLUMNS)}
    assert lars[column["lessons_done"]] == "3"
    assert lars[column["reflections"]] == "yes"  # a reflection was written: only "yes"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(files[1]["content"])).pages)
    assert "Lars Learner" in text and SECRET not in text
    assert SECRET not in files[0]["content"].decode("utf-8-sig")

    organisation = await evidence.find_organisation(slack.app.db, TEAM)
    events = [e for e in await audit.events(slack.app.db, organisation.id) if e.action == "report"]
    assert [(e.actor, e.detail["formats"]) for e in events] == [(ADMIN, "csv,pdf")]


async def test_report_for_one_channel_in_one_format(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security>")
    await reply_to(slack, ADMIN, "report pdf <#C0SECURE|security>")
    files = await slack.until(lambda: slack.fake.files)
    assert len(files) == 1 and files[0]["filename"].endswith(".pdf")
    assert "security" in files[0]["filename"]

    reply = await reply_to(slack, ADMIN, "report <#C0NOPE01|marketing>")
    assert reply == "#marketing hasn't been enrolled, so there's nothing to report for it yet."
    assert await reply_to(slack, ADMIN, "report xls") == "Usage: report [csv|pdf] [#channel]"
    assert len(slack.fake.files) == 1


async def test_a_learner_cannot_get_the_report(slack: SlackHarness) -> None:
    await reply_to(slack, ADMIN, "enroll <#C0SECURE|security>")
    reply = await reply_to(slack, LEARNER, "report")
    assert reply.startswith("Sorry — only admins can use “report”")
    assert not slack.fake.files
    assert not slack.fake.calls_to("files.getUploadURLExternal")
