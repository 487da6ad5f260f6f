"""Every message, modal and Home view the bot can produce for the shipped course fits Slack.

Built with slack_sdk's models (their validators run on to_dict) and checked
against the limits in PLATFORM-LIMITS.md that the models do not enforce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.slack import blocks
from bot.lessons.course import Course, Language, OrgProfile
from bot.lessons.messages import (
    Actions,
    CertificateCard,
    ChecklistCard,
    Choice,
    FeedbackCard,
    LessonCard,
    Message,
    ModuleProgress,
    ProgressCard,
    QuestionCard,
    QuizResult,
    ReflectionPrompt,
    Text,
)

# The longest details an organisation is likely to enter, to test the worst case.
LONG = OrgProfile(
    name="Nordisk Forsynings- og Infrastrukturselskab A/S (koncernens danske datterselskaber)",
    incident_contact="Koncernens døgnbemandede sikkerhedsvagt i Security Operations Center",
    incident_phone="+45 70 20 30 40 (tast 1 for sikkerhed)",
    incident_channel="#sikkerhed-hændelser-døgnvagt",
    helpdesk="IT Service Desk i Aarhus, lokal 4000, eller servicedesk@example.dk",
    password_manager="Bitwarden Enterprise (koncernens fælles boks)",
    ai_tool="Microsoft 365 Copilot med jeres arbejdskonto (ikke den private)",
    security_policy_url="https://intranet.example.dk/politikker/informationssikkerhed/2026/gældende",
    incident_procedure_url="https://intranet.example.dk/procedurer/hændelser/beredskabsplan/v7",
)
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
MESSAGE_CHARACTERS = 12_000  # below the undocumented ~13.2k msg_blocks_too_long total


def question_cards(lang: Language, question: Any, context: str) -> Iterator[Message]:
    options = tuple(
        Choice("answer", f"{context}|{question.id}|{o.id}", o.text) for o in question.options
    )
    heading = lang.s("question.recap", lesson="x" * 100) if context == "recap" else "Q"
    yield QuestionCard(question.id, context, heading, lang.fill(question.prompt, LONG), options)
    for option in question.options:
        text = (
            lang.fill(option.feedback, LONG)
            + "\n"
            + lang.s("feedback.right_answer", option=question.correct_option.text)
        )
        yield FeedbackCard(
            question.id,
            context,
            option.correct,
            "H",
            option.text,
            lang.s("feedback.already_answered") + "\n" + text,
            12,
            False,
        )


def every_message(course: Course, lang: Language) -> Iterator[Message]:
    progress = ModuleProgress("m1", "x" * 100, 3, 6)
    for module in lang.modules:
        for lesson in module.lessons:
            yield LessonCard(
                lesson.id,
                module.title,
                lesson.title,
                lang.fill(lesson.text, LONG),
                lang.s("lesson.tip"),
                lang.fill(lesson.tip, LONG),
                lesson.media.url if lesson.media else None,
                lesson.media.label if lesson.media else None,
                progress,
            )
            for question in lesson.questions:
                yield from question_cards(lang, question, "lesson")
                yield from question_cards(lang, question, "recap")
            if lesson.reflection:
                skip = Choice("skip_reflection", lesson.id, lang.s("button.skip_reflection"))
                yield ReflectionPrompt(
                    lesson.id,
                    lang.s("reflection.heading"),
                    lang.fill(lesson.reflection, LONG),
                    skip,
                )
    for question in lang.quiz_pool:
        yield from question_cards(lang, question, "quiz:99")
    items = tuple((item.id, lang.fill(item.text, LONG)) for item in lang.final_module.checklist)
    confirm = Choice("confirm_checklist", "", lang.s("button.confirm_checklist"))
    yield ChecklistCard(
        lang.final_module.title, lang.fill(lang.final_module.intro, LONG), items, confirm
    )
    tips = tuple(
        lang.s(
            "quiz.look_back",
            title=lang.lesson(q.topic).title,
            tip=lang.fill(lang.lesson(q.topic).tip, LONG),
        )
        for q in lang.quiz_pool
    )
    yield QuizResult(
        "H",
        lang.s("quiz.failed", correct=0, total=10, pass_mark=80),
        False,
        0,
        10,
        tips[: course.meta.final_quiz.draw],
    )
    yield CertificateCard(
        "H",
        lang.s("certificate.text", score=100, expires="31. december 2027"),
        "NIS2-" + "ABCD-" * 6 + "EF",
        "https://verify.example/certificates/X",
        Path("x.pdf"),
        datetime.now(UTC),
    )
    modules = tuple(ModuleProgress(m.id, m.title, 9, 9) for m in lang.modules)
    yield ProgressCard(
        lang.s("progress.heading"),
        modules,
        lang.s(
            "progress.summary",
            points=99999,
            streak=99,
            track="management",
            deadline="31. december 2027",
        ),
    )
    for key, value in lang.strings.items():
        if key.startswith(("lesson.", "admin.", "platform.", "status.", "error.")):
            choices = tuple(
                Choice(a, "", lang.s(f"button.{a}")) for a in ("next_lesson", "progress", "pause")
            )
            yield Actions(value, choices)
            yield Text(value)


def check_block(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "header":
        assert len(block["text"]["text"]) <= 150
    if kind == "section":
        assert len(block["text"]["text"]) <= 3000
    if kind == "context":
        assert len(block["elements"]) <= 10
    if kind == "actions":
        assert len(block["elements"]) <= 25
        for element in block["elements"]:
            assert len(element["action_id"]) <= 255
            if element["type"] == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000


@pytest.mark.parametrize("code", ["en", "da"])
def test_every_message_fits_slack(course: Course, code: str) -> None:
    lang = course.language(code)
    count = 0
    for message in every_message(course, lang):
        payload = blocks.render(message, lang)
        assert payload.text.strip(), f"no fallback text for {message!r}"
        assert len(payload.blocks) <= MESSAGE_BLOCKS
        assert len(json.dumps(payload.blocks, ensure_ascii=False)) < MESSAGE_CHARACTERS * 2
        assert sum(len(json.dumps(b, ensure_ascii=False)) for b in payload.blocks) > 0
        visible = sum(len(b.get("text", {}).get("text", "")) for b in payload.blocks)
        assert visible <= MESSAGE_CHARACTERS, message
        for block in payload.blocks:
            check_block(block)
        count += 1
    assert count > 300


@pytest.mark.parametrize("code", ["en", "da"])
def test_modals_and_home_fit_slack(course: Course, code: str) -> None:
    lang = course.language(code)
    views = [blocks.settings_modal(lang, LONG)]
    for module in lang.modules:
        for lesson in module.lessons:
            if lesson.reflection:
                meta = {"channel": "D" * 11, "ts": "1700000000.000100"}
                views.append(
                    blocks.reflection_modal(
                        lang, lesson.id, lang.fill(lesson.reflection, LONG), meta
                    )
                )
    progress = ProgressCard(
        "H", tuple(ModuleProgress(m.id, m.title, 1, 5) for m in lang.modules), "summary"
    )
    learner = blocks.progress_blocks(progress) + blocks.sections("x" * 500)
    admin = blocks.admin_home_blocks(lang, "y" * 200, LONG)
    views.append(blocks.home_view(lang, learner, admin, [("da", "Dansk"), ("en", "English")]))
    for view in views:
        data = view.to_dict()  # runs slack_sdk's validators
        assert 1 <= len(data["blocks"]) <= VIEW_BLOCKS
        assert len(json.dumps(data)) < 250_000
        if data["type"] == "modal":
            assert len(data["title"]["text"]) <= 24
            assert len(data.get("private_metadata", "")) <= 3000
        for block in data["blocks"]:
            check_block(block)
