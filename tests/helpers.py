"""Small builders shared by the tests."""

from __future__ import annotations

from bot.coach import Coach
from bot.lessons.course import OrgProfile


async def new_learner(
    coach: Coach,
    name: str = "Ada Lovelace",
    language: str = "en",
    track: str = "core",
    profile: OrgProfile | None = None,
    org: str = "acme",
) -> int:
    """An organisation, a person and their enrolment; returns the enrolment id."""
    organisation = await coach.organisation("test", org, org.title(), profile or OrgProfile())
    person = await coach.person(organisation.id, name.casefold(), name, language=language)
    enrolment, _ = await coach.enrol(person.id, track, language)
    return enrolment.id
