"""Reading `/nis2 …` text: subcommand, targets (#channel, @group, @person) and options."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from bot.adapters.options import UsageError, enrol_options
from bot.programme import EnrolRequest

CHANNEL = re.compile(r"^<#(C[A-Z0-9]+|G[A-Z0-9]+)(?:\|([^>]*))?>$")
USERGROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|@?([^>]*))?>$")
USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|([^>]*))?>$")
OPTION = re.compile(r"^([a-z]+)=(.*)$")
ADMIN_ONLY = frozenset(
    {"enroll", "enrol", "unenroll", "unenrol", "manager", "remind", "revoke", "report"}
)
MY_DATA = frozenset({"my-data", "mydata", "mine-data"})
REPORT_FORMATS = ("csv", "pdf")


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
    # The words after the command: revoke's code and reason, digest's and ranking's choice.
    words: list[str] = field(default_factory=list)
    formats: tuple[str, ...] = REPORT_FORMATS  # report: which files of the evidence pack


def verb(text: str) -> str:
    """The command's name, before its arguments are read (admins are checked first)."""
    words = text.split()
    name = words[0].casefold() if words else "help"
    return {"enrol": "enroll", "unenrol": "unenroll"}.get(name, name)


def parse(text: str, today: date) -> Command:
    """Split the text after /nis2 into a Command, or raise UsageError saying what is wrong."""
    words = text.split()
    if [word.casefold() for word in words[:2]] in (["my", "data"], ["mine", "data"]):
        words = ["my-data", *words[2:]]
    name = verb(" ".join(words))
    if name in ("help", "status", "remind"):
        return Command(name)
    if name in ("digest", "ranking"):
        return Command(name, words=words[1:])
    if name == "revoke" or name in MY_DATA:
        return _plain(name, words[1:])
    if name == "report":
        return _report(words[1:])
    if name not in ("enroll", "unenroll", "manager"):
        raise UsageError("admin.unknown_command", command=words[0] if words else "")
    usage = f"admin.usage_{name}"
    targets, options = _split(words[1:], usage)
    if not targets:
        raise UsageError(usage)
    command = Command(name, targets)
    if name == "enroll":
        command.request, command.keep = enrol_options(options, today, usage)
    elif options:
        raise UsageError("admin.bad_option", usage, token=next(iter(options)))
    if name == "manager" and (targets[0].kind != "user" or len(targets) < 2):
        raise UsageError(usage)
    return command


def _plain(name: str, words: list[str]) -> Command:
    """revoke CODE reason…, and my-data (which takes nothing: no one asks for another's data)."""
    if name in MY_DATA:
        if words:
            raise UsageError("privacy.my_data_only_yours")
        return Command("my-data")
    if len(words) < 2:
        raise UsageError("admin.usage_revoke")
    return Command(name, words=words)


def _report(words: list[str]) -> Command:
    """`report [csv|pdf] [#channel]`: both files for the whole organisation unless narrowed."""
    formats = tuple(word.casefold() for word in words if word.casefold() in REPORT_FORMATS)
    others = [word for word in words if word.casefold() not in REPORT_FORMATS]
    targets = [_target(word) for word in others]
    if any(target is None or target.kind != "channel" for target in targets) or len(targets) > 1:
        raise UsageError("report.usage")
    return Command("report", targets, formats=formats or REPORT_FORMATS)


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
