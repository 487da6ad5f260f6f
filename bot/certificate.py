"""Certificates: unguessable codes, the PDF a learner keeps, and the status an auditor checks."""

from __future__ import annotations

import base64
import functools
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select

from bot import dates
from bot.store.models import Certificate, utcnow

if TYPE_CHECKING:
    from bot.lessons.course import Language
    from bot.settings import Settings
    from bot.store.db import Database

CODE_PREFIX = "NIS2"
CODE_BYTES = 15  # 120 random bits: far beyond guessing or enumerating
ACCENT = HexColor("#1f4e79")


def new_code() -> str:
    """A random verification code like NIS2-7KQ2-M4XA-…, easy to read aloud and type."""
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().rstrip("=")
    groups = [raw[index : index + 4] for index in range(0, len(raw), 4)]
    return "-".join([CODE_PREFIX, *groups])


TYPO = str.maketrans({"0": "O", "1": "I", "8": "B"})


def normalise_code(code: str) -> str:
    """Accept codes typed in lower case, with spaces, or with 0/1/8 for O/I/B (not in base32)."""
    parts = code.strip().upper().replace(" ", "-").split("-")
    cleaned = [part for part in parts if part]
    return "-".join(cleaned[:1] + [part.translate(TYPO) for part in cleaned[1:]])


def status(certificate: Certificate | None, now: datetime | None = None) -> str:
    """valid, expired, revoked or unknown."""
    if certificate is None:
        return "unknown"
    if certificate.revoked_at is not None:
        return "revoked"
    if certificate.expires_at <= (now or utcnow()):
        return "expired"
    return "valid"


def pdf_path(certificate: Certificate) -> Path | None:
    return Path(certificate.pdf_path) if certificate.pdf_path else None


# Fonts tried in order; the first that has every character of a line draws it. Vera ships
# with reportlab; the system fonts widen the coverage (Polish, Czech, Greek, Cyrillic, CJK).
SYSTEM_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
PAGE_MARGIN = 70


@functools.cache
def _font(path: str) -> tuple[str, frozenset[int]] | None:
    """Register a TrueType font once; its name and the characters it can draw."""
    name = f"Cert-{Path(path).stem}"
    try:
        font = TTFont(name, path)
    except Exception:  # a missing or unreadable font file is simply not a candidate
        return None
    pdfmetrics.registerFont(font)
    return name, frozenset(font.face.charToGlyph)


@functools.cache
def _base_fonts() -> tuple[str, str]:
    """Bitstream Vera (shipped with reportlab) for the fixed texts, regular and bold."""
    regular, _ = _font("Vera.ttf")
    bold, _ = _font("VeraBd.ttf")
    return regular, bold


def font_for(text: str, extra: str | None = None) -> str:
    """The first font that can draw every character of `text`, else the one drawing most."""
    candidates = [path for path in (extra, *SYSTEM_FONTS) if path and Path(path).is_file()]
    fonts = [font for font in (_font(path) for path in candidates) if font is not None]
    fonts.append(_font("Vera.ttf"))
    needed = {ord(char) for char in text if not char.isspace()}
    best = max(fonts, key=lambda font: (needed <= font[1], len(needed & font[1])))
    return best[0]


def _font_coverage(name: str) -> frozenset[int]:
    """The characters a registered certificate font can draw."""
    for path in ("Vera.ttf", *SYSTEM_FONTS):
        font = _font(path) if path == "Vera.ttf" or Path(path).is_file() else None
        if font is not None and font[0] == name:
            return font[1]
    return frozenset()


def _fit(canvas: Canvas, text: str, font: str, size: float, width: float) -> float:
    """A font size at which the text fits the width, never below 10 points."""
    while size > 10 and pdfmetrics.stringWidth(text, font, size) > width:
        size -= 1
    return size


def write_pdf(certificate: Certificate, settings: Settings, lang: Language) -> Path:
    """Draw the certificate as a one-page A4 PDF and return where it was written."""
    folder = settings.certificate_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{certificate.code}.pdf").resolve()
    url = settings.verify_url(certificate.code)
    canvas = Canvas(str(path), pagesize=landscape(A4))
    canvas.setTitle(f"{certificate.course_title}: {certificate.learner_name}")
    canvas.setAuthor(certificate.organisation_name)
    _draw(canvas, certificate, lang, url, settings.certificate_font)
    canvas.save()
    return path


def _draw(
    canvas: Canvas, certificate: Certificate, lang: Language, url: str, font: str | None
) -> None:
    regular, bold = _base_fonts()
    width, height = landscape(A4)
    centre = width / 2
    usable = width - 2 * PAGE_MARGIN
    canvas.setStrokeColor(ACCENT)
    canvas.setLineWidth(3)
    canvas.rect(28, 28, width - 56, height - 56)

    canvas.setFillColor(ACCENT)
    canvas.setFont(bold, 30)
    canvas.drawCentredString(centre, height - 110, lang.s("certificate.pdf_title"))
    canvas.setFillColor(HexColor("#222222"))
    canvas.setFont(regular, 14)
    canvas.drawCentredString(centre, height - 150, lang.s("certificate.pdf_awarded"))
    name_font = font_for(certificate.learner_name, font)
    canvas.setFont(name_font, _fit(canvas, certificate.learner_name, name_font, 26, usable))
    canvas.drawCentredString(centre, height - 195, certificate.learner_name)
    if certificate.organisation_name:
        org_font = font_for(certificate.organisation_name, font)
        size = _fit(canvas, certificate.organisation_name, org_font, 14, usable)
        canvas.setFont(org_font, size)
        canvas.drawCentredString(centre, height - 230, certificate.organisation_name)

    issued = dates.format_date(certificate.issued_at, lang.code)
    expires = dates.format_date(certificate.expires_at, lang.code)
    lines = [
        lang.s(
            "certificate.pdf_course",
            title=certificate.course_title,
            version=certificate.course_version,
        ),
        lang.s("certificate.pdf_track", track=lang.s(f"track.{certificate.track}")),
        lang.s(
            "certificate.pdf_score",
            score=round(certificate.score * 100),
            pass_mark=round(certificate.pass_mark * 100),
        ),
        lang.s("certificate.pdf_dates", issued=issued, expires=expires),
    ]
    canvas.setFont(regular, 13)
    for index, line in enumerate(lines):
        canvas.drawCentredString(centre, height - 285 - index * 22, line)

    _draw_qr(canvas, url, x=width - 190, y=60, size=130)
    canvas.setFont(regular, 10)
    canvas.drawString(60, 110, lang.s("certificate.pdf_code", code=certificate.code))
    canvas.drawString(60, 92, lang.s("certificate.pdf_verify", url=url))
    canvas.setFont(regular, 7)
    canvas.drawString(60, 74, lang.s("certificate.pdf_hash", hash=certificate.content_hash))


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    widget = QrCodeWidget(url)
    left, bottom, right, top = widget.getBounds()
    drawing = Drawing(
        size, size, transform=[size / (right - left), 0, 0, size / (top - bottom), 0, 0]
    )
    drawing.add(widget)
    renderPDF.draw(drawing, canvas, x, y)


async def find(db: Database, code: str, organisation_id: int | None = None) -> Certificate | None:
    """The certificate with this code; with an organisation, only if it is that one's."""
    query = select(Certificate).filter_by(code=normalise_code(code))
    if organisation_id is not None:
        query = query.filter_by(organisation_id=organisation_id)
    async with db.session() as session:
        return (await session.execute(query)).scalar_one_or_none()


async def revoke(
    db: Database, certificate_id: int, reason: str, now: datetime
) -> tuple[Certificate, bool]:
    """Withdraw a certificate with a reason; (certificate, False) if it already was."""
    async with db.session() as session:
        certificate = await session.get_one(Certificate, certificate_id)
        if certificate.revoked_at is not None:
            return certificate, False
        certificate.revoked_at, certificate.revoked_reason = now, reason
        return certificate, True
