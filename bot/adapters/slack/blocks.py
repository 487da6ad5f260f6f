"""Neutral messages as Block Kit, built with slack_sdk's models and kept inside Slack's limits.

Every message carries a plain-text `text` for notifications and screen readers.
Button values are the coach's Choice values unchanged; action ids say what the
button does (`nis2.answer.0`, `nis2.next.0`, …) so the app can route clicks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.lessons.course import Language, OrgProfile
from bot.lessons.messages import (
    Actions,
    CertificateCard,
    ChecklistCard,
    Choice,
    DigestCard,
    DigestSection,
    FeedbackCard,
    LessonCard,
    Message,
    ModuleProgress,
    ProgressCard,
    QuestionCard,
    QuizResult,
    ReflectionPrompt,
    Text,
)

SECTION_LIMIT = 3000
MESSAGE_BLOCKS = 50
MESSAGE_CHARACTERS = 12_000  # below the undocumented ~13.2k total Slack rejects
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
ACTION_PREFIX = "nis2."
REFLECTION_CALLBACK = "nis2.reflection"
SETTINGS_CALLBACK = "nis2.settings"
SETTING_FIELDS = (
    "name",
    "incident_contact",
    "incident_phone",
    "incident_channel",
    "helpdesk",
    "password_manager",
    "ai_tool",
    "security_policy_url",
    "incident_procedure_url",
)


@dataclass(frozen=True)
class Payload:
    """One Slack message: fallback text and blocks (as dicts, ready for the Web API)."""

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Slack's three control characters, so content is never read as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sections(text: str) -> list[Block]:
    """Markdown sections for any length of text, split on line ends under the limit."""
    blocks: list[Block] = []
    chunk = ""
    for line in text.splitlines() or [""]:
        if chunk and len(chunk) + len(line) + 1 > SECTION_LIMIT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else cut(line, SECTION_LIMIT)
    blocks.append(SectionBlock(text=MarkdownTextObject(text=chunk or " ")))
    return blocks


def button(choice: Choice, index: int, style: str | None = None) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=cut(choice.label, BUTTON_LIMIT), emoji=True),
        action_id=f"{ACTION_PREFIX}{choice.action}.{index}",
        value=choice.value or "-",
        style=style,
    )


def buttons(choices: tuple[Choice, ...] | list[Choice]) -> ActionsBlock:
    return ActionsBlock(elements=[button(choice, index) for index, choice in enumerate(choices)])


def bar(progress: ModuleProgress) -> str:
    return progress.bar("▰", "▱")


def render(message: Message, lang: Language) -> Payload:
    """One neutral message as one Slack message."""
    match message:
        case LessonCard():
            return _lesson(message)
        case QuestionCard():
            text = f"*{escape(message.heading)}*\n{escape(message.prompt)}"
            return _payload(message.prompt, [*sections(text), buttons(message.options)])
        case FeedbackCard():
            return _payload(message.text, feedback_blocks(message))
        case ReflectionPrompt():
            return _payload(message.prompt, _reflection(message, lang))
        case ChecklistCard():
            return _checklist(message)
        case QuizResult():
            text = "\n".join(
                [
                    f"*{escape(message.heading)}*",
                    escape(message.text),
                    *map(escape, message.missed_topics),
                ]
            )
            return _payload(f"{message.heading} {message.text}", sections(text))
        case CertificateCard():
            return _certificate(message)
        case ProgressCard():
            return _payload(message.summary, progress_blocks(message))
        case Actions():
            return _payload(
                message.text, [*sections(escape(message.text)), buttons(message.choices)]
            )
        case Text():
            return _payload(message.text, sections(escape(message.text)))
    raise TypeError(f"no Block Kit for {type(message).__name__}")


def _reflection(prompt: ReflectionPrompt, lang: Language) -> list[Block]:
    write = Choice("reflect", f"{lang.code}|{prompt.lesson_id}", lang.s("platform.reflect_button"))
    text = f"*{escape(prompt.heading)}*\n{escape(prompt.prompt)}"
    actions = ActionsBlock(elements=[button(write, 0, "primary"), button(prompt.skip, 1)])
    return [*sections(text), actions]


def render_digest(card: DigestCard) -> list[Payload]:
    """A digest as as many messages as Slack's limits need: split, never cut or rejected."""
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(card.heading, HEADER_LIMIT), emoji=True))
    ]
    for section in card.sections:
        blocks += _digest_section(section, len(card.sections) > 1)
    if card.ranking:
        blocks += sections(f"*{escape(card.ranking_heading)}*\n" + escape("\n".join(card.ranking)))
    if card.note:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=cut(escape(card.note), 3000))])
        )
    parts = _split_blocks(blocks)
    return [
        Payload(cut(card.fallback, 3000), [block.to_dict() for block in part]) for part in parts
    ]


def _digest_section(section: DigestSection, titled: bool) -> list[Block]:
    blocks: list[Block] = [DividerBlock()]
    if titled:
        blocks += sections(f"*{escape(section.title)}*")
    blocks += sections("\n".join(map(escape, section.lines)))
    if section.overdue_names:
        names = "\n".join(f"• {escape(name)}" for name in section.overdue_names)
        blocks += sections(f"*{escape(section.overdue_heading)}*\n{names}")
    topics = "\n".join(f"• {escape(topic)}" for topic in section.topics)
    return blocks + sections(f"*{escape(section.topics_heading)}*\n{topics}")


def _visible(block: Block) -> int:
    text = getattr(block, "text", None)
    return len(getattr(text, "text", "") or "")


def _split_blocks(blocks: list[Block]) -> list[list[Block]]:
    """Pack blocks in order into messages of at most 50 blocks and 12,000 visible characters."""
    parts: list[list[Block]] = [[]]
    size = 0
    for block in blocks:
        full = len(parts[-1]) >= MESSAGE_BLOCKS or size + _visible(block) > MESSAGE_CHARACTERS
        if parts[-1] and full:
            parts.append([])
            size = 0
        parts[-1].append(block)
        size += _visible(block)
    return parts


def reflection_done(lang: Language) -> list[dict[str, Any]]:
    """What the reflection prompt becomes once the reflection is saved: no buttons left."""
    text = f"*{escape(lang.s('reflection.heading'))}*"
    note = chosen_note(lang.s("platform.reflection_saved"), lang)
    return [block.to_dict() for block in [*sections(text), *note]]


def _payload(text: str, blocks: list[Block]) -> Payload:
    return Payload(cut(text, 3000), [block.to_dict() for block in blocks])


def _lesson(card: LessonCard) -> Payload:
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(card.title, HEADER_LIMIT), emoji=True)),
        ContextBlock(
            elements=[MarkdownTextObject(text=f"{escape(card.module_title)}  {bar(card.progress)}")]
        ),
        *sections(escape(card.text)),
        *sections(f"💡 *{escape(card.tip_label)}:* {escape(card.tip)}"),
    ]
    if card.media_url:
        link = f"🔗 <{card.media_url}|{escape(card.media_label or card.media_url)}>"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=link)))
    return _payload(f"{card.title}: {card.text}", blocks)


def feedback_blocks(card: FeedbackCard) -> list[Block]:
    mark = "✅" if card.correct else "💡"
    text = f"{mark} *{escape(card.heading)}*\n{escape(card.text)}"
    blocks = sections(text)
    if card.points:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"+{card.points}")]))
    return blocks


def _checklist(card: ChecklistCard) -> Payload:
    items = "\n".join(f"☐ {escape(text)}" for _, text in card.items)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(card.heading, HEADER_LIMIT), emoji=True)),
        *sections(escape(card.intro)),
        DividerBlock(),
        *sections(items),
        ActionsBlock(elements=[button(card.confirm, 0, "primary")]),
    ]
    return _payload(f"{card.heading}: {card.intro}", blocks)


def _certificate(card: CertificateCard) -> Payload:
    text = f"{escape(card.text)}\n`{card.code}`\n<{card.verify_url}|{card.verify_url}>"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"🎓 {cut(card.heading, 140)}", emoji=True)),
        *sections(text),
    ]
    return _payload(f"{card.heading}: {card.text} {card.code}", blocks)


def progress_blocks(card: ProgressCard) -> list[Block]:
    rows = "\n".join(f"`{bar(module)}`  {escape(module.title)}" for module in card.modules)
    return [
        HeaderBlock(text=PlainTextObject(text=cut(card.heading, HEADER_LIMIT), emoji=True)),
        *sections(rows),
        ContextBlock(elements=[MarkdownTextObject(text=escape(card.summary))]),
    ]


def answered(original: list[dict[str, Any]], note: list[Block]) -> list[dict[str, Any]]:
    """The clicked message without its buttons, with what was chosen added: no second click."""
    kept = [block for block in original if block.get("type") != "actions"]
    return kept + [block.to_dict() for block in note]


def chosen_note(label: str, lang: Language) -> list[Block]:
    text = escape(lang.s("platform.done_choice", label=label))
    return [ContextBlock(elements=[MarkdownTextObject(text=text)])]


# -- modals and the Home tab ----------------------------------------------------------------


def reflection_modal(lang: Language, lesson_id: str, prompt: str, metadata: dict[str, str]) -> View:
    return View(
        type="modal",
        callback_id=REFLECTION_CALLBACK,
        title=PlainTextObject(text=cut(lang.s("platform.reflection_title"), 24)),
        submit=PlainTextObject(text=cut(lang.s("platform.reflection_save"), 24)),
        close=PlainTextObject(text=cut(lang.s("platform.reflection_cancel"), 24)),
        private_metadata=json.dumps({"lesson": lesson_id, **metadata}),
        blocks=[
            *sections(escape(prompt)),
            InputBlock(
                block_id="reflection",
                label=PlainTextObject(text=lang.s("platform.reflection_label")),
                hint=PlainTextObject(text=lang.s("platform.reflection_hint")),
                element=PlainTextInputElement(action_id="text", multiline=True, max_length=3000),
            ),
        ],
    )


def settings_modal(lang: Language, profile: OrgProfile) -> View:
    inputs = [
        InputBlock(
            block_id=name,
            optional=True,
            label=PlainTextObject(text=lang.s(f"setting.{name}")),
            element=PlainTextInputElement(
                action_id="value", initial_value=profile.text(name, lang.code), max_length=300
            ),
        )
        for name in SETTING_FIELDS
    ]
    return View(
        type="modal",
        callback_id=SETTINGS_CALLBACK,
        title=PlainTextObject(text=cut(lang.s("setting.title"), 24)),
        submit=PlainTextObject(text=cut(lang.s("setting.save"), 24)),
        close=PlainTextObject(text=cut(lang.s("setting.cancel"), 24)),
        blocks=inputs,
    )


def home_view(
    lang: Language,
    learner: list[Block],
    admin: list[Block] | None,
    languages: list[tuple[str, str]],
) -> View:
    """The App Home: the learner's part, a language choice, and the admin's part if any."""
    select = StaticSelectElement(
        action_id=f"{ACTION_PREFIX}language.0",
        placeholder=PlainTextObject(text=lang.s("home.language")),
        options=[Option(value=code, text=name) for code, name in languages],
        initial_option=next(
            (Option(value=code, text=name) for code, name in languages if code == lang.code), None
        ),
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=cut(lang.s("home.heading"), HEADER_LIMIT))),
        *learner,
        SectionBlock(
            text=MarkdownTextObject(text=escape(lang.s("home.language"))), accessory=select
        ),
    ]
    if admin:
        blocks += [DividerBlock(), *admin]
    return View(type="home", blocks=blocks)


def admin_home_blocks(lang: Language, counts_text: str, profile: OrgProfile) -> list[Block]:
    unset = lang.s("home.unset")
    rows = "\n".join(
        f"*{escape(lang.s(f'setting.{name}'))}:* {escape(profile.text(name, lang.code) or unset)}"
        for name in SETTING_FIELDS
    )
    edit = Choice("edit_settings", "-", lang.s("home.settings_edit"))
    return [
        HeaderBlock(text=PlainTextObject(text=cut(lang.s("home.admin_heading"), HEADER_LIMIT))),
        *sections(escape(counts_text)),
        HeaderBlock(text=PlainTextObject(text=cut(lang.s("home.settings_heading"), HEADER_LIMIT))),
        *sections(rows),
        ActionsBlock(elements=[button(edit, 0)]),
    ]
