"""The loaded course: lookups by id, the lesson plan of a track, and filled-in text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bot.lessons.models import (
    PLACEHOLDER_RE,
    ChecklistItem,
    CourseMeta,
    CourseText,
    Lesson,
    Module,
    Question,
    QuizQuestion,
)

# A detail in one wording for every language, or one per language: {"da": "…", "en": "…"}.
LocalText = Annotated[str, Field(max_length=300)] | dict[str, Annotated[str, Field(max_length=300)]]
URL_PATTERN = r"^https?://\S+$"


class OrgProfile(BaseModel):
    """What differs per organisation and fills the lessons' placeholders."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    @classmethod
    def of(cls, settings: dict[str, Any] | None) -> OrgProfile:
        """The profile within an organisation's settings, which also hold programme choices."""
        settings = settings or {}
        return cls.model_validate({k: v for k, v in settings.items() if k in cls.model_fields})

    def stored_in(self, settings: dict[str, Any] | None) -> dict[str, Any]:
        """The settings with this profile in place of the old one; other choices stay."""
        others = {k: v for k, v in (settings or {}).items() if k not in type(self).model_fields}
        return others | self.model_dump(exclude_none=True)

    name: LocalText | None = None
    incident_contact: LocalText | None = None
    incident_phone: LocalText | None = None
    incident_channel: LocalText | None = None
    helpdesk: LocalText | None = None
    password_manager: LocalText | None = None
    ai_tool: LocalText | None = None
    security_policy_url: str | None = Field(default=None, pattern=URL_PATTERN, max_length=1000)
    incident_procedure_url: str | None = Field(default=None, pattern=URL_PATTERN, max_length=1000)

    def is_set(self, name: str) -> bool:
        return bool(getattr(self, name, None))

    def text(self, name: str, language: str | None = None) -> str | None:
        """A detail in the reader's language, falling back to any wording there is."""
        value = getattr(self, name)
        if not isinstance(value, dict):
            return value or None
        return value.get(language or "") or next((v for v in value.values() if v), None)


@dataclass
class Language:
    """One language of the course: its texts, the bot's strings and the modules."""

    code: str
    text: CourseText
    strings: dict[str, str]
    modules: list[Module]
    sources: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lessons = {lesson.id: lesson for module in self.modules for lesson in module.lessons}
        self._module_of = {
            lesson.id: module for module in self.modules for lesson in module.lessons
        }
        self._questions: dict[str, Question] = {}
        for lesson in self._lessons.values():
            self._questions.update({question.id: question for question in lesson.questions})
        self._questions.update({question.id: question for question in self.quiz_pool})

    def s(self, key: str, **values: object) -> str:
        """A bot string with its {name} fields filled; unknown fields stay as written."""
        template = self.strings[key]
        return PLACEHOLDER_RE.sub(lambda m: str(values.get(m[1], m[0])), template)

    def plan(self, track: str) -> list[Lesson]:
        """The lessons a learner on this track takes, in order."""
        return [
            lesson
            for module in self.modules
            for lesson in module.lessons
            if lesson.track in ("core", track)
        ]

    def lesson(self, lesson_id: str) -> Lesson:
        return self._lessons[lesson_id]

    def module_of(self, lesson_id: str) -> Module:
        return self._module_of[lesson_id]

    def question(self, question_id: str) -> Question:
        return self._questions[question_id]

    def lesson_of_question(self, question_id: str) -> Lesson | None:
        for lesson in self._lessons.values():
            if any(question.id == question_id for question in lesson.questions):
                return lesson
        return None

    @property
    def quiz_pool(self) -> list[QuizQuestion]:
        return [question for module in self.modules for question in module.quiz]

    @property
    def final_module(self) -> Module:
        return self.modules[-1]

    def checklist(self, org: OrgProfile) -> list[ChecklistItem]:
        """The checklist items that apply: conditional ones only where the setting exists."""
        items = self.final_module.checklist
        return [item for item in items if item.requires is None or org.is_set(item.requires)]

    def fill(self, text: str, org: OrgProfile) -> str:
        """Replace the organisation placeholders with its details or neutral wording."""
        values = self.placeholder_values(org)
        return PLACEHOLDER_RE.sub(lambda m: values.get(m[1], m[0]), text)

    def placeholder_values(self, org: OrgProfile) -> dict[str, str]:
        def either(name: str) -> str:
            return org.text(name, self.code) or self.strings[f"placeholder.{name}"]

        return {
            "org": org.text("name", self.code) or self.strings["placeholder.org"],
            "incident_contact": self._incident_contact(org),
            "helpdesk": either("helpdesk"),
            "password_manager": either("password_manager"),
            "ai_tool": either("ai_tool"),
            "security_policy": self._document(org.security_policy_url, "security_policy"),
            "incident_procedure": self._document(org.incident_procedure_url, "incident_procedure"),
        }

    def _incident_contact(self, org: OrgProfile) -> str:
        parts = (org.text("incident_phone", self.code), org.text("incident_channel", self.code))
        details = ", ".join(part for part in parts if part)
        contact = org.text("incident_contact", self.code)
        if contact and details:
            return f"{contact} ({details})"
        if contact:
            return contact
        if details:
            return self.s("placeholder.incident_contact_reach", details=details)
        return self.strings["placeholder.incident_contact"]

    def _document(self, url: str | None, key: str) -> str:
        if url:
            return self.s(f"placeholder.{key}_set", url=url)
        return self.strings[f"placeholder.{key}"]


@dataclass
class Course:
    """The whole course in every language, with the version and hash evidence needs."""

    meta: CourseMeta
    languages: dict[str, Language]
    content_hash: str
    root: Path

    @property
    def version(self) -> str:
        return self.meta.version

    def language(self, code: str | None) -> Language:
        """The language asked for, or the default one when it is not offered."""
        return self.languages.get(code or "", self.languages[self.meta.default_language])

    def summary(self) -> dict[str, int]:
        reference = self.language(None)
        lessons = [lesson for module in reference.modules for lesson in module.lessons]
        questions = sum(len(lesson.questions) for lesson in lessons)
        return {
            "languages": len(self.languages),
            "modules": len(reference.modules),
            "lessons": len(lessons),
            "core": sum(lesson.track == "core" for lesson in lessons),
            "management": sum(lesson.track == "management" for lesson in lessons),
            "technical": sum(lesson.track == "technical" for lesson in lessons),
            "questions": questions,
            "quiz": len(reference.quiz_pool),
            "checklist": len(reference.final_module.checklist),
            "reflections": sum(lesson.reflection is not None for lesson in lessons),
        }
