"""Certificates: unguessable codes, the PDF a learner keeps, and the status an auditor checks."""

from __future__ import annotations

import base64
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

from bot import dates
from bot.store.models import Certificate, utcnow

if TYPE_CHECKING:
    from bot.lessons.course import Language
    from bot.settings import Settings

CODE_PREFIX = "NIS2"
CODE_BYTES = 15  # 120 random bits: far beyond guessing or enumerating
ACCENT = HexColor("#1f4e79")


def new_code() -> str:
    """A random verification code like NIS2-7KQ2-M4XA-…, easy to read aloud and type."""
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().rstrip("=")
    groups = [raw[index : index + 4] for index in range(0, len(raw), 4)]
    return "-".join([CODE_PREFIX, *groups])


def normalise_code(code: str) -> str:
    """Accept codes typed in lower case or with spaces."""
    return "-".join(part for part in code.strip().upper().replace(" ", "-").split("-") if part)


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


def _fonts() -> tuple[str, str]:
    """Bitstream Vera, shipped with reportlab, so names with æ, ø, å and more are drawn."""
    if "CertSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("CertSans", "Vera.ttf"))
        pdfmetrics.registerFont(TTFont("CertSans-Bold", "VeraBd.ttf"))
    return "CertSans", "CertSans-Bold"


def write_pdf(certificate: Certificate, settings: Settings, lang: Language) -> Path:
    """Draw the certificate as a one-page A4 PDF and return where it was written."""
    folder = settings.certificate_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{certificate.code}.pdf").resolve()
    url = settings.verify_url(certificate.code)
    canvas = Canvas(str(path), pagesize=landscape(A4))
    canvas.setTitle(f"{certificate.course_title}: {certificate.learner_name}")
    canvas.setAuthor(certificate.organisation_name)
    _draw(canvas, certificate, lang, url)
    canvas.save()
    return path


def _draw(canvas: Canvas, certificate: Certificate, lang: Language, url: str) -> None:
    regular, bold = _fonts()
    width, height = landscape(A4)
    centre = width / 2
    canvas.setStrokeColor(ACCENT)
    canvas.setLineWidth(3)
    canvas.rect(28, 28, width - 56, height - 56)

    canvas.setFillColor(ACCENT)
    canvas.setFont(bold, 30)
    canvas.drawCentredString(centre, height - 110, lang.s("certificate.pdf_title"))
    canvas.setFillColor(HexColor("#222222"))
    canvas.setFont(regular, 14)
    canvas.drawCentredString(centre, height - 150, lang.s("certificate.pdf_awarded"))
    canvas.setFont(bold, 26)
    canvas.drawCentredString(centre, height - 195, certificate.learner_name)
    canvas.setFont(regular, 14)
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
