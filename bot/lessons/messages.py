"""Platform-neutral messages: what the coach says, for adapters to render.

The terminal prints them, Slack turns them into Block Kit and Teams into
Adaptive Cards. A `Choice` carries an `action` and a `value` that come back
unchanged when the learner picks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Choice:
    action: str
    value: str
    label: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ModuleProgress:
    module_id: str
    title: str
    done: int
    total: int

    def bar(self, full: str, empty: str, width: int = 10) -> str:
        """A progress bar like ▰▰▰▱▱▱▱▱▱▱ 3/10, in the characters a platform shows well."""
        filled = round(width * self.done / self.total) if self.total else width
        return full * filled + empty * (width - filled) + f" {self.done}/{self.total}"


@dataclass(frozen=True)
class LessonCard:
    lesson_id: str
    module_title: str
    title: str
    text: str
    tip_label: str
    tip: str
    media_url: str | None
    media_label: str | None
    progress: ModuleProgress


@dataclass(frozen=True)
class QuestionCard:
    question_id: str
    context: str
    heading: str
    prompt: str
    options: tuple[Choice, ...]


@dataclass(frozen=True)
class FeedbackCard:
    question_id: str
    context: str
    correct: bool
    heading: str
    chosen: str
    text: str
    points: int
    repeated: bool = False


@dataclass(frozen=True)
class ReflectionPrompt:
    lesson_id: str
    heading: str
    prompt: str
    skip: Choice


@dataclass(frozen=True)
class ChecklistCard:
    heading: str
    intro: str
    items: tuple[tuple[str, str], ...]
    confirm: Choice


@dataclass(frozen=True)
class QuizResult:
    heading: str
    text: str
    passed: bool
    correct: int
    total: int
    missed_topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertificateCard:
    heading: str
    text: str
    code: str
    verify_url: str
    pdf_path: Path | None
    expires_at: datetime
    # Where the signed Open Badges credential is; None when no signing key is set.
    credential_url: str | None = None


@dataclass(frozen=True)
class ProgressCard:
    heading: str
    modules: tuple[ModuleProgress, ...]
    summary: str


@dataclass(frozen=True)
class Actions:
    """A short line with the buttons the learner can press next."""

    text: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DigestSection:
    """One team (or the organisation) in a digest: figures with their change, overdue, topics."""

    title: str
    lines: tuple[str, ...]
    overdue_heading: str
    overdue_names: tuple[str, ...]
    topics_heading: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class DigestCard:
    """The weekly digest: counts and names only, never anyone's answers or reflections."""

    heading: str
    sections: tuple[DigestSection, ...]
    chart_png: bytes | None
    chart_title: str
    fallback: str
    ranking_heading: str = ""
    ranking: tuple[str, ...] = ()
    note: str = ""


Message = (
    Text
    | LessonCard
    | QuestionCard
    | FeedbackCard
    | ReflectionPrompt
    | ChecklistCard
    | QuizResult
    | CertificateCard
    | ProgressCard
    | Actions
    | DigestCard
)
