"""Settings from the environment (and an optional organisation YAML file), validated once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.lessons.course import OrgProfile
from bot.store.db import DEFAULT_URL

TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
REPO_CONTENT = Path(__file__).resolve().parent.parent / "content"

# Environment variable -> organisation setting, for the terminal and single-org installs.
ORG_ENV = {
    "ORG_NAME": "name",
    "INCIDENT_CONTACT": "incident_contact",
    "INCIDENT_PHONE": "incident_phone",
    "INCIDENT_CHANNEL": "incident_channel",
    "HELPDESK": "helpdesk",
    "PASSWORD_MANAGER": "password_manager",
    "AI_TOOL": "ai_tool",
    "SECURITY_POLICY_URL": "security_policy_url",
    "INCIDENT_PROCEDURE_URL": "incident_procedure_url",
}


MAX_RETENTION_DAYS = 36_500


class SettingsError(Exception):
    """A setting has a value the product cannot use; the message says which and why."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    database_url: str = DEFAULT_URL
    database_schema: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    content_dir: Path = REPO_CONTENT
    org_file: Path = Path("organisation.yaml")
    certificate_dir: Path = Path("certificates")
    certificate_base_url: str = Field(
        default="http://localhost:3000/certificates/", pattern=r"^https?://\S+$"
    )
    certificate_valid_months: int = Field(default=12, ge=1, le=120)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    certificate_font: Path | None = None
    default_language: Literal["da", "en"] = "en"
    port: int = Field(default=3000, ge=1, le=65535)
    admin_user_ids: str = ""
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_api_url: str | None = None
    slack_socket_ping: float = Field(default=10, gt=0)
    microsoft_app_id: str | None = None
    microsoft_app_password: str | None = None
    microsoft_app_type: Literal["MultiTenant", "SingleTenant"] = "MultiTenant"
    microsoft_app_tenant_id: str | None = None
    admin_aad_ids: str = ""
    # The schedule (issue 5): when lessons, reminders, digests and refreshers go out.
    default_timezone: str = "Europe/Copenhagen"
    holiday_country: str = "DK"
    lesson_time: str = "09:30"
    digest_time: str = "08:00"
    reminder_workdays: str = "2,4,7"
    refresher_days: int = Field(default=30, ge=1, le=365)
    with_worker: bool = False
    worker_interval: float = Field(default=30, gt=0, allow_inf_nan=False)
    worker_batch: int = Field(default=200, ge=1, le=5000)
    send_lease_seconds: int = Field(default=300, ge=10)
    slack_send_rate: float = Field(default=5, gt=0, allow_inf_nan=False)
    teams_send_rate: float = Field(default=30, gt=0, allow_inf_nan=False)
    # Evidence and data protection (issue 6).
    signing_key: str | None = None
    # At most a century: longer periods overflow date arithmetic and mean 'keep them' anyway.
    reflection_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _not_in_memory(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL, e.g. sqlite:///nis2-coach.db") from None
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database forgets everything; name a file")
        if url.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("only SQLite and PostgreSQL are supported")
        return value

    @field_validator("content_dir")
    @classmethod
    def _folder(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name, e.g. Europe/Copenhagen") from None
        return value

    @field_validator("holiday_country", mode="before")
    @classmethod
    def _known_country(cls, value: object) -> object:
        code = value.strip().upper() if isinstance(value, str) else value
        if code not in holidays.list_supported_countries():
            raise ValueError(f"{value!r} is not a country with known holidays; use a code like DK")
        return code

    @field_validator("lesson_time", "digest_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not TIME_OF_DAY.match(value):
            raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 09:30")
        return value

    @field_validator("reminder_workdays")
    @classmethod
    def _workday_counts(cls, value: str) -> str:
        parts = value.split(",")
        if not all(part.strip().isdecimal() and int(part) > 0 for part in parts):
            raise ValueError(f"{value!r} is not workdays after a lesson; write e.g. 2,4,7")
        return value

    @property
    def reminders(self) -> tuple[int, ...]:
        """Workdays after an unanswered lesson on which its reminders go, growing apart."""
        return tuple(sorted({int(part) for part in self.reminder_workdays.split(",")}))

    @property
    def admins(self) -> frozenset[str]:
        """Platform user ids that are admins whatever their role in the workspace."""
        return frozenset(part.strip() for part in self.admin_user_ids.split(",") if part.strip())

    @property
    def aad_admins(self) -> frozenset[str]:
        """Microsoft Entra object ids that are admins in Teams whatever their team role."""
        return frozenset(part.strip() for part in self.admin_aad_ids.split(",") if part.strip())

    def teams_missing(self) -> list[str]:
        """Settings Teams still lacks; an empty list means Teams is on."""
        needed = ["MICROSOFT_APP_ID", "MICROSOFT_APP_PASSWORD"]
        if self.microsoft_app_type == "SingleTenant":
            needed.append("MICROSOFT_APP_TENANT_ID")
        return [name for name in needed if not getattr(self, name.lower())]

    def slack_mode(self) -> str | None:
        """oauth, socket or http, from the settings present; None when Slack is off."""
        if self.slack_client_id and self.slack_client_secret and self.slack_signing_secret:
            return "oauth"
        if self.slack_app_token and self.slack_bot_token:
            return "socket"
        if self.slack_bot_token and self.slack_signing_secret:
            return "http"
        return None

    def slack_missing(self) -> list[str]:
        """The settings each Slack mode still lacks, for the start-up log."""
        modes = {
            "http": ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"],
            "socket": ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"],
            "oauth": ["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SIGNING_SECRET"],
        }
        return [
            f"{mode}: {', '.join(name for name in names if not getattr(self, name.lower()))}"
            for mode, names in modes.items()
        ]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        names = {name: name.upper() for name in cls.model_fields}
        values = {name: env[key] for name, key in names.items() if env.get(key)}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            key = names.get(str(first["loc"][0]), str(first["loc"][0]))
            message = str(first["msg"]).removeprefix("Value error, ")
            raise SettingsError(f"setting {key}: {message}") from None

    def verify_url(self, code: str) -> str:
        return self.certificate_base_url.rstrip("/") + "/" + code


def org_profile(settings: Settings, env: Mapping[str, str] | None = None) -> OrgProfile:
    """The organisation's details: the YAML file first, environment variables over it."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    if settings.org_file.is_file():
        values.update(_read_org_file(settings.org_file))
    values.update({field: env[key] for key, field in ORG_ENV.items() if env.get(key)})
    try:
        return OrgProfile.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SettingsError(f"{settings.org_file}: {where}: {first['msg']}") from None


def _read_org_file(path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise SettingsError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise SettingsError(f"{path}:{line}: not valid YAML") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}:1: expected a mapping of settings")
    return data
