"""Bad input at the terminal gets a clear answer and never a traceback; nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot import certificate as certificates
from bot.cli import main


def chat(
    tmp_path: Path, lines: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'coach.db'}",
        "CERTIFICATE_DIR": str(tmp_path / "certificates"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
        check=False,
    )


def test_odd_answers_get_a_friendly_reply(tmp_path: Path) -> None:
    result = chat(
        tmp_path, ["²", "1" * 5000, "0", "-1", "٣", "", "x" * 10000, "quit"], "--name", "Ada"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.count("I didn't catch that") >= 6


def test_a_bad_name_is_refused_clearly(tmp_path: Path) -> None:
    result = chat(tmp_path, [], "--name", "   ")
    assert result.returncode == 2
    assert "1 to 100 characters" in result.stdout
    asked = chat(tmp_path, ["x" * 300, "Grace Hopper", "quit"])
    assert "1 to 100 characters" in asked.stdout
    assert "Hi Grace Hopper" in asked.stdout


def test_quit_and_come_back_where_you_were(tmp_path: Path) -> None:
    first = chat(tmp_path, ["1", "quit"], "--name", "Ada")
    assert "Question 2 of" in first.stdout or "reflection" in first.stdout.lower()
    again = chat(tmp_path, ["quit"])
    assert "Welcome back, Ada" in again.stdout
    assert "Question 1 of" not in again.stdout


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "garbage", "setting DATABASE_URL: not a database URL"),
        ("DATABASE_URL", "sqlite://", "in-memory SQLite database forgets everything"),
        ("DATABASE_URL", "mysql://x@y/z", "only SQLite and PostgreSQL"),
        ("DATABASE_URL", "sqlite:////nonexistent/dir/x.db", "cannot use the database"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test", "cannot use the database"),
        ("LOG_LEVEL", "chatty", "setting LOG_LEVEL"),
        ("CERTIFICATE_VALID_MONTHS", "0", "setting CERTIFICATE_VALID_MONTHS"),
        ("CONTENT_DIR", "/nonexistent", "setting CONTENT_DIR: /nonexistent is not a folder"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    result = chat(tmp_path, ["quit"], "--name", "Ada", env={variable: value})
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_organisation_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "organisation.yaml").write_bytes(b"name: Acme\nhelpdesk: \xff\xfe\n")
    result = chat(tmp_path, ["quit"], "--name", "Ada")
    assert result.returncode == 2
    assert "organisation.yaml: not UTF-8 text" in result.stderr


def test_verify_accepts_codes_typed_with_look_alike_digits() -> None:
    assert certificates.normalise_code("nis2-abc0 d1e8") == "NIS2-ABCO-DIEB"


def test_font_covers_names_beyond_latin_1() -> None:
    """Whenever a font on this machine can draw a whole name, the certificate uses one that can."""
    names = ["Łukasz Żółć", "Jiří Dvořák", "Ιωάννα", "Юлия", "李小龍"]
    present = [path for path in certificates.SYSTEM_FONTS if Path(path).is_file()]
    if not present:
        pytest.skip("no system font with wider coverage on this machine")
    available = [certificates._font(path)[1] for path in present]
    drawable = [n for n in names if any(_chars(n) <= font for font in available)]
    assert len(drawable) >= 4, "DejaVu, Noto or Droid cover Latin, Greek and Cyrillic names"
    for name in drawable:
        font = certificates.font_for(name)
        assert _chars(name) <= certificates._font_coverage(font), name


def _chars(name: str) -> set[int]:
    return {ord(char) for char in name if not char.isspace()}


def test_content_check_of_a_missing_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "check", "/nope"]) == 1
    assert "/nope:1: is not a folder" in capsys.readouterr().err


def test_quit_at_the_name_prompt_is_not_a_name(tmp_path: Path) -> None:
    result = chat(tmp_path, ["quit"])
    assert result.returncode == 0
    assert "Hi quit" not in result.stdout
    again = chat(tmp_path, ["Ada", "quit"])
    assert "Hi Ada" in again.stdout


def test_input_that_is_not_utf8_is_kept(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--name", "Latin"],
        input=b"1\n2\nJeg h\xf8rte\nquit\n",
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"},
    )
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "internal error" not in result.stderr.decode()
    assert "Thank you for your reflection" in out or "Question" in out


def test_a_database_port_out_of_range_is_named(tmp_path: Path) -> None:
    result = chat(
        tmp_path,
        ["quit"],
        "--name",
        "Ada",
        env={"DATABASE_URL": "postgresql://u:p@127.0.0.1:99999/x"},
    )
    assert result.returncode == 2
    assert "cannot use the database" in result.stderr and "Traceback" not in result.stderr
