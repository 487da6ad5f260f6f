"""Signed download links: what they grant, and that forged or expired ones grant nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.downloads import Grant, Links

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _links() -> Links:
    return Links(b"k" * 32, "https://coach.example/")


def test_a_link_grants_what_it_was_made_for() -> None:
    grant = Grant("report", 3, 7, NOW + timedelta(minutes=15), {"format": "pdf"})
    url = _links().make(grant)
    assert url.startswith("https://coach.example/downloads/")
    assert _links().open(url.rsplit("/", 1)[1], NOW) == grant


def test_a_changed_expired_or_foreign_link_grants_nothing() -> None:
    token = _links().make(Grant("my-data", 1, 2, NOW + timedelta(minutes=1))).rsplit("/", 1)[1]
    body, signature = token.split(".")
    other = "A" if body[5] != "A" else "B"
    assert _links().open(body[:5] + other + body[6:] + "." + signature, NOW) is None
    assert _links().open(token, NOW + timedelta(minutes=2)) is None
    assert Links(b"x" * 32, "https://coach.example").open(token, NOW) is None
    assert _links().open("not-a-token", NOW) is None
    assert _links().open("%%%.###", NOW) is None
