"""Admin and status replies as plain text, the same words in Slack and Teams."""

from __future__ import annotations

from bot.lessons.course import Language
from bot.lessons.messages import ProgressCard
from bot.programme import Counts, EnrolOutcome


def enrol_summary(outcome: EnrolOutcome, lang: Language) -> str:
    """'Enrolled 3 · already enrolled 1 · skipped 2 (1 bots, 1 guests …)'."""
    skipped = sum(len(members) for members in outcome.skipped.values())
    line = lang.s(
        "admin.enrolled_summary",
        enrolled=len(outcome.enrolled),
        already=len(outcome.already),
        skipped=skipped,
    )
    reasons = [
        lang.s(f"admin.skip.{reason}", count=len(members))
        for reason, members in outcome.skipped.items()
    ]
    return line + (f" ({', '.join(reasons)})" if reasons else "")


def counts_line(lang: Language, key: str, counts: Counts, **extra: str) -> str:
    return lang.s(
        key,
        enrolled=counts.enrolled,
        in_progress=counts.in_progress,
        certified=counts.certified,
        overdue=counts.overdue,
        **extra,
    )


def progress_text(card: ProgressCard) -> str:
    rows = [f"{module.done}/{module.total}  {module.title}" for module in card.modules]
    return "\n".join([card.heading, *rows, card.summary])
