"""One learner takes the whole course in Slack, from an admin's /nis2 enroll to the PDF upload."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader

from bot.lessons.course import Course
from tests.slack_harness import ADMIN, LEARNER, TEAM, SlackHarness


def question_of(course: Course, elements: list[dict[str, Any]]) -> tuple[str, str, Any] | None:
    """(context, question id, question) when the buttons answer a question."""
    first = elements[0]
    if not first["action_id"].startswith("nis2.answer."):
        return None
    context, question_id, _ = first["value"].split("|")
    return context, question_id, course.language("en").question(question_id)


async def take_course(slack: SlackHarness, course: Course, user: str) -> dict[str, Any]:
    """Click through every lesson like a learner; fail the final quiz once, then pass."""
    dm = slack.fake.dm_channel(TEAM, user)
    failed_once = False
    for _ in range(600):
        # After the last answer the certificate upload may come after the last buttons.
        await slack.until(lambda: slack.fake.files or slack.waiting(dm))
        if slack.fake.files:
            return slack.fake.files[-1]
        message, elements = await slack.until(lambda: slack.waiting(dm))
        seen = len(slack.fake.messages), len(slack.fake.updates)
        views = len(slack.fake.views)
        found = question_of(course, elements)
        if found is not None:
            context, _, question = found
            if "quiz" in context and not failed_once:
                wanted = next(o.id for o in question.options if not o.correct)
            else:
                wanted = question.correct_option.id
            button = next(e for e in elements if e["value"].endswith(f"|{wanted}"))
        else:
            verbs = [e["action_id"].split(".")[1] for e in elements]
            order = ("reflect", "confirm_checklist", "retry_quiz", "next")
            verb = next(v for v in order if v in verbs)
            button = elements[verbs.index(verb)]
            failed_once = failed_once or verb == "retry_quiz"
        status, _, elapsed = await slack.click(user, message, button)
        assert status == 200 and elapsed < 3
        if button["action_id"].startswith("nis2.reflect."):
            view = await slack.until(
                lambda n=views: len(slack.fake.views) > n and slack.fake.views[-1]
            )
            values = {
                "reflection": {
                    "text": {
                        "type": "plain_text_input",
                        "value": "I will call back on a known number.",
                    }
                }
            }
            await slack.submit(user, {**view["view"], "id": view["view_id"]}, values)
        await slack.until(
            lambda seen=seen: (len(slack.fake.messages), len(slack.fake.updates)) != seen
        )
    raise AssertionError("the course did not end")


async def test_whole_course_in_slack(slack: SlackHarness, course: Course) -> None:
    status, body, elapsed = await slack.command(
        ADMIN, "enroll <#C0SECURE|security> deadline=2099-12-31"
    )
    assert status == 200 and elapsed < 3
    assert "Working on it" in body
    summary = await slack.until(lambda: slack.fake.responses and slack.fake.responses[-1])
    assert "Enrolled 3" in summary["text"], summary
    assert "1 bots" in summary["text"] and "1 deactivated" in summary["text"]
    assert "1 guests" in summary["text"]

    upload = await take_course(slack, course, LEARNER)
    pdf = PdfReader(io.BytesIO(upload["content"]))
    text = "".join(page.extract_text() for page in pdf.pages)
    assert "Lars Learner" in text
    assert upload["channel_id"] == slack.fake.dm_channel(TEAM, LEARNER)

    certificate = await slack.app.coach.certificate_of(
        (await slack.app.coach.find_learner("slack", TEAM, LEARNER))[1].id
    )
    assert certificate.code in text
    dane_dm = slack.fake.dm_channel(TEAM, "UDANE001")
    welcome = next(m for m in slack.fake.messages if m["channel"] == dane_dm)
    assert "Din organisation har tilmeldt dig" in welcome["text"]
