"""The evidence pack against a known set of learners: CSV rows exactly, the PDF read back."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pytest
from pypdf import PdfReader

from bot import dates, evidence, evidence_pdf
from bot.coach import Coach
from bot.dates import add_months
from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from tests.evidence_data import SECRET, START, Acme, Clock, build


@pytest.fixture
def clocked(course: Course, db: Database, settings: Settings) -> Coach:
    return Coach(course, db, settings, clock=Clock(START))


async def csv_text(coach: Coach, scope: evidence.Scope, language: str) -> str:
    out = io.BytesIO()
    lang = coach.course.language(language)
    await evidence.write_csv(out, coach.db, coach.course, scope, lang, coach.clock())
    data = out.getvalue()
    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM, so Excel reads æ, ø and å"
    return data.decode("utf-8-sig")


def expected_row(course: Course, acme: Acme, name: str, team: str, track: str, **extra) -> list:
    """The CSV row the known data must give; `extra` holds what differs per person."""
    completed = acme.completed.get(name)
    code = acme.codes.get(name, "")
    day = completed.date().isoformat() if completed else ""
    expires = add_months(completed, 12).date().isoformat() if completed else ""
    row = {
        "name": name,
        "teams": team,
        "track": track,
        "status": "completed" if completed else "active",
        "enrolled": "2026-03-02",
        "deadline": "2026-03-31",
        "lessons_done": str(len(course.language("en").plan(track))),
        "lessons_planned": str(len(course.language("en").plan(track))),
        "completed": day,
        "score": "100" if completed else "",
        "pass_mark": "80",
        "certificate": code,
        "issued": day,
        "expires": expires,
        "certificate_status": "valid" if completed else "",
        "course_version": course.version,
        "content_hash": course.content_hash,
        "reminders": "0",
        "reflections": "yes",
        "policy": "",
        "procedure": "",
    }
    row.update(extra)
    return [row[column] for column in evidence.COLUMNS]


async def test_csv_rows_are_exactly_the_known_learners(clocked: Coach, course: Course) -> None:
    acme = await build(clocked, course)
    organisation = await evidence.find_organisation(clocked.db, "acme")
    text = await csv_text(clocked, evidence.Scope(organisation), "en")

    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == evidence.header(course.language("en"))
    acknowledged = acme.acknowledged.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows[1:] == [
        expected_row(course, acme, "Birgitte Bestyrelse", "Ledelse", "management"),
        expected_row(course, acme, "Ida Igang", "Økonomi", "core", lessons_done="3"),
        expected_row(course, acme, "Mads Mangler", "Ledelse", "management", lessons_done="2"),
        expected_row(
            course,
            acme,
            "Otto Overskredet",
            "Lager",
            "core",
            lessons_done="0",
            deadline="2026-03-10",
            reminders="2",
            reflections="no",
        ),
        expected_row(
            course,
            acme,
            "Pia Politik",
            "Økonomi",
            "core",
            enrolled="2026-03-10",
            policy=acknowledged,
            procedure=acknowledged,
        ),
        expected_row(
            course, acme, "Rikke Revoked", "Økonomi", "core", certificate_status="revoked"
        ),
        expected_row(course, acme, "Søren Ærø", "Økonomi", "core"),
        expected_row(
            course,
            acme,
            "Ulla Udmeldt",
            "Lager",
            "core",
            status="unenrolled",
            lessons_done="0",
            deadline="2026-03-10",
            reflections="no",
        ),
    ]
    assert SECRET not in text and "Gus Globex" not in text


async def test_csv_filters_language_and_chunks(clocked: Coach, course: Course) -> None:
    await build(clocked, course)
    organisation = await evidence.find_organisation(clocked.db, "Acme A/S")
    ledelse = await evidence.find_team(clocked.db, organisation, "#Ledelse")

    danish = await csv_text(clocked, evidence.Scope(organisation, ledelse), "da")
    rows = list(csv.reader(io.StringIO(danish), delimiter=";"))
    assert rows[0][:3] == ["Navn", "Team", "Forløb"]
    assert [row[0] for row in rows[1:]] == ["Birgitte Bestyrelse", "Mads Mangler"]
    column = {name: index for index, name in enumerate(evidence.COLUMNS)}
    assert rows[1][column["track"]] == "ledelse" and rows[1][column["status"]] == "gennemført"
    assert rows[1][column["certificate_status"]] == "gyldigt"
    assert rows[1][column["reflections"]] == "ja"

    since = evidence.Scope(organisation, since=date(2026, 3, 9))
    names = [row[0] for row in csv.reader(io.StringIO(await csv_text(clocked, since, "en")))]
    assert names[1:] == ["Pia Politik"]

    chunks = [
        len(chunk)
        async for chunk in evidence.rows(
            clocked.db, course, evidence.Scope(organisation), clocked.clock(), chunk=3
        )
    ]
    assert chunks == [3, 3, 2]
    assert await evidence.count_people(clocked.db, evidence.Scope(organisation)) == 8


async def test_pdf_shows_summary_management_coverage_acknowledgements_and_audit(
    clocked: Coach, course: Course, settings: Settings
) -> None:
    acme = await build(clocked, course)
    organisation = await evidence.find_organisation(clocked.db, "acme")
    lang = course.language("da")
    pdf = await evidence_pdf.build(
        clocked.db, course, evidence.Scope(organisation), lang, clocked.clock(), settings
    )
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    text = "\n".join(pages)

    summary = lang.s(
        "report.summary_line", enrolled=7, completed=4, percent=57, in_progress=2, overdue=1
    )
    assert summary in pages[0]
    assert "Økonomi\n4\n3\n75 %\n0" in pages[0] and "Lager\n1\n0\n0 %\n1" in pages[0]
    assert "basis\n5\n3\n60 %\n1" in pages[0] and "ledelse\n2\n1\n50 %\n0" in pages[0]

    management = next(page for page in pages if lang.s("report.management_heading") in page)
    completed = dates.format_date(acme.completed["Birgitte Bestyrelse"], "da")
    assert f"Birgitte Bestyrelse\nLedelse\n26 / 26\n{completed}" in management
    assert "Mads Mangler\nLedelse\n2 / 26\nendnu ikke" in management
    assert lang.s("report.management_line", completed=1, enrolled=2) in management
    assert "NIS 2-loven § 7, stk. 2" in management and "Praksis, ikke lov" in management

    moment = acme.acknowledged.strftime("%Y-%m-%d %H:%M")
    assert f"Pia Politik\nØkonomi\n{moment}\n{moment}" in management

    coverage = " ".join(next(p for p in pages if lang.s("report.coverage_heading") in p).split())
    for provision, share in [
        ("report.provision.art20_2", "1 af 2 (50 %)"),
        ("report.provision.art21_2_g", "4 af 7 (57 %)"),
        ("report.provision.art23", "4 af 7 (57 %)"),
        ("report.provision.dk7_2", "1 af 2 (50 %)"),
    ]:
        start = coverage.index(" ".join(lang.s(provision).split()))
        assert share in coverage[start:].split("%)")[0] + "%)", provision
    assert "m1-l5" in coverage and "m5-l4" in coverage

    assert "Søren Ærø" in text and acme.codes["Rikke Revoked"].split("-")[1] in text
    assert "tilbageka" in text  # the revoked certificate's status (the cell may wrap)
    audit = pages[-1]
    assert lang.s("report.audit_heading") in audit
    assert "2026-03-02 08:00\nUADMIN\nenrol\n#Økonomi\ncount=3" in audit
    assert SECRET not in text and "Gus Globex" not in text


def test_the_coverage_matrix_names_lessons_declaring_each_provision(course: Course) -> None:
    items = evidence.coverage_lessons(course, course.language("en"))
    assert [item.provision for item in items] == list(evidence.PROVISIONS)
    for item in items:
        assert item.lessons, f"no lesson serves {item.provision}"
        for lesson_id, _title in item.lessons:
            assert item.provision in course.language("en").lesson(lesson_id).provisions


def test_progress_lines_only_for_a_terminal_or_a_large_export(course: Course) -> None:
    from bot import reports

    class Stream(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    lang = course.language("en")
    assert reports.progress_printer(lang, 50, Stream(tty=False)) is None
    quiet_but_large = Stream(tty=False)
    reports.progress_printer(lang, 100_000, quiet_but_large)(1000)
    assert quiet_but_large.getvalue() == "1,000 / 100,000 people\n"
    terminal = Stream(tty=True)
    reports.progress_printer(course.language("da"), 2500, terminal)(2000)
    assert terminal.getvalue() == "2.000 / 2.500 personer\n"


def test_file_names_are_safe(course: Course) -> None:
    from bot import reports
    from bot.store.models import Organisation, Team

    organisation = Organisation(external_id="T0ACME", name="Acme")
    scope = evidence.Scope(organisation, Team(name="Økonomi & løn"))
    now = datetime.fromisoformat("2026-03-31T12:00:00+00:00")
    assert (
        reports.filename(scope, "pdf", now) == "nis2-evidence-T0ACME-_konomi___l_n-2026-03-31.pdf"
    )


async def run_cli(settings: Settings, *argv: str) -> int:
    from bot import cli

    args = cli.build_parser().parse_args(["report", *argv])
    return await cli.run_report(args, settings)


async def test_cli_report_writes_files_audits_and_refuses_bad_input(
    clocked: Coach, course: Course, settings: Settings, tmp_path, capsys
) -> None:
    import getpass

    from bot import audit, cli

    await build(clocked, course)

    assert await run_cli(settings) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "There are several organisations; choose one with --org" in error
    assert "acme  Acme A/S (test)" in error and "globex  Globex (test)" in error
    assert await run_cli(settings, "--org", "nope") == cli.EXIT_USAGE
    assert "There is no organisation “nope”" in capsys.readouterr().err
    assert await run_cli(settings, "--org", "acme", "--team", "Sales") == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert "Organisation Acme A/S has no team “Sales”. Its teams: Lager, Ledelse, Økonomi" in error
    for bad in ("2026-13-01", "31-03-2026", "yesterday"):
        assert await run_cli(settings, "--org", "acme", "--since", bad) == cli.EXIT_USAGE
        assert f"“{bad}” isn't a date; write it as YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["report", "--format", "xls"])
    assert exit_info.value.code == cli.EXIT_USAGE
    assert not list(tmp_path.glob("*.csv")) and not list(tmp_path.glob("*.pdf"))

    output = tmp_path / "evidence.csv"
    assert await run_cli(settings, "--org", "Acme A/S", "--output", str(output)) == cli.EXIT_OK
    assert f"Evidence pack written to {output} (people in it: 8)." in capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(output.read_text("utf-8-sig"))))
    assert len(rows) == 9 and rows[7][0] == "Søren Ærø" and rows[8][0] == "Ulla Udmeldt"

    pdf = tmp_path / "ledelse.pdf"
    argv = ["--org", "acme", "--team", "Ledelse", "--format", "pdf", "--lang", "da"]
    assert await run_cli(settings, *argv, "--output", str(pdf)) == cli.EXIT_OK
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Birgitte Bestyrelse" in text and "Søren Ærø" not in text
    assert not list(tmp_path.glob("*.partial"))

    organisation = await evidence.find_organisation(clocked.db, "acme")
    events = [e for e in await audit.events(clocked.db, organisation.id) if e.action == "report"]
    assert [(e.actor, e.target, e.detail["formats"]) for e in events] == [
        (f"cli:{getpass.getuser()}", "Acme A/S", "csv"),
        (f"cli:{getpass.getuser()}", "Ledelse", "pdf"),
    ]


async def test_a_large_export_streams_with_a_constant_number_of_queries(
    clocked: Coach, course: Course
) -> None:
    from sqlalchemy import Select, event, insert, select

    from bot.store.models import Enrolment, Person

    organisation = await clocked.organisation("test", "big", "Big Corp")
    scope = evidence.Scope(organisation)
    statements: list[str] = []

    def counted(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    async def export() -> tuple[int, list[int]]:
        seen: list[int] = []
        statements.clear()
        event.listen(clocked.db.engine.sync_engine, "before_cursor_execute", counted)
        try:
            out = io.BytesIO()
            lang = course.language("en")
            written = await evidence.write_csv(
                out, clocked.db, course, scope, lang, clocked.clock(), seen.append
            )
        finally:
            event.remove(clocked.db.engine.sync_engine, "before_cursor_execute", counted)
        assert out.getvalue().decode("utf-8-sig").count("\r\n") == written + 1
        return len(statements), seen

    async def add_people(start: int, count: int) -> None:
        async with clocked.db.session() as session:
            people = [
                {"organisation_id": organisation.id, "platform_user_id": f"U{n}", "name": f"P{n}"}
                for n in range(start, start + count)
            ]
            await session.execute(insert(Person), people)
        async with clocked.db.session() as session:
            ids = (await session.execute(select_ids(organisation.id))).scalars().all()
            enrolments = [
                {
                    "organisation_id": organisation.id,
                    "person_id": person_id,
                    "track": "core",
                    "language": "en",
                    "content_version": course.version,
                    "content_hash": course.content_hash,
                    "enrolled_at": START,
                }
                for person_id in ids
            ]
            await session.execute(insert(Enrolment), enrolments)

    def select_ids(organisation_id: int) -> Select:
        enrolled = select(Enrolment.person_id)
        return select(Person.id).where(
            Person.organisation_id == organisation_id, Person.id.not_in(enrolled)
        )

    await add_people(0, 5)
    small_queries, small_progress = await export()
    await add_people(5, 2495)
    large_queries, large_progress = await export()
    assert small_progress == [5]
    assert large_progress == [1000, 2000, 2500]
    assert large_queries == small_queries


async def test_the_installed_command_exits_2_with_a_specific_message(tmp_path) -> None:
    import asyncio
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'coach.db'}", "ORG_FILE": str(tmp_path / "o")}

    async def run(*argv: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "report", *argv],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )

    bad_date = await run("--since", "2026-02-30")
    assert bad_date.returncode == 2
    assert "“2026-02-30” isn't a date; write it as YYYY-MM-DD" in bad_date.stderr
    nothing = await run("--lang", "da")
    assert nothing.returncode == 2
    assert "Ingen organisation har brugt coachen endnu" in nothing.stderr
    assert not list(tmp_path.glob("*.csv"))


def test_a_pdf_with_many_teams_still_lays_out(course: Course) -> None:
    from bot.evidence import Summary, Tally
    from bot.store.models import Organisation

    summary = Summary(total=Tally(600, 300, 30))
    summary.by_track = {"core": Tally(600, 300, 30)}
    summary.by_team = {f"Team {n:03}": Tally(10, n % 11, 1) for n in range(60)}
    lang = course.language("en")
    pack = evidence_pdf.Pack(
        evidence.Scope(Organisation(external_id="big", name="Big")),
        lang,
        course,
        datetime.fromisoformat("2026-03-31T12:00:00+00:00"),
        12,
        summary,
        [],
        evidence.coverage_lessons(course, lang),
        [],
    )
    text = "\n".join(
        page.extract_text() for page in PdfReader(io.BytesIO(evidence_pdf.render(pack))).pages
    )
    assert "Team 000" in text and "Team 059" in text


async def test_cli_report_to_a_place_it_cannot_write_says_so_and_audits_nothing(
    clocked: Coach, course: Course, settings: Settings, tmp_path, capsys
) -> None:
    from bot import audit, cli

    await build(clocked, course)
    missing = tmp_path / "no-such-folder" / "evidence.csv"
    assert await run_cli(settings, "--org", "acme", "--output", str(missing)) == cli.EXIT_USAGE
    assert f"there is no folder {missing.parent}" in capsys.readouterr().err
    argv = ["--org", "acme", "--format", "pdf", "--output", str(tmp_path)]
    assert await run_cli(settings, *argv) == cli.EXIT_USAGE
    assert f"{tmp_path} is a folder; give --output a file name" in capsys.readouterr().err
    blocked = tmp_path / "evidence.csv"
    (tmp_path / "evidence.csv.partial").mkdir()  # the file system refuses the write itself
    assert await run_cli(settings, "--org", "acme", "--output", str(blocked)) == cli.EXIT_USAGE
    assert f"Cannot write the evidence pack to {blocked}" in capsys.readouterr().err
    assert not blocked.exists()

    organisation = await evidence.find_organisation(clocked.db, "acme")
    events = await audit.events(clocked.db, organisation.id)
    assert not [event for event in events if event.action == "report"]


@pytest.mark.parametrize("language", ["da", "en"])
async def test_the_per_person_table_breaks_no_heading_word_in_the_middle(
    clocked: Coach, course: Course, settings: Settings, language: str
) -> None:
    acme = await build(clocked, course)
    organisation = await evidence.find_organisation(clocked.db, "acme")
    lang = course.language(language)
    pdf = await evidence_pdf.build(
        clocked.db, course, evidence.Scope(organisation), lang, clocked.clock(), settings
    )
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    table = next(page for page in pages if lang.s("report.people_heading") in page)
    words = set(table.split())
    for column in ("lessons_done", "score", "certificate_status", "course_version", "reflections"):
        heading = lang.s(f"report.column.{column}")
        assert set(heading.split()) <= words, f"{heading!r} is broken inside a word"
    for code in acme.codes.values():
        assert code in words
    assert lang.s("track.management") in words


async def test_an_organisation_without_a_name_is_shown_by_its_id(
    clocked: Coach, course: Course, settings: Settings, capsys
) -> None:
    from bot import cli

    organisation = await clocked.organisation("console", "local", "")  # the terminal chat's
    lang = course.language("en")
    pdf = await evidence_pdf.build(
        clocked.db, course, evidence.Scope(organisation), lang, clocked.clock(), settings
    )
    first = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "\nlocal · produced " in first
    assert await run_cli(settings, "--team", "Sales") == cli.EXIT_USAGE
    assert "Organisation local has no team “Sales”" in capsys.readouterr().err
    assert await run_cli(settings, "--team", "") == cli.EXIT_USAGE
    assert "Organisation local has no team “”" in capsys.readouterr().err


async def test_the_report_of_one_person_reads_well(
    clocked: Coach, course: Course, settings: Settings, tmp_path, capsys
) -> None:
    from bot import cli

    organisation = await clocked.organisation("console", "local", "Nordlys")
    person = await clocked.person(organisation.id, "ada", "Ada")
    await clocked.enrol(person.id)
    output = tmp_path / "one.pdf"
    assert await run_cli(settings, "--format", "pdf", "--output", str(output)) == cli.EXIT_OK
    assert f"Evidence pack written to {output} (people in it: 1)." in capsys.readouterr().out
    first = PdfReader(output).pages[0].extract_text()
    assert "Enrolled: 1 · completed: 0 (0 %) · in progress: " in first
    assert "1 people" not in first


def _draws_chinese(fonts: tuple[str, ...]) -> bool:
    from pathlib import Path

    return any(Path(font).is_file() for font in fonts if "Fallback" in font or "CJK" in font)


async def test_the_evidence_pdf_draws_names_with_the_certificate_font(
    clocked: Coach, course: Course, settings: Settings
) -> None:
    from pathlib import Path

    import matplotlib

    from bot import certificate

    if _draws_chinese(certificate.SYSTEM_FONTS):
        pytest.skip("a system font here draws Chinese already")
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    organisation = await clocked.organisation("console", "local", "Nordlys")
    person = await clocked.person(organisation.id, "wang", "王小明")
    await clocked.enrol(person.id)

    async def fonts(extra: Path | None) -> set[str]:
        configured = settings.model_copy(update={"certificate_font": extra})
        lang, scope = course.language("en"), evidence.Scope(organisation)
        pdf = await evidence_pdf.build(clocked.db, course, scope, lang, clocked.clock(), configured)
        names = set()
        for page in PdfReader(io.BytesIO(pdf)).pages:
            for item in page["/Resources"]["/Font"].values():
                names.add(str(item.get_object()["/BaseFont"]))
        return names

    assert not any("DejaVuSans-Bold" in name for name in await fonts(None))
    assert any("DejaVuSans-Bold" in name for name in await fonts(font))
