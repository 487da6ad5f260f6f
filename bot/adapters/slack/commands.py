"""Reading `/nis2 …` text: subcommand, targets (#channel, @group, @person) and options."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from bot.lessons.models import TRACKS
from bot.programme import EnrolRequest

CHANNEL = re.compile(r"^<#(C[A-Z0-9]+|G[A-Z0-9]+)(?:\|([^>]*))?>$")
USERGROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|@?([^>]*))?>$")
USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|([^>]*))?>$")
OPTION = re.compile(r"^([a-z]+)=(.*)$")
ADMIN_ONLY = frozenset({"enroll", "enrol", "unenroll", "unenrol", "manager", "remind"})
LANGUAGES = ("da", "en")


class UsageError(Exception):
    """The command text cannot be used; `key` and `values` make the reply."""

    def __init__(self, key: str, usage: str | None = None, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.usage = usage
        self.values = values


@dataclass(frozen=True)
class Target:
    kind: str  # channel, usergroup or user
    id: str
    label: str


@dataclass
class Command:
    name: str
    targets: list[Target] = field(default_factory=list)
    request: EnrolRequest = field(default_factory=EnrolRequest)
    keep: bool | None = None  # None: leave a channel's kept-open setting as it is


def parse(text: str, today: date) -> Command:
    """Split the text after /nis2 into a Command, or raise UsageError saying what is wrong."""
    words = text.split()
    name = words[0].casefold() if words else "help"
    name = {"enrol": "enroll", "unenrol": "unenroll"}.get(name, name)
    if name in ("help", "status", "remind"):
        return Command(name)
    if name not in ("enroll", "unenroll", "manager"):
        raise UsageError("admin.unknown_command", command=words[0] if words else "")
    usage = f"admin.usage_{name}"
    targets, options = _split(words[1:], usage)
    if not targets:
        raise UsageError(usage)
    command = Command(name, targets)
    if name == "enroll":
        command.request, command.keep = _enrol_options(options, today, usage)
    elif options:
        raise UsageError("admin.bad_option", usage, token=next(iter(options)))
    if name == "manager" and (targets[0].kind != "user" or len(targets) < 2):
        raise UsageError(usage)
    return command


def _split(words: list[str], usage: str) -> tuple[list[Target], dict[str, str]]:
    targets: list[Target] = []
    options: dict[str, str] = {}
    for word in words:
        target = _target(word)
        option = OPTION.match(word)
        if target is not None:
            targets.append(target)
        elif option:
            options[option[1]] = option[2]
        else:
            raise UsageError("admin.bad_target", usage, token=word)
    return targets, options


def _target(word: str) -> Target | None:
    for kind, pattern in (("channel", CHANNEL), ("usergroup", USERGROUP), ("user", USER)):
        match = pattern.match(word)
        if match:
            return Target(kind, match[1], match[2] or match[1])
    return None


def _enrol_options(options: dict[str, str], today: date, usage: str) -> tuple[EnrolRequest, bool]:
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
