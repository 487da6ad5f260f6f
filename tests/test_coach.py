"""The engine on both databases: idempotent recording, concurrency, recaps, checklist, quiz."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.coach import Coach, CoachError
from bot.lessons.course import Course, OrgProfile
from bot.lessons.messages import (
    Actions,
    CertificateCard,
    ChecklistCard,
    FeedbackCard,
    LessonCard,
    QuestionCard,
    QuizResult,
    ReflectionPrompt,
)
from bot.store.models import Answer, ChecklistConfirmation, Reflection
from tests.helpers import new_learner


def pending_question(messages: list) -> QuestionCard | None:
    return next((m for m in reversed(messages) if isinstance(m, QuestionCard)), None)


def option_for(course: Course, card: QuestionCard, correct: bool, language: str = "en") -> str:
    question = course.language(language).question(card.question_id)
    options = [option for option in question.options if option.correct == correct]
    return options[0].id


async def count(coach: Coach, model, **where) -> int:
    async with coach.db.session() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return (await session.execute(query)).scalar_one()


async def finish_lessons(coach: Coach, course: Course, enrolment_id: int, wrong: int = 0) -> list:
    """Answer every lesson question (the first `wrong` ones wrongly) and skip reflections."""
    messages = await coach.next(enrolment_id)
    while True:
        card = pending_question(messages)
        last = messages[-1]
        if isinstance(last, QuestionCard):
            right = wrong <= 0
            wrong -= 1
            option = option_for(course, card, correct=right)
            messages = await coach.answer(enrolment_id, card.context, card.question_id, option)
        elif isinstance(last, ReflectionPrompt):
            messages = await coach.reflect(enrolment_id, last.lesson_id, "A thought of mine.")
        elif isinstance(last, Actions) and last.choices and last.choices[0].action == "next":
            messages = await coach.next(enrolment_id)
            if isinstance(messages[-1], ChecklistCard):
                return messages
        else:
            return messages


async def test_the_same_answer_delivered_twice_counts_once(coach: Coach, course: Course) -> None:
    """C01/C07: a retried event or a double click records one answer and its points once."""
    enrolment_id = await new_learner(coach)
    card = pending_question(await coach.next(enrolment_id))
    option = option_for(course, card, correct=True)

    first = await coach.answer(enrolment_id, "lesson", card.question_id, option, event_id="Ev1")
    second = await coach.answer(enrolment_id, "lesson", card.question_id, option, event_id="Ev1")
    third = await coach.answer(enrolment_id, "lesson", card.question_id, option, event_id="Ev9")

    assert await count(coach, Answer, enrolment_id=enrolment_id) == 1
    assert isinstance(first[0], FeedbackCard) and first[0].points > 0
    for repeat in (second[0], third[0]):
        assert isinstance(repeat, FeedbackCard) and repeat.repeated and repeat.points == 0
    progress = (await coach.progress(enrolment_id))[0]
    assert progress.summary.startswith(f"{first[0].points} points")


async def test_a_different_option_after_answering_does_not_change_the_answer(
    coach: Coach, course: Course
) -> None:
    enrolment_id = await new_learner(coach)
    card = pending_question(await coach.next(enrolment_id))
    wrong = option_for(course, card, correct=False)
    right = option_for(course, card, correct=True)
    await coach.answer(enrolment_id, "lesson", card.question_id, wrong)
    again = await coach.answer(enrolment_id, "lesson", card.question_id, right)
    assert again[0].repeated and not again[0].correct
    async with coach.db.session() as session:
        stored = (await session.execute(select(Answer))).scalar_one()
    assert stored.option_id == wrong
    assert stored.content_version == course.version
    assert stored.content_hash == course.content_hash


async def test_200_concurrent_answers_are_all_stored(coach: Coach, course: Course) -> None:
    """C09: many learners answering at once on the default SQLite database (and PostgreSQL)."""
    learners = []
    for number in range(200):
        enrolment_id = await new_learner(coach, name=f"Learner {number}")
        card = pending_question(await coach.next(enrolment_id))
        learners.append((enrolment_id, card))

    async def answer(enrolment_id: int, card: QuestionCard) -> list:
        option = option_for(course, card, correct=True)
        return await coach.answer(enrolment_id, card.context, card.question_id, option)

    results = await asyncio.gather(*(answer(e, c) for e, c in learners))
    assert all(isinstance(result[0], FeedbackCard) for result in results)
    assert await count(coach, Answer) == 200


async def test_concurrent_double_clicks_record_one_answer(coach: Coach, course: Course) -> None:
    enrolment_id = await new_learner(coach)
    card = pending_question(await coach.next(enrolment_id))
    option = option_for(course, card, correct=True)
    clicks = [
        coach.answer(enrolment_id, "lesson", card.question_id, option, event_id=f"click-{n}")
        for n in range(10)
    ]
    results = await asyncio.gather(*clicks)
    assert await count(coach, Answer) == 1
    assert sum(not result[0].repeated for result in results) == 1


async def test_a_wrong_answer_comes_back_as_a_recap(coach: Coach, course: Course) -> None:
    enrolment_id = await new_learner(coach)
    messages = await coach.next(enrolment_id)
    missed = pending_question(messages).question_id
    seen_recap = None
    for _ in range(4):
        while True:
            last = messages[-1]
            if isinstance(last, QuestionCard):
                if last.context == "recap":
                    seen_recap = last
                right = last.question_id != missed or last.context == "recap"
                option = option_for(course, last, correct=right)
                messages = await coach.answer(enrolment_id, last.context, last.question_id, option)
            elif isinstance(last, ReflectionPrompt):
                messages = await coach.reflect(enrolment_id, last.lesson_id, None)
            else:
                break
        messages = await coach.next(enrolment_id)
    assert seen_recap is not None and seen_recap.question_id == missed
    assert "recap" in seen_recap.heading.lower()


async def test_unasked_and_unknown_questions_are_refused(coach: Coach, course: Course) -> None:
    enrolment_id = await new_learner(coach)
    await coach.next(enrolment_id)
    with pytest.raises(CoachError, match="error.not_asked"):
        await coach.answer(enrolment_id, "lesson", "m5-l1-q1", "a")
    with pytest.raises(CoachError, match="error.unknown_question"):
        await coach.answer(enrolment_id, "lesson", "nope", "a")
    card = pending_question(await coach.resume(enrolment_id))
    with pytest.raises(CoachError, match="error.unknown_option"):
        await coach.answer(enrolment_id, "lesson", card.question_id, "z")
    with pytest.raises(CoachError, match="error.quiz_closed"):
        await coach.answer(enrolment_id, "quiz:1", "fq01", "a")
    assert await count(coach, Answer) == 0


async def test_reflections_are_stored_once(coach: Coach, course: Course) -> None:
    enrolment_id = await new_learner(coach)
    messages = await coach.next(enrolment_id)
    lesson_id = messages[0].lesson_id
    await coach.reflect(enrolment_id, lesson_id, "First thought")
    await coach.reflect(enrolment_id, lesson_id, "Second thought")
    async with coach.db.session() as session:
        texts = (await session.execute(select(Reflection.text))).scalars().all()
    assert texts == ["First thought"]


@pytest.mark.parametrize("policy", [None, "https://intranet.example/policy"])
async def test_checklist_records_policy_acknowledgement(
    coach: Coach, course: Course, policy: str | None
) -> None:
    profile = OrgProfile(name="Acme", security_policy_url=policy)
    enrolment_id = await new_learner(coach, profile=profile)
    messages = await finish_lessons(coach, course, enrolment_id)
    checklist = messages[-1]
    assert isinstance(checklist, ChecklistCard)
    ids = [item_id for item_id, _ in checklist.items]
    assert ("c-policy" in ids) == bool(policy)
    assert "c-procedure" not in ids

    messages = await coach.confirm_checklist(enrolment_id)
    assert isinstance(messages[-1], QuestionCard) and messages[-1].context == "quiz:1"
    async with coach.db.session() as session:
        rows = (await session.execute(select(ChecklistConfirmation))).scalars().all()
    assert sorted(row.item_id for row in rows) == sorted(ids)
    assert all(row.confirmed_at.tzinfo is not None for row in rows)
    if policy:
        acknowledgement = next(row for row in rows if row.item_id == "c-policy")
        assert policy in acknowledgement.text


async def test_failed_quiz_retries_with_other_questions_then_certifies(
    coach: Coach, course: Course
) -> None:
    enrolment_id = await new_learner(coach, track="management")
    await finish_lessons(coach, course, enrolment_id)
    messages = await coach.confirm_checklist(enrolment_id)
    first_round = []
    while isinstance(messages[-1], QuestionCard):
        card = messages[-1]
        first_round.append(card.question_id)
        option = option_for(course, card, correct=False)
        messages = await coach.answer(enrolment_id, card.context, card.question_id, option)
    result = next(m for m in messages if isinstance(m, QuizResult))
    assert not result.passed and result.correct == 0 and result.missed_topics
    assert messages[-1].choices[0].action == "retry_quiz"

    messages = await coach.handle(enrolment_id, "retry_quiz")
    second_round = []
    while isinstance(messages[-1], QuestionCard):
        card = messages[-1]
        second_round.append(card.question_id)
        option = option_for(course, card, correct=True)
        messages = await coach.answer(enrolment_id, card.context, card.question_id, option)
    assert len(first_round) == len(second_round) == course.meta.final_quiz.draw
    assert not set(first_round) & set(second_round)
    assert isinstance(messages[-1], CertificateCard)
    assert messages[-1].pdf_path.is_file()
    assert (await coach.resume(enrolment_id))[-1].code == messages[-1].code


async def test_management_track_adds_lessons(coach: Coach, course: Course) -> None:
    core = course.language("en").plan("core")
    management = course.language("en").plan("management")
    assert len(management) > len(core)
    enrolment_id = await new_learner(coach, track="technical")
    messages = await coach.next(enrolment_id)
    assert isinstance(messages[0], LessonCard)


async def pass_quiz(coach: Coach, course: Course, enrolment_id: int) -> list:
    await finish_lessons(coach, course, enrolment_id)
    messages = await coach.confirm_checklist(enrolment_id)
    while isinstance(messages[-1], QuestionCard):
        card = messages[-1]
        option = option_for(course, card, correct=True)
        messages = await coach.answer(enrolment_id, card.context, card.question_id, option)
    return messages


async def test_an_unwritable_certificate_folder_loses_nothing(
    coach: Coach, course: Course, tmp_path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    coach.settings = coach.settings.model_copy(update={"certificate_dir": blocker / "certs"})
    enrolment_id = await new_learner(coach)
    messages = await pass_quiz(coach, course, enrolment_id)
    card = messages[-1]
    assert isinstance(card, CertificateCard) and card.pdf_path is None
    assert await count(coach, Answer, context="quiz:1") == course.meta.final_quiz.draw

    coach.settings = coach.settings.model_copy(update={"certificate_dir": tmp_path / "ok"})
    again = (await coach.resume(enrolment_id))[-1]
    assert again.code == card.code and again.pdf_path.is_file()


async def test_track_cannot_change_after_the_certificate(coach: Coach, course: Course) -> None:
    enrolment_id = await new_learner(coach)
    await pass_quiz(coach, course, enrolment_id)
    with pytest.raises(CoachError, match="error.track_locked"):
        await coach.set_preferences(enrolment_id, track="management")
    enrolment = await coach.set_preferences(enrolment_id, language="da")
    assert enrolment.track == "core" and enrolment.language == "da"


async def test_organisation_details_can_differ_per_language(course: Course) -> None:
    profile = OrgProfile(
        helpdesk={"da": "IT-supporten på lokal 4000", "en": "IT support, ext. 4000"},
        ai_tool="Copilot",
    )
    assert course.language("da").placeholder_values(profile)["helpdesk"].startswith("IT-supporten")
    assert course.language("en").placeholder_values(profile)["helpdesk"].startswith("IT support")
    assert course.language("da").placeholder_values(profile)["ai_tool"] == "Copilot"
