"""The workday calendar and local due times: when a person's lesson or digest is due.

Everything here is pure: the worker asks it which local day it is for a group of
people, whether that day is a workday in their organisation's country, and which
UTC instant their local time falls on that day, across daylight-saving changes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from bot.settings import Settings

LOCAL_TIME = re.compile(r"^([01]?[0-9]|2[0-3])[:.]([0-5][0-9])$")
MONDAY = 0


def parse_time(text: str) -> str | None:
    """'8:05', '08.05' or '08:05' as '08:05'; None for anything that is not a time of day."""
    match = LOCAL_TIME.match(text.strip())
    if match is None:
        return None
    return f"{int(match[1]):02d}:{match[2]}"


def zone_of(name: str | None) -> ZoneInfo | None:
    """The named zone, or None when the name is missing or unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_name(
    person_zone: str | None, organisation: dict[str, Any] | None, settings: Settings
) -> str:
    """The person's zone, else the organisation's, else the installation's default."""
    for candidate in (person_zone, (organisation or {}).get("timezone")):
        if zone_of(candidate) is not None:
            return str(candidate)
    return settings.default_timezone


def country(organisation: dict[str, Any] | None, settings: Settings) -> str:
    """Whose public holidays the organisation keeps."""
    value = (organisation or {}).get("holiday_country")
    return value.upper() if isinstance(value, str) and value.strip() else settings.holiday_country


def lesson_time(person_time: str | None, settings: Settings) -> str:
    return parse_time(person_time or "") or settings.lesson_time


@lru_cache(maxsize=256)
def _holidays(country_code: str, year: int) -> holidays.HolidayBase:
    """Public holidays plus the customary days off the package lists as optional.

    In Denmark that adds Christmas Eve, New Year's Eve, Constitution Day and 1 May, days
    most workplaces are closed; a lesson then would land in an empty office.
    """
    try:
        wanted = {"public", "optional"}
        supported = set(holidays.country_holidays(country_code).supported_categories)
        categories = tuple(sorted(wanted & supported)) or ("public",)
        return holidays.country_holidays(country_code, years=year, categories=categories)
    except NotImplementedError:
        return holidays.HolidayBase(years=year)  # an unknown country has no holidays to skip


def is_workday(day: date, country_code: str) -> bool:
    """Monday to Friday, and not a public holiday of the country."""
    return day.weekday() < 5 and day not in _holidays(country_code, day.year)


def workdays_between(start: date, end: date, country_code: str) -> int:
    """Workdays after `start` up to and including `end` (0 when end is not after start)."""
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        count += is_workday(day, country_code)
    return count


def due_at(day: date, local: str, zone: str) -> datetime:
    """The UTC instant of local time `local` ("HH:MM") on `day` in `zone`.

    A time skipped by the spring change (02:30 on the last Sunday of March in Europe)
    is read with the offset before the change, so it falls on a real instant an hour on;
    a time that happens twice in autumn is its first occurrence. Each day has exactly one.
    """
    hours, minutes = (int(part) for part in local.split(":"))
    moment = datetime.combine(day, time(hours, minutes), tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


def local_day(now: datetime, zone: str) -> date:
    """The date it is now where the person is."""
    return now.astimezone(ZoneInfo(zone)).date()
