"""Every message the coach can produce for the shipped course, for the renderers' tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    security_policy_url="https://intranet.example.dk/politikker/sikkerhed/2026/gældende-udgave",
    incident_procedure_url="https://intranet.example.dk/procedurer/hændelser/beredskabsplan/v7",
)


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
