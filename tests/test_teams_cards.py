"""Every Adaptive Card the bot can send for the shipped course is one Teams will show (C15, C17).

Checked against the official schema of the card's version and parsed by Microsoft's
own Adaptive Cards library, in both languages.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.adapters.teams import cards
from bot.lessons.course import Course
from bot.lessons.messages import FeedbackCard, QuestionCard
from tests.cards import library_problems_or_skip, schema_errors_or_skip
from tests.catalogue import every_message

TEAMS_MOBILE = (1, 2)
SIZE_LIMIT = 80_000  # Teams takes about 100 KB; stay under 80 KB


def every_card(course: Course) -> list[tuple[str, dict[str, Any]]]:
    produced = []
    for code in ("en", "da"):
        lang = course.language(code)
        for index, message in enumerate(every_message(course, lang)):
            produced.append(
                (f"{code}-{index}-{type(message).__name__}", cards.render(message, lang))
            )
            if isinstance(message, FeedbackCard):
                question = QuestionCard(message.question_id, message.context, "Q", "Prompt", ())
                produced.append(
                    (
                        f"{code}-{index}-answered",
                        cards.answered(question, message.chosen, message, lang),
                    )
                )
        produced.append((f"{code}-done", cards.done("Heading", "note")))
    return produced


@pytest.fixture(scope="module")
def produced(course: Course) -> list[tuple[str, dict[str, Any]]]:
    return every_card(course)


def test_every_card_passes_the_schema_of_its_version(produced) -> None:
    failures = {name: errors for name, card in produced if (errors := schema_errors_or_skip(card))}
    assert not failures, json.dumps(dict(list(failures.items())[:3]), indent=1)


def test_every_card_parses_cleanly_in_the_adaptive_cards_library(produced) -> None:
    problems = library_problems_or_skip(produced)
    failures = {name: found for name, found in problems.items() if found}
    assert not failures, json.dumps(dict(list(failures.items())[:3]), indent=1)


def walk(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += walk(item)
    elif isinstance(value, list):
        for item in value:
            found += walk(item)
    return found


def test_cards_fit_teams_on_desktop_and_mobile(produced) -> None:
    """C17: an explicit version Teams mobile renders, fallback text, size; C15: object data."""
    for name, card in produced:
        version = tuple(int(part) for part in card["version"].split("."))
        assert version <= TEAMS_MOBILE, name
        assert card["fallbackText"].strip(), name
        assert len(json.dumps(card, ensure_ascii=False).encode()) < SIZE_LIMIT, name
        for element in walk(card):
            if element.get("type") == "Action.Submit":
                assert isinstance(element["data"], dict), name
                assert element["data"]["action"], name
