"""`digest off|on`, `digest org on|off` and `ranking on|off`: the same words in Slack and Teams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.adapters.options import UsageError
from bot.digest import Digests
from bot.lessons.course import Language

SWITCH = {"on": True, "off": False}
VERBS = frozenset({"digest", "ranking"})


@dataclass(frozen=True)
class DigestChoice:
    scope: str  # "manager" (their own digest), "org" (the organisation digest) or "ranking"
    on: bool


def parse_digest(words: list[str]) -> DigestChoice:
    """The words after /nis2 (or in a Teams chat), verb first; UsageError says what is wrong."""
    verb, rest = words[0].casefold(), [word.casefold() for word in words[1:]]
    if verb == "ranking":
        if len(rest) != 1 or rest[0] not in SWITCH:
            raise UsageError("digest.usage_ranking")
        return DigestChoice("ranking", SWITCH[rest[0]])
    if len(rest) == 1 and rest[0] in SWITCH:
        return DigestChoice("manager", SWITCH[rest[0]])
    if len(rest) == 2 and rest[0] == "org" and rest[1] in SWITCH:
        return DigestChoice("org", SWITCH[rest[1]])
    raise UsageError("digest.usage")


async def apply_digest(
    digests: Digests,
    choice: DigestChoice,
    organisation_id: int,
    person_id: int,
    actor: str,
    is_admin: Callable[[], Awaitable[bool]],
    lang: Language,
) -> str:
    """Store the choice and say what changed; the organisation's settings are admins' only."""
    state = "on" if choice.on else "off"
    if choice.scope == "manager":
        if not await digests.manages(person_id):
            return lang.s("digest.not_manager")
        await digests.set_manager_digest(person_id, choice.on)
        return lang.s(f"digest.turned_{state}")
    if not await is_admin():
        command = "ranking" if choice.scope == "ranking" else "digest org"
        return lang.s("admin.not_allowed", command=command)
    if choice.scope == "org":
        await digests.set_org_digest(organisation_id, person_id, choice.on, actor)
        return lang.s(f"digest.org_{state}")
    await digests.set_ranking(organisation_id, choice.on, actor)
    return lang.s(f"digest.ranking_{state}")
