"""The terminal chat driven end to end as a script would: through pipes, in both languages.

The driver reads what the bot prints up to its prompt, decides like a learner
would (it knows the right answers from the content), and types a line.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pypdf import PdfReader

from bot.lessons.course import Course, Language
from bot.lessons.models import Question, QuizQuestion

OPTION = re.compile(r"^  (\d+)\) (.+)$")
PROMPT = "> "


@dataclass
class Learner:
    """A scripted learner: misses two lesson questions, fails the quiz once, then passes."""

    lang: Language
    transcript: list[str] = field(default_factory=list)
    failed_quiz: bool = False
    wrong_lesson_answers: int = 0
    certificate_path: str | None = None
    code: str | None = None

    def reply(self, screen: str) -> str:
        self.transcript.append(screen)
        if self.lang.s("quiz.failed_heading") in screen:
            self.failed_quiz = True
        options = _options(screen)
        labels = [label for _, label in options]
        if self.lang.s("chat.reflection_hint") in screen:
            return (
                "Jeg ringer og dobbelttjekker." if self.lang.code == "da" else "I call back first."
            )
        question = self._question(labels)
        if question is not None:
            return self._answer(screen, question, labels)
        for key in (
            "button.next_lesson",
            "button.checklist",
            "button.confirm_checklist",
            "button.retry_quiz",
        ):
            if self.lang.s(key) in labels:
                return str(labels.index(self.lang.s(key)) + 1)
        if self.lang.s("certificate.heading") in screen:
            self.code = re.search(r"(NIS2(?:-[A-Z2-7]{4})+)", screen)[1]
            marker = self.lang.s("chat.certificate_written", path="")
            self.certificate_path = screen.split(marker, 1)[1].splitlines()[0].strip()
            return self.lang.s("chat.command.quit").split("|")[0]
        raise AssertionError(f"the learner does not know what to do with:\n{screen}")

    def _question(self, labels: list[str]) -> Question | None:
        lessons = [lesson for module in self.lang.modules for lesson in module.lessons]
        questions = [q for lesson in lessons for q in lesson.questions] + self.lang.quiz_pool
        return next((q for q in questions if [o.text for o in q.options] == labels), None)

    def _answer(self, screen: str, question: Question, labels: list[str]) -> str:
        in_quiz = isinstance(question, QuizQuestion)
        wrong = [option for option in question.options if not option.correct]
        chosen = question.correct_option
        if in_quiz and not self.failed_quiz:
            chosen = wrong[0]
        elif not in_quiz and self.wrong_lesson_answers < 2:
            self.wrong_lesson_answers += 1
            chosen = wrong[-1]
        return str(labels.index(chosen.text) + 1)


def _options(screen: str) -> list[tuple[int, str]]:
    """The last numbered list on the screen."""
    blocks: list[list[tuple[int, str]]] = [[]]
    for line in screen.splitlines():
        match = OPTION.match(line)
        if match:
            if match[1] == "1":
                blocks.append([])
            blocks[-1].append((int(match[1]), match[2]))
    return blocks[-1]


async def converse(
    argv: list[str], env: dict[str, str], cwd: Path, learner: Learner, limit: int = 2000
) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    buffer = ""
    for _ in range(limit):
        chunk = await asyncio.wait_for(process.stdout.read(65536), timeout=60)
        if not chunk:
            break
        buffer += chunk.decode()
        if not buffer.endswith(PROMPT):
            continue
        screen, buffer = buffer, ""
        answer = learner.reply(screen)
        learner.transcript.append(f"<< {answer}")
        process.stdin.write((answer + "\n").encode())
        await process.stdin.drain()
        if learner.code:
            process.stdin.close()
            break
    await asyncio.wait_for(process.wait(), timeout=60)
    stderr = (await process.stderr.read()).decode()
    assert process.returncode == 0, stderr
    return process.returncode


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(
        DATABASE_URL=database_url,
        CERTIFICATE_DIR=str(tmp_path / "certificates"),
        ORG_FILE=str(tmp_path / "organisation.yaml"),
        ORG_NAME="Nordlys Logistik A/S",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.parametrize("code", ["en", "da"])
async def test_whole_course_through_the_terminal(course: Course, tmp_path: Path, code: str) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'coach.db'}")
    name = "Ada Lovelace" if code == "en" else "Søren Kierkegaard"
    learner = Learner(course.language(code))
    argv = [sys.executable, "-m", "bot", "chat", "--lang", code, "--name", name]
    await converse(argv, env, tmp_path, learner)

    transcript = "\n".join(learner.transcript)
    assert learner.lang.s("quiz.failed_heading") in transcript, "the first attempt should fail"
    assert learner.lang.s("quiz.passed_heading") in transcript
    assert learner.lang.s("question.recap", lesson="").split("“")[0].split("»")[0] in transcript
    assert learner.certificate_path and learner.code

    pdf = PdfReader(learner.certificate_path)
    text = "".join(page.extract_text() for page in pdf.pages)
    assert name in text
    assert learner.code in text
    assert "Nordlys Logistik A/S" in text

    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "certificate", "verify", learner.code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.splitlines()[0] == "valid"
    assert name in verify.stdout
