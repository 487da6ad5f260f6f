"""The evidence pack as a PDF an auditor reads: summary, management, acknowledgements,
coverage, every person, and the audit log. Layout only; the figures come from bot/evidence.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from bot import audit, dates, evidence
from bot.certificate import font_for
from bot.evidence import Coverage, Row, Scope, Summary, Tally
from bot.lessons.course import Course, Language
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import AuditEvent

ACCENT = colors.HexColor("#1f4e79")
STRIPE = colors.HexColor("#eef3f8")
CHART_MAX_HEIGHT = 150 * mm
# The per-person table's 14 columns in mm, in a smaller font: each is as wide as the longest
# word of its heading (Danish: "Kursusversion", "Refleksioner") or its widest value, so no
# word is broken in the middle; names and teams wrap. Together they fill landscape A4.
PEOPLE_WIDTHS = (26, 16, 16, 14, 14, 16, 16, 16, 47, 17, 14, 19, 16.5, 16.5)
TABLE_CHUNK = 400
# CERTIFICATE_FONT of the pack being drawn: names in scripts Vera and the system fonts lack.
_EXTRA_FONT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "font", default=None
)  # rows per table: long tables split into several lay out much faster


@dataclass
class Pack:
    """Everything one PDF shows, gathered before the layout starts."""

    scope: Scope
    lang: Language
    course: Course
    now: datetime
    months: int
    summary: Summary
    people: list[Row]
    coverage: list[Coverage]
    events: list[AuditEvent]
    font: str | None = None


async def gather(
    db: Database,
    course: Course,
    scope: Scope,
    lang: Language,
    now: datetime,
    settings: Settings,
    progress: evidence.Progress | None = None,
) -> Pack:
    """Read the rows (streamed), the coverage and the audit log: a fixed number of queries."""
    summary, people = Summary(), []
    no_team = lang.s("report.no_team")
    async for chunk in evidence.rows(db, course, scope, now):
        for row in chunk:
            summary.add(row, now.date(), no_team)
        people += chunk
        if progress is not None:
            progress(len(people))
    coverage = await evidence.coverage(db, course, scope, lang)
    since = evidence.since_moment(scope)
    events = await audit.events(db, scope.organisation.id, since)
    months = settings.certificate_valid_months
    font = str(settings.certificate_font) if settings.certificate_font else None
    return Pack(scope, lang, course, now, months, summary, people, coverage, events, font)


async def build(
    db: Database,
    course: Course,
    scope: Scope,
    lang: Language,
    now: datetime,
    settings: Settings,
    progress: evidence.Progress | None = None,
) -> bytes:
    """The whole PDF; the layout runs in a thread so the server keeps answering meanwhile."""
    pack = await gather(db, course, scope, lang, now, settings, progress)
    return await asyncio.to_thread(render, pack)


# -- fonts and paragraphs ---------------------------------------------------------------------


@functools.cache
def _fonts() -> tuple[str, str, frozenset[int]]:
    """Bitstream Vera (shipped with reportlab: all Danish letters), regular and bold."""
    pdfmetrics.registerFont(TTFont("Report-Vera", "Vera.ttf"))
    pdfmetrics.registerFont(TTFont("Report-VeraBd", "VeraBd.ttf"))
    covered = frozenset(pdfmetrics.getFont("Report-Vera").face.charToGlyph)
    return "Report-Vera", "Report-VeraBd", covered


@functools.cache
def _styles() -> dict[str, ParagraphStyle]:
    regular, bold, _ = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=12.5, spaceAfter=5)
    return {
        "title": ParagraphStyle("title", body, fontName=bold, fontSize=20, leading=24),
        "h1": ParagraphStyle(
            "h1", body, fontName=bold, fontSize=14, leading=18, textColor=ACCENT, spaceBefore=6
        ),
        "h2": ParagraphStyle("h2", body, fontName=bold, fontSize=11, leading=14, spaceBefore=4),
        "body": body,
        "small": ParagraphStyle("small", body, fontSize=8, leading=10),
        "cell": ParagraphStyle("cell", body, fontSize=7, leading=8.5, spaceAfter=0),
        "head": ParagraphStyle("head", body, fontName=bold, fontSize=7, leading=8.5, spaceAfter=0),
        "head_narrow": ParagraphStyle(
            "head_narrow", body, fontName=bold, fontSize=6, leading=7.5, spaceAfter=0
        ),
    }


def _p(text: str, style: str = "body") -> Paragraph:
    """A paragraph whose characters all draw: text Vera lacks gets a font that has them."""
    _, _, covered = _fonts()
    markup = escape(text)
    if any(ord(char) not in covered for char in text if not char.isspace()):
        markup = f'<font face="{font_for(text, _EXTRA_FONT.get())}">{markup}</font>'
    return Paragraph(markup, _styles()[style])


def _table(
    header: Sequence[str],
    rows: list[list[str]],
    widths: Sequence[float],
    wrapped: frozenset[int] | None = None,
    narrow: bool = False,
) -> Table:
    """A striped table. Columns in `wrapped` (all by default) wrap as paragraphs; the others
    are plain strings, which reportlab lays out many times faster (dates, counts, codes).
    """
    columns = range(len(header))
    wrap = frozenset(columns) if wrapped is None else wrapped
    data: list[list[Any]] = [[_p(text, "head_narrow" if narrow else "head") for text in header]]
    data += [[_p(t, "cell") if i in wrap else t for i, t in enumerate(row)] for row in rows]
    table = Table(data, colWidths=list(widths), repeatRows=1)
    style = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, ACCENT),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONT", (0, 1), (-1, -1), _fonts()[0], 6 if narrow else 6.5),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    style += [("BACKGROUND", (0, i), (-1, i), STRIPE) for i in range(2, len(data), 2)]
    table.setStyle(TableStyle(style))
    return table


def _tables(
    header: Sequence[str],
    rows: list[list[str]],
    widths: Sequence[float],
    wrapped: frozenset[int] | None = None,
    narrow: bool = False,
) -> list[Any]:
    """Long tables as several, each with the header: reportlab lays small tables out faster."""
    if not rows:
        return [_table(header, [], widths, wrapped, narrow)]
    return [
        _table(header, rows[start : start + TABLE_CHUNK], widths, wrapped, narrow)
        for start in range(0, len(rows), TABLE_CHUNK)
    ]


# -- the document -----------------------------------------------------------------------------


def render(pack: Pack) -> bytes:
    _EXTRA_FONT.set(pack.font)  # render runs in its own thread's context: no other PDF sees it
    buffer = io.BytesIO()
    lang = pack.lang
    document = SimpleDocTemplate(
        buffer,
        pagesize=landscape(A4),
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"{lang.s('report.title')}: {pack.scope.organisation.label}",
        author=pack.scope.organisation.label,
    )
    story = [
        *_front(pack),
        PageBreak(),
        *_management(pack),
        *_acknowledgements(pack),
        PageBreak(),
        *_coverage(pack),
        PageBreak(),
        *_people(pack),
        PageBreak(),
        *_audit_log(pack),
    ]

    def number(canvas: Any, doc: Any) -> None:
        canvas.setFont(_fonts()[0], 7)
        canvas.drawRightString(
            landscape(A4)[0] - 14 * mm, 8 * mm, lang.s("report.page", page=doc.page)
        )

    document.build(story, onFirstPage=number, onLaterPages=number)
    return buffer.getvalue()


def _when(value: datetime | None, lang: Language) -> str:
    return dates.format_date(value, lang.code) if value else lang.s("report.not_yet")


def _front(pack: Pack) -> list[Any]:
    lang, scope, total = pack.lang, pack.scope, pack.summary.total
    course = pack.course
    lines = [
        _p(lang.s("report.title"), "title"),
        _p(
            lang.s(
                "report.subtitle",
                org=scope.organisation.label,
                date=dates.format_date(pack.now, lang.code),
            ),
            "h2",
        ),
    ]
    if scope.team is not None:
        lines.append(_p(lang.s("report.scope_team", team=scope.team.name)))
    if scope.since is not None:
        lines.append(
            _p(lang.s("report.scope_since", date=dates.format_date(scope.since, lang.code)))
        )
    version = lang.s(
        "report.course_line",
        title=lang.text.title,
        version=course.version,
        hash=course.content_hash,
    )
    figures = lang.s(
        "report.summary_line",
        enrolled=total.enrolled,
        completed=total.completed,
        percent=total.percent,
        in_progress=total.in_progress,
        overdue=total.overdue,
    )
    lines += [_p(version, "small"), _p(lang.s("report.summary_heading"), "h1"), _p(figures)]
    teams = sorted(pack.summary.by_team.items())
    tracks = [(lang.s(f"track.{track}"), tally) for track, tally in pack.summary.by_track.items()]
    lines.append(_chart(lang, teams, sorted(tracks)))
    lines += _summary_tables(lang, teams, sorted(tracks))
    return lines


def _summary_tables(
    lang: Language, teams: list[tuple[str, Tally]], tracks: list[tuple[str, Tally]]
) -> list[Any]:
    """By track, then by team: plain tables, so a long list of teams flows onto the next page."""
    header = [
        lang.s("report.group"),
        lang.s("report.enrolled"),
        lang.s("report.completed"),
        lang.s("report.percent"),
        lang.s("report.overdue"),
    ]
    widths = [70 * mm, 22 * mm, 22 * mm, 18 * mm, 22 * mm]

    def rows(groups: list[tuple[str, Tally]]) -> list[list[str]]:
        return [
            [name, str(t.enrolled), str(t.completed), f"{t.percent} %", str(t.overdue)]
            for name, t in groups
        ]

    return [
        _p(lang.s("report.by_track"), "h2"),
        _table(header, rows(tracks), widths),
        _p(lang.s("report.by_team"), "h2"),
        *_tables(header, rows(teams), widths),
    ]


def _chart(
    lang: Language, teams: list[tuple[str, Tally]], tracks: list[tuple[str, Tally]]
) -> Image:
    """Completion per team and per track as horizontal bars, drawn by matplotlib."""
    groups = [*tracks, *teams]
    names = [name for name, _ in groups]
    values = [tally.percent for _, tally in groups]
    height = max(1.6, 0.32 * len(groups) + 0.8)
    figure = Figure(figsize=(9, height), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shades = ["#7f9fbf"] * len(tracks) + ["#1f4e79"] * len(teams)
    axes.barh(range(len(groups)), values, color=shades)
    axes.set_yticks(range(len(groups)), labels=names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_title(lang.s("report.chart_title"), fontsize=9)
    axes.tick_params(axis="x", labelsize=7)
    for index, value in enumerate(values):
        axes.text(min(value + 1, 92), index, f"{value} %", va="center", fontsize=7)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png")
    image.seek(0)
    width = 240 * mm
    scale = min(1.0, CHART_MAX_HEIGHT / (width * height / 9))  # many teams: smaller, never cut
    return Image(image, width=width * scale, height=width * height / 9 * scale)


def _management(pack: Pack) -> list[Any]:
    lang = pack.lang
    managers = [row for row in pack.people if row.track == "management"]
    parts = [
        _p(lang.s("report.management_heading"), "h1"),
        _p(lang.s("report.management_law")),
        _p(lang.s("report.management_practice", months=pack.months), "small"),
    ]
    if not managers:
        return [*parts, _p(lang.s("report.management_none"))]
    done = sum(row.completed is not None for row in managers)
    parts.append(_p(lang.s("report.management_line", completed=done, enrolled=len(managers))))
    header = [
        lang.s("report.column.name"),
        lang.s("report.column.teams"),
        lang.s("report.column.lessons_done"),
        lang.s("report.column.completed"),
        lang.s("report.column.certificate"),
        lang.s("report.column.certificate_status"),
    ]
    rows = [
        [
            _name(row, lang),
            ", ".join(row.teams),
            f"{row.lessons_done} / {row.lessons_planned}",
            _when(row.completed, lang),
            row.certificate or "",
            _status(row, lang),
        ]
        for row in managers
    ]
    widths = [55 * mm, 45 * mm, 25 * mm, 35 * mm, 65 * mm, 30 * mm]
    return [*parts, *_tables(header, rows, widths)]


def _acknowledgements(pack: Pack) -> list[Any]:
    lang = pack.lang
    parts = [
        Spacer(1, 6 * mm),
        _p(lang.s("report.acknowledgements_heading"), "h1"),
        _p(lang.s("report.acknowledgements_intro")),
    ]
    acknowledged = [row for row in pack.people if row.policy or row.procedure]
    if not acknowledged:
        return [*parts, _p(lang.s("report.acknowledgements_none"))]
    header = [
        lang.s("report.column.name"),
        lang.s("report.column.teams"),
        lang.s("report.column.policy"),
        lang.s("report.column.procedure"),
    ]
    rows = [
        [_name(row, lang), ", ".join(row.teams), _moment(row.policy), _moment(row.procedure)]
        for row in acknowledged
    ]
    return [*parts, *_tables(header, rows, [70 * mm, 60 * mm, 60 * mm, 60 * mm])]


def _coverage(pack: Pack) -> list[Any]:
    lang = pack.lang
    header = [
        lang.s("report.provision"),
        lang.s("report.lessons"),
        lang.s("report.completed_share"),
    ]
    rows = []
    for item in pack.coverage:
        lessons = "; ".join(f"{lesson_id} {title}" for lesson_id, title in item.lessons)
        percent = round(100 * item.done / item.total) if item.total else 0
        share = lang.s("report.coverage_share", done=item.done, total=item.total, percent=percent)
        rows.append([lang.s(evidence.PROVISIONS[item.provision]), lessons, share])
    return [
        _p(lang.s("report.coverage_heading"), "h1"),
        _p(lang.s("report.coverage_intro")),
        _table(header, rows, [70 * mm, 150 * mm, 45 * mm]),
    ]


def _people(pack: Pack) -> list[Any]:
    lang = pack.lang
    columns = [
        "name",
        "teams",
        "track",
        "enrolled",
        "deadline",
        "lessons_done",
        "completed",
        "score",
        "certificate",
        "certificate_status",
        "expires",
        "course_version",
        "reminders",
        "reflections",
    ]
    header = [lang.s(f"report.column.{column}") for column in columns]
    rows = [_person(row, lang) for row in pack.people]
    return [
        _p(lang.s("report.people_heading"), "h1"),
        _p(lang.s("report.reflections_note"), "small"),
        *_tables(header, rows, [w * mm for w in PEOPLE_WIDTHS], frozenset({0, 1}), narrow=True),
    ]


def _person(row: Row, lang: Language) -> list[str]:
    score = (
        f"{round(row.score * 100)} / {round(row.pass_mark * 100)}" if row.score is not None else ""
    )
    return [
        _name(row, lang),
        ", ".join(row.teams),
        lang.s(f"track.{row.track}"),
        row.enrolled.date().isoformat(),
        row.deadline.isoformat() if row.deadline else "",
        f"{row.lessons_done} / {row.lessons_planned}",
        row.completed.date().isoformat() if row.completed else "",
        score,
        row.certificate or "",
        _status(row, lang),
        row.expires.date().isoformat() if row.expires else "",
        row.course_version,
        str(row.reminders),
        lang.s("report.yes" if row.reflections else "report.no"),
    ]


def _audit_log(pack: Pack) -> list[Any]:
    lang = pack.lang
    parts = [_p(lang.s("report.audit_heading"), "h1")]
    if not pack.events:
        return [*parts, _p(lang.s("report.audit_none"))]
    header = [
        lang.s("report.time"),
        lang.s("report.actor"),
        lang.s("report.action"),
        lang.s("report.target"),
        lang.s("report.detail"),
    ]
    rows = [
        [
            _moment(event.at),
            event.actor,
            event.action,
            event.target or "",
            ", ".join(f"{key}={value}" for key, value in sorted((event.detail or {}).items())),
        ]
        for event in pack.events
    ]
    return [*parts, *_tables(header, rows, [35 * mm, 50 * mm, 25 * mm, 60 * mm, 95 * mm])]


def _name(row: Row, lang: Language) -> str:
    return lang.s("report.erased") if row.erased else row.name or ""


def _status(row: Row, lang: Language) -> str:
    status = row.certificate_status
    return lang.s(f"report.status.{status}") if status else ""


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""
