"""The nis2-coach command: content check, chat, serve, worker, db upgrade, certificate verify."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import certificate as certificates
from bot import dates
from bot.app import DatabaseUnavailable, open_app
from bot.lessons.loader import ContentError, load_course
from bot.lessons.models import TRACKS
from bot.settings import Settings, SettingsError
from bot.store.models import Certificate

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nis2-coach", description="NIS2 awareness training in chat, with evidence."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    chat = commands.add_parser("chat", help="take the course in the terminal")
    chat.add_argument("--lang", choices=["da", "en"], help="language of the course")
    chat.add_argument("--track", choices=TRACKS, help="core, or an add-on track")
    chat.add_argument("--name", help="your name, as it appears on the certificate")

    serve = commands.add_parser("serve", help="run the web server (Slack, Teams, /healthz)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on")
    serve.add_argument("--port", type=int, help="port (default: $PORT or 3000)")
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the worker in this process (or set WITH_WORKER=true)",
    )

    commands.add_parser("worker", help="send daily lessons, reminders, digests and refreshers")

    package = commands.add_parser("teams-package", help="write the Teams app zip to upload")
    package.add_argument("--output", type=Path, default=Path("nis2-coach-teams.zip"))
    package.add_argument(
        "--website",
        default="https://www.example.com",
        help="your public https address (shown in the app's details)",
    )

    content = commands.add_parser("content", help="work with the course content")
    content_commands = content.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = content_commands.add_parser("check", help="check the course and print a summary")
    check.add_argument("dir", nargs="?", type=Path, help="content folder (default: CONTENT_DIR)")

    db = commands.add_parser("db", help="database administration")
    db_commands = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="apply the database migrations")

    cert = commands.add_parser("certificate", help="certificates")
    cert_commands = cert.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = cert_commands.add_parser("verify", help="print valid, expired, revoked or unknown")
    verify.add_argument("code")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")

    if args.command == "teams-package":
        return teams_package(args, settings)
    if args.command == "content":
        try:
            return content_check(args.dir or settings.content_dir)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_FAILED
    runners: dict[str, Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]] = {
        "chat": run_chat,
        "serve": run_serve,
        "db": run_db_upgrade,
        "certificate": run_verify,
        "worker": run_worker,
    }
    try:
        return asyncio.run(runners[args.command](args, settings))
    except ContentError as error:
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (SettingsError, DatabaseUnavailable) as error:
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. piped into head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def teams_package(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.teams import package

    if not settings.microsoft_app_id:
        print("nis2-coach: set MICROSOFT_APP_ID (the bot's app id) first", file=sys.stderr)
        return EXIT_USAGE
    if not args.website.startswith("https://"):
        print("nis2-coach: --website must start with https://", file=sys.stderr)
        return EXIT_USAGE
    path = package.write(args.output, settings.microsoft_app_id, args.website)
    print(f"Teams app package written to {path.resolve()}")
    return EXIT_OK


def content_check(folder: Path) -> int:
    try:
        course = load_course(folder)
    except ContentError as error:
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_FAILED
    summary = course.summary()
    print(f"content OK: {course.meta.id} {course.version} ({course.content_hash[:12]})")
    print(f"  languages:   {summary['languages']} ({', '.join(course.languages)})")
    print(f"  modules:     {summary['modules']}")
    print(
        f"  lessons:     {summary['lessons']} (core {summary['core']}, management "
        f"{summary['management']}, technical {summary['technical']})"
    )
    print(f"  questions:   {summary['questions']} in lessons, {summary['quiz']} in the final quiz")
    print(f"  reflections: {summary['reflections']}")
    print(f"  checklist:   {summary['checklist']} items")
    return EXIT_OK


async def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    from bot.adapters.console import ConsoleChat

    async with open_app(settings) as app:
        return await ConsoleChat(app).run(args.name, args.lang, args.track)


async def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from bot import server

    async with open_app(settings) as app:
        web_app = server.build(app)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        # The course and the libraries live as long as the process: keep them out of the
        # garbage collector's full passes, which otherwise pause every request now and then.
        gc.collect()
        gc.freeze()
        port = args.port or settings.port
        await web.TCPSite(runner, args.host, port).start()
        logger.warning("serving on http://%s:%s (stop with Ctrl-C)", args.host, port)
        stop = _stop_on_signals()
        worker = None
        if args.with_worker or settings.with_worker:
            worker = asyncio.create_task(_work(app, stop, web_app))
        try:
            await stop.wait()
            if worker is not None:
                await worker
        finally:
            await runner.cleanup()
    return EXIT_OK


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    return stop


async def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings) as app:
        await _work(app, _stop_on_signals())
    return EXIT_OK


async def _work(app: Any, stop: asyncio.Event, web_app: Any = None) -> None:
    """Run the worker until `stop`, with a messenger for each platform that is switched on."""
    from bot.worker import Worker

    messengers = build_messengers(app, web_app)
    if not messengers:
        logger.warning("worker: neither Slack nor Teams is configured; nothing will be sent")
    try:
        await Worker(app.coach, messengers).run(stop)
    finally:
        for messenger in messengers.values():
            close = getattr(messenger, "close", None)
            if close is not None:
                await close()


def build_messengers(app: Any, web_app: Any = None) -> dict[str, Any]:
    """The platforms' messengers, reusing the web server's adapters when there is one."""
    from bot import server

    settings = app.settings
    messengers: dict[str, Any] = {}
    if settings.slack_mode() is not None:
        from bot.adapters.slack.app import SlackAdapter
        from bot.adapters.slack.messenger import SlackMessenger

        store = None
        if settings.slack_mode() == "oauth":
            adapter = web_app.get(server.SLACK_KEY) if web_app is not None else None
            store = (adapter or SlackAdapter(app)).installation_store
        messengers["slack"] = SlackMessenger(settings, store)
    if not settings.teams_missing():
        from bot.adapters.teams.app import TeamsAdapter
        from bot.adapters.teams.messenger import TeamsMessenger

        teams = web_app.get(server.TEAMS_KEY) if web_app is not None else None
        messengers["teams"] = TeamsMessenger(teams or TeamsAdapter(app))
    return messengers


async def run_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings):
        print("database is up to date")
    return EXIT_OK


async def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    code = certificates.normalise_code(args.code)
    async with open_app(settings) as app, app.db.session() as session:
        query = select(Certificate).filter_by(code=code)
        certificate = (await session.execute(query)).scalar_one_or_none()
    state = certificates.status(certificate)
    print(state)
    if certificate is not None:
        issued = dates.format_date(certificate.issued_at, "en")
        expires = dates.format_date(certificate.expires_at, "en")
        print(
            "  "
            + ", ".join(filter(None, [certificate.learner_name, certificate.organisation_name]))
        )
        print(
            f"  {certificate.course_title} {certificate.course_version}, score "
            f"{round(certificate.score * 100)} %, issued {issued}, expires {expires}"
        )
        if certificate.revoked_at:
            print(f"  revoked: {certificate.revoked_reason or ''}")
    return EXIT_OK if state == "valid" else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
