"""Admin and status replies as plain text, the same words in Slack and Teams."""

from __future__ import annotations

from typing import Any

from bot import certificate as certificates
from bot import dates
from bot.adapters.options import UsageError
from bot.coach import Coach
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


async def revoke(
    coach: Coach, organisation_id: int, words: list[str], lang: Language
) -> tuple[str, str, dict[str, Any]]:
    """`revoke CODE reason…`: only a certificate of this organisation; another's is as if unknown.

    Returns the reply, the code and what the audit log keeps.
    """
    if len(words) < 2:
        raise UsageError("admin.usage_revoke")
    code, reason = certificates.normalise_code(words[0]), " ".join(words[1:])
    found = await certificates.find(coach.db, code, organisation_id)
    if found is None:
        raise UsageError("admin.no_such_certificate", code=code)
    certificate, changed = await certificates.revoke(coach.db, found.id, reason, coach.clock())
    if not changed:
        when = dates.format_date(certificate.revoked_at, lang.code)
        raise UsageError("admin.already_revoked", code=code, date=when)
    return lang.s("admin.revoked", code=code), code, {"reason": reason}
