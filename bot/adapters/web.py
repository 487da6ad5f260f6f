"""The public certificate check: GET /certificates/{code} says valid, expired, revoked, unknown.

A small accessible page in Danish or English (by the browser's language). Codes
are 120 random bits; every answer takes the same minimum time, and each client
may ask a limited number of times a minute, so codes cannot be guessed in bulk.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections import defaultdict, deque

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bot import certificate as certificates
from bot import credential, dates
from bot.app import App
from bot.lessons.course import Language
from bot.store.models import Certificate

logger = logging.getLogger(__name__)

ANSWER_SECONDS = 0.05
PER_MINUTE = 30


class Verification:
    def __init__(self, app: App) -> None:
        self.app = app
        self.asked: dict[str, deque[float]] = defaultdict(deque)
        self.key = _signing_key(app)

    def routes(self, web_app: web.Application) -> None:
        web_app.router.add_get("/certificates/{code}", self.page)
        web_app.router.add_get("/certificates/{code}/pdf", self.pdf)
        web_app.router.add_get("/certificates/{code}/credential", self.credential)

    def _allowed(self, client: str) -> bool:
        now = time.monotonic()
        if len(self.asked) > 10_000:  # forget clients that have gone quiet
            for quiet in [key for key, times in self.asked.items() if now - times[-1] > 60]:
                del self.asked[quiet]
        times = self.asked[client]
        while times and now - times[0] > 60:
            times.popleft()
        times.append(now)
        return len(times) <= PER_MINUTE

    async def page(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        lang = self.app.course.language(_language(request.headers.get("Accept-Language", "")))
        if not self._allowed(request.remote or "?"):
            return _html(lang.code, lang.s("verify.title"), lang.s("verify.too_many"), 429)
        code = certificates.normalise_code(request.match_info["code"])
        certificate = None
        try:
            if len(code) <= 64:
                async with self.app.db.session() as session:
                    query = select(Certificate).filter_by(code=code)
                    certificate = (await session.execute(query)).scalar_one_or_none()
        except (SQLAlchemyError, OSError):
            logger.warning("certificate check failed: the database does not answer")
            return _html(lang.code, lang.s("verify.title"), lang.s("verify.unavailable"), 503)
        state = certificates.status(certificate)
        body = self._body(state, certificate, lang)
        await asyncio.sleep(max(0.0, ANSWER_SECONDS - (time.monotonic() - started)))
        return _html(lang.code, lang.s("verify.title"), body, 200 if certificate else 404)

    async def pdf(self, request: web.Request) -> web.StreamResponse:
        """The certificate PDF, for the Teams card's download link; the code is the key."""
        started = time.monotonic()
        if not self._allowed(request.remote or "?"):
            raise web.HTTPTooManyRequests()
        code = certificates.normalise_code(request.match_info["code"])
        async with self.app.db.session() as session:
            query = select(Certificate).filter_by(code=code)
            certificate = (await session.execute(query)).scalar_one_or_none()
        await asyncio.sleep(max(0.0, ANSWER_SECONDS - (time.monotonic() - started)))
        path = certificates.pdf_path(certificate) if certificate else None
        if path is None or not path.is_file() or certificate.revoked_at is not None:
            raise web.HTTPNotFound()
        return web.FileResponse(
            path,
            headers={
                "Content-Disposition": f'attachment; filename="nis2-certificate-{code}.pdf"',
                "Cache-Control": "no-store",
            },
        )

    async def credential(self, request: web.Request) -> web.Response:
        """The signed Open Badges credential, beside the PDF; offered only with a signing key."""
        started = time.monotonic()
        if not self._allowed(request.remote or "?"):
            raise web.HTTPTooManyRequests()
        code = certificates.normalise_code(request.match_info["code"])
        certificate = await certificates.find(self.app.db, code) if len(code) <= 64 else None
        await asyncio.sleep(max(0.0, ANSWER_SECONDS - (time.monotonic() - started)))
        if self.key is None or not _offered(certificate):
            raise web.HTTPNotFound()
        lang = self.app.course.language(certificate.language)
        body = credential.to_bytes(credential.issue(certificate, self.app.settings, lang, self.key))
        disposition = f'attachment; filename="nis2-certificate-{code}.json"'
        headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
        return web.Response(body=body, content_type=credential.MEDIA_TYPE, headers=headers)

    def _body(self, state: str, certificate: Certificate | None, lang: Language) -> str:
        heading = f"<h2>{html.escape(lang.s(f'verify.{state}'))}</h2>"
        if certificate is None:
            return heading
        rows = {
            lang.s("verify.name"): certificate.learner_name,
            lang.s("verify.organisation"): certificate.organisation_name,
            lang.s("verify.course"): f"{certificate.course_title} {certificate.course_version}",
            lang.s("verify.issued"): dates.format_date(certificate.issued_at, lang.code),
            lang.s("verify.expires"): dates.format_date(certificate.expires_at, lang.code),
            lang.s("verify.code"): certificate.code,
        }
        items = "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows.items() if v
        )
        link = ""
        if self.key is not None and _offered(certificate):
            href = html.escape(f"{certificate.code}/credential")
            link = f'<p><a href="{href}" download>{html.escape(lang.s("credential.link"))}</a></p>'
        return f"{heading}<dl>{items}</dl>{link}"


def _offered(certificate: Certificate | None) -> bool:
    """A credential for a certificate in force or expired; not revoked, not erased."""
    return (
        certificate is not None
        and certificate.revoked_at is None
        and bool(certificate.learner_name)
    )


def _signing_key(app: App) -> credential.Ed25519PrivateKey | None:
    try:
        key = credential.load_key(app.settings)
    except credential.CredentialError as error:
        logger.error("signed credentials are off: %s", error)
        return None
    if key is None:
        logger.warning(
            "signed credentials are off; to switch them on run `nis2-coach keys generate` "
            "and set SIGNING_KEY to the file it writes"
        )
    return key


def _language(header: str) -> str:
    """The first of the browser's languages that the course offers (da or en)."""
    for part in header.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in ("da", "en"):
            return code
    return "en"


def _html(lang: str, title: str, body: str, status: int) -> web.Response:
    page = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;"
        "padding:0 1em;line-height:1.5;color:#1b1b1b}dt{font-weight:600}"
        "dd{margin:0 0 .6em 0}h1{color:#1f4e79}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=page, content_type="text/html", status=status, headers={"Cache-Control": "no-store"}
    )
