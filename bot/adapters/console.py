"""The terminal chat: the whole course with no platform, the default way to try it.

Lessons print as chat messages, options are numbered, reflections are typed.
It reads lines, so a script can drive it through a pipe as well as a person
at a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

from bot import schedule
from bot.app import App
from bot.coach import CoachError
from bot.lessons.course import Language
from bot.lessons.messages import (
    Actions,
    CertificateCard,
    ChecklistCard,
    Choice,
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
from bot.settings import org_profile

logger = logging.getLogger(__name__)

TIME_WORDS = ("time", "tid")  # "time 08:00": the daily lesson's local time

PLATFORM = "console"
ORGANISATION_ID = "local"
BAR_WIDTH = 10
NAME_LIMIT = 100

ReadLine = Callable[[], Awaitable[str | None]]


class StdinReader:
    """Lines from standard input, read by a daemon thread so Ctrl-C never waits for Enter."""

    def __init__(self) -> None:
        self._lines: asyncio.Queue[str | None] | None = None

    async def __call__(self) -> str | None:
        if self._lines is None:
            self._lines = asyncio.Queue()
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._pump, args=(loop, self._lines), daemon=True).start()
        return await self._lines.get()

    @staticmethod
    def _pump(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
        # Bytes decoded here, so a terminal that is not UTF-8 gives odd letters, not errors.
        for raw in sys.stdin.buffer:
            loop.call_soon_threadsafe(lines.put_nowait, raw.decode("utf-8", errors="replace"))
        loop.call_soon_threadsafe(lines.put_nowait, None)


def clean_name(raw: str) -> str | None:
    """A name fit for a certificate: printable, trimmed, 1 to 100 characters."""
    name = " ".join(raw.split())
    if not name or len(name) > NAME_LIMIT or not name.isprintable():
        return None
    return name


def bar(progress: ModuleProgress) -> str:
    return progress.bar("█", "░")


@dataclass
class Prompt:
    """What the learner's next line answers: numbered choices or free text."""

    choices: list[Choice] = field(default_factory=list)
    reflection: ReflectionPrompt | None = None


class ConsoleChat:
    def __init__(self, app: App, read: ReadLine | None = None, out: TextIO = sys.stdout) -> None:
        self.app = app
        self.read = read or StdinReader()
        self.out = out
        self.lang: Language = app.course.language(None)
        self.enrolment_id = 0
        self.prompt = Prompt()

    async def run(self, name: str | None, language: str | None, track: str | None) -> int:
        self.lang = self.app.course.language(language)
        coach = self.app.coach
        profile = org_profile(self.app.settings)
        org = await coach.organisation(
            PLATFORM, ORGANISATION_ID, profile.text("name") or "", profile
        )
        if name is not None and clean_name(name) is None:
            self.say(self.lang.s("chat.bad_name", limit=NAME_LIMIT))
            return 2
        name = (
            clean_name(name or "") or await self._returning_name(org.id) or await self._ask_name()
        )
        if name is None:
            return 0

        person = await coach.person(org.id, name.casefold(), name, language=language)
        enrolment = await coach.current_enrolment(person.id)
        greeting = "chat.welcome_back"
        if enrolment is None:
            enrolment, _ = await coach.enrol(person.id, track or "core", language)
            greeting = "chat.welcome"
        else:
            try:
                enrolment = await coach.set_preferences(enrolment.id, language, track)
            except CoachError as error:
                self.say(self.lang.s(error.key))
        self.enrolment_id = enrolment.id
        self.lang = self.app.course.language(enrolment.language)
        track_name = self.lang.s(f"track.{enrolment.track}")
        self.say(self.lang.s(greeting, name=name, title=self.lang.text.title, track=track_name))
        self.show(await coach.resume(enrolment.id))
        return await self._loop()

    async def _returning_name(self, organisation_id: int) -> str | None:
        return await self.app.coach.last_person_name(PLATFORM, organisation_id)

    async def _ask_name(self) -> str | None:
        self.say(self.lang.s("chat.ask_name"))
        while True:
            line = await self._input()
            if line is None:
                return None
            if self._is(line, "quit"):
                return None
            if self._is(line, "help"):
                self.say(self.lang.s("chat.ask_name"))
                continue
            name = clean_name(line)
            if name is not None:
                return name
            self.say(self.lang.s("chat.bad_name", limit=NAME_LIMIT))

    async def _loop(self) -> int:
        while True:
            line = await self._input()
            if line is None or self._is(line, "quit"):
                self.say(self.lang.s("chat.bye"))
                return 0
            try:
                self.show(await self._handle(line.strip()))
            except CoachError as error:
                self.say(self.lang.s(error.key))
            except Exception as error:  # the top-level handler: log it, apologise, go on
                logger.error(
                    "internal error in the chat: %s",
                    type(error).__name__,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                self.say(self.lang.s("error.internal"))

    async def _handle(self, line: str) -> list[Message]:
        coach = self.app.coach
        if self._is(line, "help"):
            return [Text(self.lang.s("chat.help"))]
        if self._is(line, "progress"):
            return await coach.progress(self.enrolment_id)
        if self._is(line, "next"):
            return await coach.next(self.enrolment_id)
        verb, _, rest = line.partition(" ")
        reflecting = self.prompt.reflection is not None and schedule.parse_time(rest) is None
        if verb.casefold() in TIME_WORDS and not reflecting:
            return await coach.set_lesson_time(self.enrolment_id, rest)
        if self.prompt.reflection is not None:
            return await self._reflect(line)
        choice = self._choice(line)
        if choice is None:
            return [Text(self._not_understood())]
        return await coach.handle(self.enrolment_id, choice.action, choice.value)

    async def _reflect(self, line: str) -> list[Message]:
        prompt = self.prompt.reflection
        if not line:
            return [Text(self.lang.s("chat.reflection_empty"))]
        text = None if self._is(line, "skip") else line
        return await self.app.coach.reflect(self.enrolment_id, prompt.lesson_id, text)

    def _choice(self, line: str) -> Choice | None:
        if line.isascii() and line.isdigit() and len(line) <= 3:
            number = int(line)
            if 1 <= number <= len(self.prompt.choices):
                return self.prompt.choices[number - 1]
        return None

    def _not_understood(self) -> str:
        if self.prompt.choices:
            return self.lang.s("chat.not_understood", count=len(self.prompt.choices))
        return self.lang.s("chat.nothing_to_choose")

    def _is(self, line: str, command: str) -> bool:
        words = self.lang.s(f"chat.command.{command}").split("|")
        return line.strip().casefold() in {command, *words}

    async def _input(self) -> str | None:
        self.out.write("> ")
        self.out.flush()
        return await self.read()

    # -- printing ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out.write(text.rstrip() + "\n\n")
        self.out.flush()

    def show(self, messages: list[Message]) -> None:
        """Print the coach's messages and remember what the next line answers."""
        prompt = Prompt()
        for message in messages:
            self.say(self._render(message, prompt))
        if prompt.choices or prompt.reflection is not None:
            self.prompt = prompt
        if any(isinstance(message, CertificateCard) for message in messages):
            self.prompt = Prompt()
        prompt = self.prompt
        if prompt.reflection is not None:
            self.say(self.lang.s("chat.reflection_hint"))
        elif len(prompt.choices) == 1:
            self.say(self.lang.s("chat.choose_one"))
        elif prompt.choices:
            self.say(self.lang.s("chat.choose", count=len(prompt.choices)))

    def _render(self, message: Message, prompt: Prompt) -> str:
        match message:
            case LessonCard():
                return self._lesson(message)
            case QuestionCard():
                prompt.choices = list(message.options)
                return "\n".join(
                    [f"❓ {message.heading}", message.prompt, *self._numbered(message.options)]
                )
            case FeedbackCard():
                mark = "✅" if message.correct else "💡"
                points = self.lang.s("chat.points", points=message.points) if message.points else ""
                return f"{mark} {message.heading} {points}".rstrip() + f"\n{message.text}"
            case ReflectionPrompt():
                prompt.reflection = message
                return f"✍️  {message.heading}\n{message.prompt}"
            case ChecklistCard():
                prompt.choices = [message.confirm]
                items = [f"  ☐ {text}" for _, text in message.items]
                return "\n".join(
                    [
                        f"📋 {message.heading}",
                        message.intro,
                        "",
                        *items,
                        "",
                        *self._numbered([message.confirm]),
                    ]
                )
            case QuizResult():
                return "\n".join([f"🏁 {message.heading}", message.text, *message.missed_topics])
            case CertificateCard():
                return self._certificate(message)
            case ProgressCard():
                rows = [f"  {bar(module)}  {module.title}" for module in message.modules]
                return "\n".join([f"📊 {message.heading}", *rows, message.summary])
            case Actions():
                prompt.choices = list(message.choices)
                return "\n".join([message.text, *self._numbered(message.choices)])
            case Text():
                return message.text
        raise TypeError(f"no rendering for {type(message).__name__}")

    def _lesson(self, card: LessonCard) -> str:
        lines = [
            f"━━ {card.module_title}  {bar(card.progress)}",
            f"📘 {card.title}",
            "",
            card.text,
            "",
            f"💡 {card.tip_label}: {card.tip}",
        ]
        if card.media_url:
            lines.append(f"🔗 {card.media_label}: {card.media_url}")
        return "\n".join(lines)

    def _certificate(self, card: CertificateCard) -> str:
        lines = [
            f"🎓 {card.heading}",
            card.text,
            self.lang.s("chat.certificate_code", code=card.code),
            self.lang.s("chat.certificate_verify", url=card.verify_url),
        ]
        if card.pdf_path:
            lines.append(self.lang.s("chat.certificate_written", path=card.pdf_path))
        else:
            folder = self.app.settings.certificate_dir.resolve()
            lines.append(self.lang.s("chat.certificate_not_written", folder=folder))
        return "\n".join(lines)

    @staticmethod
    def _numbered(choices: list[Choice] | tuple[Choice, ...]) -> list[str]:
        return [f"  {index}) {choice.label}" for index, choice in enumerate(choices, start=1)]
