"""Options of an enrolment command, the same in Slack and Teams: track=, deadline=, lang=, keep=."""

from __future__ import annotations

import re
from datetime import date

from bot.lessons.models import TRACKS
from bot.programme import EnrolRequest

LANGUAGES = ("da", "en")


class UsageError(Exception):
    """The command text cannot be used; `key` and `values` make the reply."""

    def __init__(self, key: str, usage: str | None = None, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.usage = usage
        self.values = values


def enrol_options(options: dict[str, str], today: date, usage: str) -> tuple[EnrolRequest, bool]:
    known = {"track", "deadline", "lang", "keep", "guests"}
    for key in options:
        if key not in known:
            raise UsageError("admin.bad_option", usage, token=f"{key}={options[key]}")
    track = options.get("track", "core")
    if track not in TRACKS:
        raise UsageError("admin.bad_option", usage, token=f"track={track}")
    language = options.get("lang")
    if language is not None and language not in LANGUAGES:
        raise UsageError("admin.bad_option", usage, token=f"lang={language}")
    deadline = _deadline(options.get("deadline"), today, usage)
    keep = _yes_no(options, "keep", usage) if "keep" in options else None
    guests = _yes_no(options, "guests", usage)
    return EnrolRequest(track, language, deadline, guests), keep


def _deadline(value: str | None, today: date, usage: str) -> date | None:
    if value is None:
        return None
    try:
        deadline = date.fromisoformat(value)
    except ValueError:
        raise UsageError("admin.bad_deadline", usage, value=value) from None
    if deadline < today or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise UsageError("admin.bad_deadline", usage, value=value)
    return deadline


def _yes_no(options: dict[str, str], key: str, usage: str) -> bool:
    value = options.get(key, "no").casefold()
    if value not in ("yes", "no", "ja", "nej"):
        raise UsageError("admin.bad_option", usage, token=f"{key}={options[key]}")
    return value in ("yes", "ja")
