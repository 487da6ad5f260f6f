"""The course as typed data: what one content file may hold, with its limits."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Track = Literal["core", "management", "technical"]
TRACKS: tuple[str, ...] = ("core", "management", "technical")

# Organisation details a lesson may name; see content/README.md.
PLACEHOLDERS = frozenset(
    {
        "org",
        "incident_contact",
        "helpdesk",
        "password_manager",
        "ai_tool",
        "security_policy",
        "incident_procedure",
    }
)
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ID_RE = r"^[a-z0-9][a-z0-9-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _text(max_length: int) -> object:
    return Field(min_length=1, max_length=max_length)


class Option(Strict):
    id: str = Field(pattern=ID_RE, max_length=20)
    text: str = _text(75)
    feedback: str = _text(500)
    correct: bool = False

    @field_validator("text")
    @classmethod
    def _no_placeholder(cls, value: str) -> str:
        if PLACEHOLDER_RE.search(value):
            raise ValueError("option text is a button label and may not use placeholders")
        return value


class Question(Strict):
    id: str = Field(pattern=ID_RE, max_length=40)
    prompt: str = _text(700)
    options: list[Option] = Field(min_length=3, max_length=4)

    @model_validator(mode="after")
    def _one_correct(self) -> Question:
        correct = [option.id for option in self.options if option.correct]
        if not correct:
            raise ValueError(f"question {self.id} has no option marked correct: true")
        if len(correct) > 1:
            raise ValueError(f"question {self.id} has more than one correct option: {correct}")
        ids = [option.id for option in self.options]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question {self.id} repeats an option id: {ids}")
        return self

    @property
    def correct_option(self) -> Option:
        return next(option for option in self.options if option.correct)


class QuizQuestion(Question):
    topic: str = Field(pattern=ID_RE)


class Media(Strict):
    url: str = Field(pattern=r"^https://\S+$", max_length=2000)
    label: str = _text(75)


class Lesson(Strict):
    id: str = Field(pattern=ID_RE, max_length=40)
    track: Track
    title: str = _text(100)
    provisions: list[str] = Field(min_length=1)
    text: str = _text(1200)
    tip: str = _text(400)
    media: Media | None = None
    questions: list[Question] = Field(min_length=1, max_length=2)
    reflection: str | None = Field(default=None, min_length=1, max_length=300)


class ChecklistItem(Strict):
    id: str = Field(pattern=ID_RE, max_length=40)
    text: str = _text(200)
    provisions: list[str] = Field(default_factory=list)
    requires: Literal["security_policy_url", "incident_procedure_url"] | None = None


class Module(Strict):
    id: str = Field(pattern=ID_RE)
    title: str = _text(100)
    intro: str | None = Field(default=None, max_length=600)
    lessons: list[Lesson] = Field(default_factory=list)
    checklist: list[ChecklistItem] = Field(default_factory=list)
    quiz: list[QuizQuestion] = Field(default_factory=list)


class CourseText(Strict):
    title: str = _text(100)
    description: str = _text(300)


class FinalQuiz(Strict):
    draw: int = Field(ge=1)
    pass_mark: float = Field(gt=0, le=1)


class Points(Strict):
    correct_answer: int = Field(ge=0)
    answer: int = Field(ge=0)
    reflection: int = Field(ge=0)
    recap_correct: int = Field(ge=0)


class CourseMeta(Strict):
    id: str = Field(pattern=ID_RE)
    version: str = Field(min_length=1)
    languages: list[str] = Field(min_length=1)
    default_language: str
    modules: list[str] = Field(min_length=1)
    final_quiz: FinalQuiz
    points: Points
    provisions: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_listed(self) -> CourseMeta:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language} is not in languages")
        return self
