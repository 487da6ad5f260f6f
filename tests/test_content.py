"""`nis2-coach content check`: the shipped course passes; each kind of breakage is named."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.lessons.course import Course
from bot.lessons.loader import ContentError, load_course
from bot.settings import REPO_CONTENT


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(REPO_CONTENT, target)
    return target


def edit(path: Path, old: str, new: str, count: int = 1) -> int:
    """Replace text in a content file; return the 1-based line of the first change."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return line


def problems(folder: Path) -> str:
    with pytest.raises(ContentError) as caught:
        load_course(folder)
    return str(caught.value)


def first_lesson_line(path: Path, key: str) -> tuple[str, int]:
    """The first `key:` line of a module file and its number."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(rf"^\s+-?\s*{key}:", line):
            return line, number
    raise AssertionError(f"no {key} in {path}")


def test_shipped_course_passes_and_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "check", str(REPO_CONTENT)]) == 0
    out = capsys.readouterr().out
    assert "content OK" in out
    for word in ("languages:", "modules:", "lessons:", "questions:", "reflections:"):
        assert word in out


def test_shipped_course_meets_the_outline(course: Course) -> None:
    summary = course.summary()
    assert summary["modules"] == 6
    assert summary["core"] >= 18
    assert summary["management"] >= 3
    assert summary["technical"] >= 3
    assert summary["quiz"] >= 20
    assert summary["checklist"] >= 8
    assert summary["reflections"] * 2 >= summary["lessons"]
    assert set(course.languages) == {"da", "en"}
    for language in course.languages.values():
        for lesson in (lesson for module in language.modules for lesson in module.lessons):
            assert lesson.provisions, lesson.id


def test_broken_yaml_names_file_and_line(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = copy / "en" / "m3.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[5] = "  - id: [unclosed"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert main(["content", "check", str(copy)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"content/en/m3\.yaml:\d+: not valid YAML", err), err


def test_missing_field(copy: Path) -> None:
    path = copy / "da" / "m4.yaml"
    line_text, number = first_lesson_line(path, "tip")
    edit(path, line_text + "\n", "")
    message = problems(copy)
    assert re.search(
        r"content/da/m4\.yaml:\d+: lessons\[0\]\.tip: required field is missing", message
    )


def test_unknown_quiz_topic(copy: Path) -> None:
    path = copy / "en" / "m6.yaml"
    text = path.read_text(encoding="utf-8")
    topic = re.search(r"topic: (\S+)", text)[1]
    line = edit(path, f"topic: {topic}", "topic: m9-l9")
    message = problems(copy)
    assert f"content/en/m6.yaml:{line}: quiz[0].topic: unknown lesson id 'm9-l9'" in message


def test_duplicate_id(copy: Path) -> None:
    for code in ("en", "da"):
        path = copy / code / "m3.yaml"
        edit(path, "id: m3-l2\n", "id: m3-l1\n")
    message = problems(copy)
    assert re.search(r"content/en/m3\.yaml:\d+: lessons\[1\]\.id: duplicate id 'm3-l1'", message)


def test_question_without_correct_option(copy: Path) -> None:
    path = copy / "en" / "m1.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("correct: true", "correct: false", 1), encoding="utf-8")
    message = problems(copy)
    assert re.search(r"content/en/m1\.yaml:\d+: lessons\[0\]\.questions\[0\]: .*no option", message)


def test_lesson_over_length(copy: Path) -> None:
    path = copy / "da" / "m2.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    first = data["lessons"][0]["text"].splitlines()[0]
    line = edit(path, first, first + " " + "lang tekst " * 120)
    message = problems(copy)
    assert (
        f"content/da/m2.yaml:{line - 1}: lessons[0].text: String should have at most 1200"
        in message
    )


def test_lesson_missing_in_one_language(copy: Path) -> None:
    path = copy / "da" / "m5.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    removed = data["lessons"].pop()
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    message = problems(copy)
    assert "content/da/m5.yaml:" in message
    assert f"'{removed['id']}' is missing (present in en)" in message


def test_string_missing_in_one_language(copy: Path) -> None:
    path = copy / "da" / "strings.yaml"
    edit(path, "button.retry_quiz:", "# button.retry_quiz:")
    message = problems(copy)
    expected = r"content/da/strings\.yaml:\d+: string 'button\.retry_quiz' is missing"
    assert re.search(expected + r" \(present in en\)", message), message


def test_unknown_provision_and_placeholder(copy: Path) -> None:
    for code in ("en", "da"):
        path = copy / code / "m2.yaml"
        edit(path, '"Art. 21(2)(d)"', '"Art. 99"')
    path = copy / "en" / "m4.yaml"
    _, number = first_lesson_line(path, "tip")
    edit(path, "tip: ", "tip: Call {ceo_mobile}. ")
    message = problems(copy)
    assert "unknown provision 'Art. 99'" in message
    assert (
        f"content/en/m4.yaml:{number}: lessons[0].tip: unknown placeholder {{ceo_mobile}}"
        in message
    )


def test_every_command_refuses_a_broken_course(
    copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(copy / "en" / "m1.yaml", "correct: true", "correct: false")
    monkeypatch.setenv("CONTENT_DIR", str(copy))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    check_message = (main(["content", "check", str(copy)]), capsys.readouterr().err)
    assert check_message[0] == 1
    for argv in (["chat", "--name", "X"], ["db", "upgrade"], ["certificate", "verify", "NIS2-X"]):
        assert main(argv) == 1
        assert capsys.readouterr().err == check_message[1]
    assert not (tmp_path / "x.db").exists()
