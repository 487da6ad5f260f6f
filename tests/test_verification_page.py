"""The public certificate check page: every state, both languages, and no bulk guessing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from bot import certificate as certificates
from bot import server
from bot.app import App
from bot.coach import Coach
from bot.lessons.course import Course
from bot.settings import Settings
from bot.store.db import Database
from tests.test_store import _certificate


@pytest.fixture
async def site(course: Course, db: Database, settings: Settings) -> AsyncIterator[tuple]:
    app = App(settings, course, db, Coach(course, db, settings))
    runner = web.AppRunner(server.build(app))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as session:
        yield app, session, f"http://127.0.0.1:{runner.addresses[0][1]}/certificates/"
    await runner.cleanup()


async def fetch(session, url: str, language: str = "en") -> tuple[int, str]:
    async with session.get(url, headers={"Accept-Language": language}) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    ("changes", "english", "danish"),
    [
        ({}, "Valid: this certificate", "Gyldigt: certifikatet"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "Expired:", "Udløbet:"),
        ({"revoked_at": datetime(2026, 1, 1, tzinfo=UTC)}, "Revoked:", "Tilbagekaldt:"),
    ],
)
async def test_the_page_states_the_certificate(site, changes, english, danish) -> None:
    app, session, base = site
    code = await _certificate(app.coach, **changes)
    status, page = await fetch(session, base + code)
    assert status == 200 and english in page and "Ada" in page and 'lang="en"' in page
    status, page = await fetch(session, base + code.lower(), "da-DK,da;q=0.9,en;q=0.8")
    assert status == 200 and danish in page and 'lang="da"' in page


async def test_unknown_and_malformed_codes(site) -> None:
    _, session, base = site
    for code in ("NIS2-AAAA-BBBB-CCCC", "<script>alert(1)<script>", "x" * 500):
        status, page = await fetch(session, base + code)
        assert status == 404 and "Unknown: there is no certificate" in page
        assert "<script>alert" not in page


async def test_a_burst_of_guesses_is_rate_limited(site) -> None:
    _, session, base = site
    statuses = [(await fetch(session, base + f"NIS2-GUESS-{n:04d}"))[0] for n in range(35)]
    assert statuses[:30] == [404] * 30
    assert set(statuses[30:]) == {429}


async def test_healthz_reports_a_database_that_does_not_answer(site) -> None:
    app, session, base = site
    health = base.replace("/certificates/", "/healthz")
    async with session.get(health) as response:
        assert response.status == 200
    working = app.db
    app.db = Database("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    try:
        async with session.get(health) as response:
            assert response.status == 503
            assert "database" in (await response.json())["problems"][0]
    finally:
        await app.db.dispose()
        app.db = working


@pytest.fixture
async def signed_site(course: Course, db: Database, settings: Settings, tmp_path) -> AsyncIterator:
    from bot import credential

    credential.generate_key(tmp_path / "key.pem")
    keyed = settings.model_copy(update={"signing_key": str(tmp_path / "key.pem")})
    app = App(keyed, course, db, Coach(course, db, keyed))
    runner = web.AppRunner(server.build(app))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as session:
        yield app, session, f"http://127.0.0.1:{runner.addresses[0][1]}/certificates/"
    await runner.cleanup()


async def test_the_signed_credential_is_downloadable_beside_the_page(signed_site) -> None:
    from bot import credential

    app, session, base = signed_site
    code = await _certificate(app.coach)
    status, page = await fetch(session, base + code)
    assert status == 200 and f'href="{code}/credential"' in page
    assert "signed credential" in page
    async with session.get(base + code + "/credential") as response:
        assert response.status == 200
        assert response.content_type == "application/vc+ld+json"
        assert f'filename="nis2-certificate-{code}.json"' in response.headers["Content-Disposition"]
        document = await response.json(content_type=None)
    assert credential.check(document).code == code
    assert document["credentialSubject"]["identifier"][0]["identityHash"] == "Ada"
    async with session.get(base + "NIS2-AAAA-BBBB-CCCC/credential") as response:
        assert response.status == 404


async def test_no_credential_without_a_key_or_for_a_revoked_certificate(site, signed_site) -> None:
    app, session, base = site
    code = await _certificate(app.coach)
    status, page = await fetch(session, base + code)
    assert status == 200 and "/credential" not in page
    async with session.get(base + code + "/credential") as response:
        assert response.status == 404
    signed, session, base = signed_site
    stored = await certificates.find(signed.db, code)
    await certificates.revoke(signed.db, stored.id, "a mistake", datetime(2026, 1, 1, tzinfo=UTC))
    revoked = code
    status, page = await fetch(session, base + revoked)
    assert "Revoked:" in page and "/credential" not in page
    async with session.get(base + revoked + "/credential") as response:
        assert response.status == 404


async def test_credential_downloads_are_rate_limited_like_the_page(signed_site) -> None:
    app, session, base = signed_site
    code = await _certificate(app.coach)
    statuses = []
    for _ in range(32):
        async with session.get(base + code + "/credential") as response:
            statuses.append(response.status)
    assert statuses[:30] == [200] * 30 and set(statuses[30:]) == {429}
