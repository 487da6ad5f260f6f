"""The workday calendar and local due times, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot import cli, schedule
from bot.settings import Settings


def test_a_time_skipped_in_spring_falls_on_a_real_instant_once() -> None:
    # 02:30 does not exist in Copenhagen on 28 March 2027: the clocks jump from 02:00 to 03:00.
    due = schedule.due_at(date(2027, 3, 28), "02:30", "Europe/Copenhagen")
    assert due == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 summer time
    assert schedule.local_day(due, "Europe/Copenhagen") == date(2027, 3, 28)


def test_a_time_repeated_in_autumn_is_its_first_occurrence() -> None:
    due = schedule.due_at(date(2027, 10, 31), "02:30", "Europe/Copenhagen")
    assert due == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 summer time, not winter


def test_danish_holidays_and_weekends_are_not_workdays() -> None:
    off = [date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)]
    off += [date(2027, 1, 2), date(2027, 1, 3)]  # a weekend
    assert not any(schedule.is_workday(day, "DK") for day in off)
    assert schedule.is_workday(date(2026, 12, 28), "DK")
    # Independence Day is a holiday in the US but a workday in Denmark.
    assert schedule.is_workday(date(2026, 7, 3), "DK")
    assert not schedule.is_workday(date(2026, 7, 3), "US")


def test_workdays_between_counts_only_workdays_after_the_start() -> None:
    assert schedule.workdays_between(date(2026, 12, 23), date(2026, 12, 29), "DK") == 2
    assert schedule.workdays_between(date(2027, 1, 4), date(2027, 1, 4), "DK") == 0


def test_zone_and_time_fall_back_from_person_to_organisation_to_settings() -> None:
    settings = Settings(default_timezone="Europe/Copenhagen", lesson_time="09:30")
    organisation = {"timezone": "Asia/Tokyo", "holiday_country": "us"}
    assert schedule.zone_name("America/New_York", organisation, settings) == "America/New_York"
    assert schedule.zone_name(None, organisation, settings) == "Asia/Tokyo"
    assert schedule.zone_name("Not/AZone", {}, settings) == "Europe/Copenhagen"
    assert schedule.country(organisation, settings) == "US"
    assert schedule.country({}, settings) == "DK"
    assert schedule.lesson_time(None, settings) == "09:30"
    assert schedule.parse_time("8.05") == "08:05"
    assert schedule.parse_time("25:00") is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LESSON_TIME", "25:00", "'25:00' is not a time of day; write HH:MM, e.g. 09:30"),
        ("DIGEST_TIME", "8", "'8' is not a time of day"),
        ("DEFAULT_TIMEZONE", "Mars/Base", "'Mars/Base' is not a time zone name"),
        ("HOLIDAY_COUNTRY", "XX", "'XX' is not a country with known holidays; use a code like DK"),
        ("REMINDER_WORKDAYS", "abc", "'abc' is not workdays after a lesson; write e.g. 2,4,7"),
        ("REMINDER_WORKDAYS", "0,2", "'0,2' is not workdays after a lesson"),
        ("SLACK_SEND_RATE", "0", "greater than 0"),
        ("TEAMS_SEND_RATE", "inf", "finite number"),
        ("WORKER_INTERVAL", "nan", "finite number"),
    ],
)
def test_a_bad_schedule_setting_stops_every_command_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    value: str,
    says: str,
) -> None:
    """Settings are read before any command starts (`db upgrade` here, as it ends by itself;
    the worker would run on), so the worker and the server refuse them the same way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert cli.main(["db", "upgrade"]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert error == f"nis2-coach: setting {name}: {error.split(': ', 2)[2]}"
    assert says in error and error.count("\n") == 1, error


def test_a_lower_case_holiday_country_is_read_as_its_code() -> None:
    assert Settings.from_env({"HOLIDAY_COUNTRY": "se"}).holiday_country == "SE"
