"""Lessons name the organisation's own incident contact, or neutral wording when it has none."""

from __future__ import annotations

import pytest

from bot.coach import Coach
from bot.lessons.course import Course, OrgProfile
from bot.lessons.messages import FeedbackCard, LessonCard, QuestionCard, ReflectionPrompt
from bot.settings import Settings, SettingsError, org_profile
from tests.helpers import new_learner

CONTACT = OrgProfile(
    name="Nordlys Logistik A/S",
    incident_contact="Sikkerhedsvagten",
    incident_phone="+45 70 20 30 40",
    incident_channel="#sikkerhed",
)


async def module_five_text(coach: Coach, course: Course, language: str, profile: OrgProfile) -> str:
    """Everything the learner reads in module 5, taken through the real flow."""
    enrolment_id = await new_learner(coach, language=language, profile=profile)
    plan = course.language(language).plan("core")
    texts: list[str] = []
    messages = await coach.next(enrolment_id)
    while True:
        for message in messages:
            if isinstance(message, LessonCard) and message.lesson_id.startswith("m5-"):
                texts += [message.text, message.tip]
            if isinstance(message, FeedbackCard) and message.question_id.startswith("m5-"):
                texts.append(message.text)
        last = messages[-1]
        if isinstance(last, QuestionCard):
            question = course.language(language).question(last.question_id)
            option = question.correct_option.id
            messages = await coach.answer(enrolment_id, last.context, last.question_id, option)
        elif isinstance(last, ReflectionPrompt):
            messages = await coach.reflect(enrolment_id, last.lesson_id, None)
        elif (await coach.progress(enrolment_id))[0].modules[4].done == sum(
            lesson.id.startswith("m5-") for lesson in plan
        ):
            return "\n".join(texts)
        else:
            messages = await coach.next(enrolment_id)


@pytest.mark.parametrize("language", ["en", "da"])
async def test_module_five_names_the_incident_contact(
    coach: Coach, course: Course, language: str
) -> None:
    text = await module_five_text(coach, course, language, CONTACT)
    assert "Sikkerhedsvagten (+45 70 20 30 40, #sikkerhed)" in text
    neutral = course.language(language).strings["placeholder.incident_contact"]
    assert neutral not in text
    assert "{incident_contact}" not in text


@pytest.mark.parametrize("language", ["en", "da"])
async def test_module_five_uses_neutral_wording_without_a_contact(
    coach: Coach, course: Course, language: str
) -> None:
    text = await module_five_text(coach, course, language, OrgProfile())
    neutral = course.language(language).strings["placeholder.incident_contact"]
    assert neutral in text
    assert "Sikkerhedsvagten" not in text
    assert "{" not in text


def test_settings_come_from_a_yaml_file_and_the_environment(tmp_path, course: Course) -> None:
    path = tmp_path / "organisation.yaml"
    path.write_text("name: Acme\nincident_contact: SOC\nhelpdesk: Service Desk, 1234\n")
    settings = Settings(org_file=path)
    profile = org_profile(settings, env={"INCIDENT_PHONE": "+45 1111 2222", "HELPDESK": ""})
    assert profile.name == "Acme"
    assert profile.incident_phone == "+45 1111 2222"
    assert profile.helpdesk == "Service Desk, 1234"
    values = course.language("en").placeholder_values(profile)
    assert values["incident_contact"] == "SOC (+45 1111 2222)"


def test_a_broken_organisation_file_is_named(tmp_path) -> None:
    path = tmp_path / "organisation.yaml"
    path.write_text("name: Acme\nincident_contact: [oops\n")
    with pytest.raises(SettingsError, match=r"organisation.yaml:\d+: not valid YAML"):
        org_profile(Settings(org_file=path), env={})
    path.write_text("name: Acme\nincident_kontakt: SOC\n")
    with pytest.raises(SettingsError, match="incident_kontakt: Extra inputs are not permitted"):
        org_profile(Settings(org_file=path), env={})
