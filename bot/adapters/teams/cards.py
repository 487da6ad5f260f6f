"""Neutral messages as Adaptive Cards that Teams renders on desktop and on mobile.

Cards declare version 1.2, the highest that Teams mobile is reported to render
(C17), carry fallback text, and submit object `data` only, never a string (C15):
`{"action": "answer", "value": "<context>|<question>"}` with the chosen option
in the `option` input. Plain dicts: no Teams library is needed to build them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from bot.lessons.course import Language
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

VERSION = "1.2"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
Card = dict[str, Any]
CARD_BYTES = 75_000  # Teams takes about 100 KB per activity; stay well under 80 KB


def card(
    body: list[dict[str, Any]], fallback: str, actions: list[dict[str, Any]] | None = None
) -> Card:
    result: Card = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "fallbackText": fallback[:2000],
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        result["actions"] = actions
    return result


def text(value: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **style}


def submit(title: str, action: str, value: str = "", **extra: str) -> dict[str, Any]:
    """A button whose data is an object the bot reads back from activity.value (C15)."""
    return {
        "type": "Action.Submit",
        "title": title,
        "data": {"action": action, "value": value, **extra},
    }


def choice_button(choice: Choice) -> dict[str, Any]:
    return submit(choice.label, choice.action, choice.value)


def bar(progress: ModuleProgress) -> str:
    return progress.bar("▰", "▱")


def render(message: Message, lang: Language) -> Card:
    """One neutral message as one card."""
    match message:
        case LessonCard():
            return _lesson(message)
        case QuestionCard():
            return _question(message, lang)
        case FeedbackCard():
            return card(feedback_body(message), f"{message.heading} {message.text}")
        case ReflectionPrompt():
            return _reflection(message, lang)
        case ChecklistCard():
            body = [text(message.heading, size="Large", weight="Bolder"), text(message.intro)]
            body += [text(f"☐ {item}", spacing="Small") for _, item in message.items]
            return card(
                body, f"{message.heading}: {message.intro}", [choice_button(message.confirm)]
            )
        case QuizResult():
            body = [text(message.heading, size="Medium", weight="Bolder"), text(message.text)]
            body += [text(line, spacing="Small") for line in message.missed_topics]
            return card(body, f"{message.heading} {message.text}")
        case CertificateCard():
            return _certificate(message, lang)
        case ProgressCard():
            return card(progress_body(message), message.summary)
        case Actions():
            return card(
                [text(message.text)],
                message.text,
                [choice_button(choice) for choice in message.choices],
            )
        case Text():
            return card([text(message.text)], message.text)
    raise TypeError(f"no Adaptive Card for {type(message).__name__}")


def _lesson(lesson: LessonCard) -> Card:
    body = [
        text(f"{lesson.module_title}  {bar(lesson.progress)}", size="Small", isSubtle=True),
        text(lesson.title, size="Large", weight="Bolder"),
        text(lesson.text),
        {
            "type": "Container",
            "style": "emphasis",
            "items": [
                text(f"💡 **{lesson.tip_label}:** {lesson.tip}"),
            ],
        },
    ]
    actions = None
    if lesson.media_url:
        actions = [
            {
                "type": "Action.OpenUrl",
                "title": lesson.media_label or lesson.media_url,
                "url": lesson.media_url,
            }
        ]
    return card(body, f"{lesson.title}: {lesson.text}", actions)


def _question(question: QuestionCard, lang: Language) -> Card:
    """Radio buttons that wrap long options (buttons in Teams cut them off), then one submit."""
    choices = [
        {"title": option.label, "value": option.value.rsplit("|", 1)[1]}
        for option in question.options
    ]
    body = [
        text(question.heading, weight="Bolder"),
        text(question.prompt),
        {
            "type": "Input.ChoiceSet",
            "id": "option",
            "style": "expanded",
            "wrap": True,
            "choices": choices,
        },
    ]
    value = f"{question.context}|{question.question_id}"
    return card(body, question.prompt, [submit(lang.s("platform.answer_button"), "answer", value)])


def feedback_body(feedback: FeedbackCard) -> list[dict[str, Any]]:
    mark = "✅" if feedback.correct else "💡"
    body = [text(f"{mark} {feedback.heading}", weight="Bolder"), text(feedback.text)]
    if feedback.points:
        body.append(text(f"+{feedback.points}", size="Small", isSubtle=True))
    return body


def answered(
    question: QuestionCard | None, chosen: str, feedback: FeedbackCard, lang: Language
) -> Card:
    """The question card as it stands after the answer: no inputs left, the feedback below (C18)."""
    body = []
    if question is not None:
        body += [text(question.heading, weight="Bolder"), text(question.prompt)]
    body += [text(lang.s("platform.chosen", option=chosen), isSubtle=True)]
    return card(body + feedback_body(feedback), f"{feedback.heading} {feedback.text}")


def _reflection(prompt: ReflectionPrompt, lang: Language) -> Card:
    body = [
        text(prompt.heading, weight="Bolder"),
        text(prompt.prompt),
        {
            "type": "Input.Text",
            "id": "reflection",
            "isMultiline": True,
            "maxLength": 3000,
            "placeholder": lang.s("platform.reflection_hint"),
        },
    ]
    actions = [
        submit(lang.s("platform.reflection_save"), "reflect", prompt.lesson_id),
        choice_button(prompt.skip),
    ]
    return card(body, prompt.prompt, actions)


def done(heading: str, note: str) -> Card:
    """A card whose buttons were used: what was chosen, and nothing left to press."""
    return card([text(heading, weight="Bolder"), text(note, isSubtle=True)], f"{heading} {note}")


def _certificate(certificate: CertificateCard, lang: Language) -> Card:
    body = [
        text(f"🎓 {certificate.heading}", size="Large", weight="Bolder"),
        text(certificate.text),
        {
            "type": "FactSet",
            "facts": [{"title": lang.s("platform.code"), "value": certificate.code}],
        },
    ]
    actions = [
        {
            "type": "Action.OpenUrl",
            "title": lang.s("platform.verify"),
            "url": certificate.verify_url,
        }
    ]
    if certificate.pdf_path:
        actions.append(
            {
                "type": "Action.OpenUrl",
                "title": lang.s("platform.download"),
                "url": certificate.verify_url + "/pdf",
            }
        )
    if certificate.credential_url:
        actions.append(
            {
                "type": "Action.OpenUrl",
                "title": lang.s("credential.button"),
                "url": certificate.credential_url,
            }
        )
    return card(body, f"{certificate.heading}: {certificate.code}", actions)


def progress_body(progress: ProgressCard) -> list[dict[str, Any]]:
    body = [text(progress.heading, size="Medium", weight="Bolder")]
    body += [text(f"{bar(module)}  {module.title}", spacing="None") for module in progress.modules]
    return body + [text(progress.summary, size="Small", isSubtle=True)]


def render_digest(digest: DigestCard) -> list[Card]:
    """A digest as one card, or several when it would pass the size Teams accepts (never cut)."""
    body: list[dict[str, Any]] = [text(digest.heading, size="Large", weight="Bolder")]
    if digest.chart_png:
        body.append(_chart(digest))
    for section in digest.sections:
        body += _digest_section(section, len(digest.sections) > 1)
    if digest.ranking:
        body.append(text(digest.ranking_heading, weight="Bolder", separator=True))
        body += [text(line, spacing="None") for line in digest.ranking]
    if digest.note:
        body.append(text(digest.note, size="Small", isSubtle=True))
    return [card(part, digest.fallback) for part in _split_body(body, digest.fallback)]


def _chart(digest: DigestCard) -> dict[str, Any]:
    encoded = base64.b64encode(digest.chart_png or b"").decode("ascii")
    return {
        "type": "Image",
        "url": f"data:image/png;base64,{encoded}",
        "altText": digest.chart_title,
        "size": "Stretch",
    }


def _digest_section(section: DigestSection, titled: bool) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = []
    if titled:
        body.append(text(section.title, size="Medium", weight="Bolder", separator=True))
    body += [text(line, spacing="None") for line in section.lines]
    if section.overdue_names:
        body.append(text(section.overdue_heading, weight="Bolder"))
        body += [text(chunk, spacing="None") for chunk in _chunks(section.overdue_names)]
    body.append(text(section.topics_heading, weight="Bolder"))
    return body + [text(f"• {topic}", spacing="None") for topic in section.topics]


def _chunks(names: tuple[str, ...], size: int = 2000) -> list[str]:
    """Names as a few text blocks of bounded length, so a long list can be split between cards."""
    chunks, current = [], ""
    for name in names:
        line = f"• {name}"
        if current and len(current) + len(line) + 1 > size:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    return [*chunks, current] if current else chunks


def _size(element: Any) -> int:
    return len(json.dumps(element, ensure_ascii=False).encode())


def _split_body(body: list[dict[str, Any]], fallback: str) -> list[list[dict[str, Any]]]:
    """Pack body elements in order into cards that each stay under CARD_BYTES."""
    room = CARD_BYTES - _size(card([], fallback)) - 2000  # the activity around the card
    parts: list[list[dict[str, Any]]] = [[]]
    used = 0
    for element in body:
        size = _size(element) + 1
        if parts[-1] and used + size > room:
            parts.append([])
            used = 0
        parts[-1].append(element)
        used += size
    return parts
