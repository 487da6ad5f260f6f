"""Every message, modal and Home view the bot can produce for the shipped course fits Slack.

Built with slack_sdk's models (their validators run on to_dict) and checked
against the limits in PLATFORM-LIMITS.md that the models do not enforce.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.adapters.slack import blocks
from bot.lessons.course import Course
from bot.lessons.messages import ModuleProgress, ProgressCard
from tests.catalogue import LONG, every_message

MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
MESSAGE_CHARACTERS = 12_000  # below the undocumented ~13.2k msg_blocks_too_long total


def check_block(block: dict[str, Any]) -> None:
    kind = block["type"]
    if kind == "header":
        assert len(block["text"]["text"]) <= 150
    if kind == "section":
        assert len(block["text"]["text"]) <= 3000
    if kind == "context":
        assert len(block["elements"]) <= 10
    if kind == "actions":
        assert len(block["elements"]) <= 25
        for element in block["elements"]:
            assert len(element["action_id"]) <= 255
            if element["type"] == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000


@pytest.mark.parametrize("code", ["en", "da"])
def test_every_message_fits_slack(course: Course, code: str) -> None:
    lang = course.language(code)
    count = 0
    for message in every_message(course, lang):
        payload = blocks.render(message, lang)
        assert payload.text.strip(), f"no fallback text for {message!r}"
        assert len(payload.blocks) <= MESSAGE_BLOCKS
        assert len(json.dumps(payload.blocks, ensure_ascii=False)) < MESSAGE_CHARACTERS * 2
        assert sum(len(json.dumps(b, ensure_ascii=False)) for b in payload.blocks) > 0
        visible = sum(len(b.get("text", {}).get("text", "")) for b in payload.blocks)
        assert visible <= MESSAGE_CHARACTERS, message
        for block in payload.blocks:
            check_block(block)
        count += 1
    assert count > 300


@pytest.mark.parametrize("code", ["en", "da"])
def test_modals_and_home_fit_slack(course: Course, code: str) -> None:
    lang = course.language(code)
    views = [blocks.settings_modal(lang, LONG)]
    for module in lang.modules:
        for lesson in module.lessons:
            if lesson.reflection:
                meta = {"channel": "D" * 11, "ts": "1700000000.000100"}
                views.append(
                    blocks.reflection_modal(
                        lang, lesson.id, lang.fill(lesson.reflection, LONG), meta
                    )
                )
    progress = ProgressCard(
        "H", tuple(ModuleProgress(m.id, m.title, 1, 5) for m in lang.modules), "summary"
    )
    learner = blocks.progress_blocks(progress) + blocks.sections("x" * 500)
    admin = blocks.admin_home_blocks(lang, "y" * 200, LONG)
    views.append(blocks.home_view(lang, learner, admin, [("da", "Dansk"), ("en", "English")]))
    for view in views:
        data = view.to_dict()  # runs slack_sdk's validators
        assert 1 <= len(data["blocks"]) <= VIEW_BLOCKS
        assert len(json.dumps(data)) < 250_000
        if data["type"] == "modal":
            assert len(data["title"]["text"]) <= 24
            assert len(data.get("private_metadata", "")) <= 3000
        for block in data["blocks"]:
            check_block(block)
