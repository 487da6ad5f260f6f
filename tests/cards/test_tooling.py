"""Proves the card checkers accept a good Teams card and catch each kind of broken one."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.cards as cards
from tests.cards import (
    SCHEMA_DIR,
    Card,
    CardToolingError,
    library_problems,
    library_problems_or_skip,
    schema_errors,
)

needs_schemas = pytest.mark.skipif(
    not SCHEMA_DIR.is_dir(), reason=f"Adaptive Card schemas are not at {SCHEMA_DIR}"
)


def card_with(body: list[Card], actions: list[Card] | None = None, version: str = "1.2") -> Card:
    """A minimal valid card around the parts a case is about, so only they can fail."""
    card: Card = {"type": "AdaptiveCard", "version": version, "body": body}
    if actions is not None:
        card["actions"] = actions
    return card


def good_card(version: str = "1.2") -> Card:
    """Every construct the bot relies on, in one card that must pass both checkers."""
    image = {
        "type": "Image",
        "url": "https://example.com/logo.png",
        "size": "Small",
        "altText": "Logo",
    }
    columns = [
        {"type": "Column", "width": "auto", "items": [image]},
        {"type": "Column", "width": "stretch", "items": [{"type": "TextBlock", "text": "Right"}]},
    ]
    open_url = {"type": "Action.OpenUrl", "title": "Read more", "url": "https://example.com/nis2"}
    body = [
        {
            "type": "TextBlock",
            "text": "Lesson 1",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "FactSet", "facts": [{"title": "Progress", "value": "1 of 12"}]},
        {"type": "Input.Text", "id": "answer", "isMultiline": True, "placeholder": "Your answer"},
        {"type": "ColumnSet", "columns": columns},
        {"type": "ActionSet", "actions": [open_url]},
    ]
    submit = {"type": "Action.Submit", "title": "Send", "data": {"action": "answer", "lesson": 1}}
    card = card_with(body, [submit, open_url], version)
    card["fallbackText"] = "Lesson 1: please open this in a client that shows cards."
    card["msteams"] = {"width": "Full"}
    return card


# name: (card, what the schema check says or None, what the library says or None).
# None records a blind spot of that checker, which is why the project runs both.
BAD_CARDS: dict[str, tuple[Card, str | None, str | None]] = {
    "unknown element type": (
        card_with([{"type": "TextBlok", "text": "typo"}]),
        "type 'TextBlok' is not allowed",
        "UnknownElementType",
    ),
    "misspelled property": (
        card_with([{"type": "TextBlock", "text": "x", "wrapp": True}]),
        "('wrapp' was unexpected)",
        None,
    ),
    "version above the highest supported": (
        {**good_card(), "version": "1.6"},
        "no schema for card version '1.6'",
        "UnsupportedCardVersion",
    ),
    "missing required property": (
        card_with([{"type": "TextBlock", "wrap": True}]),
        "'text' is a required property",
        None,
    ),
    "element newer than the card version": (
        card_with([], [{"type": "Action.Execute", "title": "Go", "verb": "go"}]),
        "type 'Action.Execute' is not allowed",
        "needs card version 1.4; the card declares 1.2",
    ),
    "property newer than the card version": (
        card_with([{"type": "Input.Text", "id": "name", "label": "Name"}]),
        "('label' was unexpected)",
        'Property "label" is supported in version 1.3',
    ),
    "invalid property value": (
        card_with([{"type": "TextBlock", "text": "x", "size": "huge"}]),
        "'huge' is not one of",
        'Invalid value "huge" for property "size"',
    ),
    "duplicate input id": (
        card_with([{"type": "Input.Text", "id": "a"}, {"type": "Input.Text", "id": "a"}]),
        None,
        'Duplicate Id "a"',
    ),
    "undocumented Teams extension": (
        {**good_card(), "msteams": {"width": "Full", "entities": []}},
        "/msteams: only {'width': 'Full'} is allowed",
        None,
    ),
    "root card without type": (
        {key: value for key, value in good_card().items() if key != "type"},
        "'type' is a required property",
        None,
    ),
}

# Valid by the schema and the library alike, yet Teams then sends the string as the
# activity's text and drops every input value: the bot must submit object data.
STRING_SUBMIT_DATA = card_with(
    [{"type": "Input.Text", "id": "answer"}],
    [{"type": "Action.Submit", "title": "Send", "data": "answer"}],
)

VERSIONS = ["1.2", "1.4", "1.5"]


@pytest.fixture(scope="module")
def library() -> dict[str, list[str]]:
    """Parses every card of this module in one node process, to keep the suite fast."""
    batch = [(f"good {version}", good_card(version)) for version in VERSIONS]
    batch += [(name, card) for name, (card, _, _) in BAD_CARDS.items()]
    batch.append(("string submit data", STRING_SUBMIT_DATA))
    return library_problems_or_skip(batch)


def assert_verdict(problems: list[str], expected: str | None) -> None:
    """Checks a checker caught the fault with the expected words, or records its blind spot."""
    if expected is None:
        assert problems == [], "this checker now catches the case: update BAD_CARDS"
    else:
        assert any(expected in problem for problem in problems), problems


@needs_schemas
@pytest.mark.parametrize("version", VERSIONS)
def test_good_card_matches_its_schema(version: str) -> None:
    """The good card passes the official schema of each version Teams renders."""
    assert schema_errors(good_card(version)) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_good_card_parses_cleanly(library: dict[str, list[str]], version: str) -> None:
    """Microsoft's parser raises no error or warning on the good card."""
    assert library[f"good {version}"] == []


@needs_schemas
@pytest.mark.parametrize("name", BAD_CARDS)
def test_schema_verdict(name: str) -> None:
    """The schema check catches what it should, and its blind spots stay known."""
    card, expected, _ = BAD_CARDS[name]
    assert_verdict(schema_errors(card), expected)


@pytest.mark.parametrize("name", BAD_CARDS)
def test_library_verdict(library: dict[str, list[str]], name: str) -> None:
    """The library check catches what it should, and its blind spots stay known."""
    _, _, expected = BAD_CARDS[name]
    assert_verdict(library[name], expected)


@pytest.mark.parametrize("name", BAD_CARDS)
def test_every_bad_card_is_caught(name: str) -> None:
    """No bad card may slip past both checkers at once."""
    _, by_schema, by_library = BAD_CARDS[name]
    assert by_schema or by_library


@needs_schemas
def test_string_submit_data_passes_both(library: dict[str, list[str]]) -> None:
    """Neither checker rejects string data, so a bot-side rule has to."""
    assert schema_errors(STRING_SUBMIT_DATA) == []
    assert library["string submit data"] == []


@needs_schemas
@pytest.mark.parametrize("version", [None, "1.3", 1.2])
def test_version_without_schema_is_an_error(version: object) -> None:
    """A card whose version has no schema file cannot be called valid."""
    card = {**good_card(), "version": version}
    assert schema_errors(card) == [
        f"/version: no schema for card version {version!r} (known: 1.2, 1.4, 1.5)"
    ]


def test_missing_packages_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without node_modules the failure names the install command."""
    monkeypatch.setattr(cards, "NODE_MODULES", tmp_path)
    with pytest.raises(CardToolingError, match="npm ci --prefix tests/cards"):
        library_problems([("good", good_card())])


def test_missing_node_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without node on PATH the failure says so and names the install command."""
    monkeypatch.setenv("PATH", "")
    with pytest.raises(CardToolingError, match="node is not on PATH.*npm ci --prefix tests/cards"):
        library_problems([("good", good_card())])


def test_names_in_a_batch_are_unique() -> None:
    """Results are keyed by name, so a repeated name would hide a card's problems."""
    with pytest.raises(ValueError, match="unique"):
        library_problems([("same", good_card()), ("same", good_card())])
