"""Time at the edge where a person sees it: zones, month arithmetic, dates in their language."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date as babel_format_date

# English for a European audience: "3 December 2026", as the lessons write dates.
LOCALES = {"en": "en_GB", "da": "da_DK"}


def zone(name: str | None) -> tzinfo:
    """The named time zone, or UTC when none is known."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, or the month's last day where it is shorter."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def format_date(value: date | datetime, language: str, timezone: str | None = None) -> str:
    """A date as a reader of that language writes it, e.g. '3. december 2026'."""
    if isinstance(value, datetime):
        value = value.astimezone(zone(timezone)).date()
    return babel_format_date(value, format="long", locale=LOCALES.get(language, language))
