"""The nis2-coach command: chat, serve, worker, content, db, certificates, keys, report, data."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import audit, credential, dates, privacy
from bot import certificate as certificates
from bot.app import DatabaseUnavailable, open_app
from bot.lessons.loader import ContentError, load_course
from bot.lessons.models import TRACKS
from bot.settings import MAX_RETENTION_DAYS, Settings, SettingsError
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
    verify = cert_commands.add_parser(
        "verify", help="print valid, expired, revoked or unknown for a code or a credential file"
    )
    verify.add_argument(
        "code", metavar="CODE|FILE", help="a certificate code or a .json credential"
    )
    revoke = cert_commands.add_parser("revoke", help="withdraw a certificate, with a reason")
    revoke.add_argument("code", metavar="CODE", help="the certificate's code, e.g. NIS2-7KQ2-…")
    revoke.add_argument("--reason", required=True, help="why (kept in the audit log)")

    keys = commands.add_parser("keys", help="the key that signs certificate credentials")
    key_commands = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    generate = key_commands.add_parser("generate", help="write a new Ed25519 private key")
    generate.add_argument(
        "--output",
        type=Path,
        default=Path("nis2-coach-signing-key.pem"),
        help="file to write (default: nis2-coach-signing-key.pem; never overwritten)",
    )

    person = commands.add_parser("person", help="a person's data")
    person_commands = person.add_subparsers(dest="action", metavar="ACTION", required=True)
    erase = person_commands.add_parser("erase", help="remove a person's personal data")
    erase.add_argument("--org", required=True, help="organisation: workspace/tenant id or name")
    erase.add_argument("who", metavar="USER_ID", help="platform user id, email or name")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    data = commands.add_parser("data", help="data protection")
    data_commands = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    purge = data_commands.add_parser("purge", help="delete reflection texts past retention")
    purge.add_argument(
        "--days", type=_retention_days, help="1 to 36500 (default: REFLECTION_RETENTION_DAYS)"
    )

    report = commands.add_parser("report", help="write the evidence pack (CSV or PDF)")
    report.add_argument("--org", help="organisation: its external id or name")
    report.add_argument("--team", help="only this team (its name or external id)")
    report.add_argument("--format", choices=["csv", "pdf"], default="csv")
    report.add_argument("--since", metavar="YYYY-MM-DD", help="enrolled or completed from then")
    report.add_argument("--lang", choices=["da", "en"], help="language of the labels")
    report.add_argument("--output", type=Path, help="file to write (default: a dated name)")
    return parser


def _retention_days(value: str) -> int:
    """--days as a whole number of days that date arithmetic can handle."""
    try:
        days = int(value)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of days from 1 to {MAX_RETENTION_DAYS}"
        )
    return days


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
    if args.command == "keys":
        return keys_generate(args)
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
        "certificate": run_certificate,
        "person": run_erase,
        "data": run_purge,
        "report": run_report,
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


def keys_generate(args: argparse.Namespace) -> int:
    """A new signing key, and how to give it to the server."""
    try:
        key = credential.generate_key(args.output)
    except credential.CredentialError as error:
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_USAGE
    path = args.output.resolve()
    print(f"Ed25519 signing key written to {path} (readable by you only)")
    print(f"public key: {credential.did_key(key.public_key())}")
    print("To sign certificates as credentials, set this before starting the server:")
    print(f"  SIGNING_KEY={path}")
    print("Keep the file secret and backed up: credentials signed with it verify only with it.")
    return EXIT_OK


async def run_certificate(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "revoke":
        return await run_revoke(args, settings)
    if args.code.endswith(".json") or await asyncio.to_thread(Path(args.code).is_file):
        return await run_verify_file(args, settings)
    return await run_verify(args, settings)


async def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    code = certificates.normalise_code(args.code)
    async with open_app(settings) as app, app.db.session() as session:
        query = select(Certificate).filter_by(code=code)
        certificate = (await session.execute(query)).scalar_one_or_none()
    state = certificates.status(certificate)
    print(state)
    _describe(certificate)
    return EXIT_OK if state == "valid" else EXIT_FAILED


async def run_verify_file(args: argparse.Namespace, settings: Settings) -> int:
    """Check a credential file: its proof, the signer, then the certificate's status now."""
    try:
        document = json.loads(await asyncio.to_thread(_read_small, Path(args.code)))
    except (OSError, ValueError) as error:
        print(f"nis2-coach: {args.code}: not a readable JSON credential ({error})", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = credential.load_key(settings)
    except credential.CredentialError as error:
        # Our own setting is wrong, not the file: say so, and do not call the file invalid.
        print(f"nis2-coach: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        checked = credential.check(document)
        _check_signer(checked, key)
    except credential.CredentialError as error:
        print(f"invalid: {error}")
        return EXIT_FAILED
    print(f"signature OK (signed by {checked.signer})")
    async with open_app(settings) as app:
        certificate = await certificates.find(app.db, checked.code)
    state = certificates.status(certificate)
    if certificate is not None and not _same_dates(checked, certificate):
        print("invalid: the dates differ from the certificate on record")
        return EXIT_FAILED
    print(state)
    _describe(certificate)
    return EXIT_OK if state == "valid" else EXIT_FAILED


MAX_CREDENTIAL_BYTES = 1_000_000  # a credential is a few kilobytes; never read a huge file


def _read_small(path: Path) -> bytes:
    with path.open("rb") as file:
        data = file.read(MAX_CREDENTIAL_BYTES + 1)
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"larger than {MAX_CREDENTIAL_BYTES:,} bytes")
    return data


def _check_signer(checked: credential.Checked, key: Any) -> None:
    """With a key configured, only credentials signed by this installation are accepted."""
    if key is None:
        print(
            "note: SIGNING_KEY is not set here, so the signature was checked against the key "
            "named in the file only (`nis2-coach keys generate` makes a key)"
        )
        return
    if credential.did_key(key.public_key()) != checked.signer:
        raise credential.CredentialError("signed by another key, not this installation's")


def _same_dates(checked: credential.Checked, certificate: Certificate) -> bool:
    issued = credential.parse_stamp(checked.valid_from)
    expires = credential.parse_stamp(checked.valid_until)
    return (
        issued is not None
        and expires is not None
        and abs((issued - certificate.issued_at).total_seconds()) < 1
        and abs((expires - certificate.expires_at).total_seconds()) < 1
    )


def _describe(certificate: Certificate | None) -> None:
    if certificate is not None:
        issued = dates.format_date(certificate.issued_at, "en")
        expires = dates.format_date(certificate.expires_at, "en")
        holder = ", ".join(filter(None, [certificate.learner_name, certificate.organisation_name]))
        if holder:  # empty once the person's data was erased
            print(f"  {holder}")
        print(
            f"  {certificate.course_title} {certificate.course_version}, score "
            f"{round(certificate.score * 100)} %, issued {issued}, expires {expires}"
        )
        if certificate.revoked_at:
            print(f"  revoked: {certificate.revoked_reason or ''}")


def _operator() -> str:
    """Who ran the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


async def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    reason = args.reason.strip()
    if not reason:
        print("nis2-coach: give a reason with --reason", file=sys.stderr)
        return EXIT_USAGE
    async with open_app(settings) as app:
        found = await certificates.find(app.db, args.code)
        if found is None:
            code = certificates.normalise_code(args.code)
            print(f"nis2-coach: there is no certificate {code}; nothing revoked", file=sys.stderr)
            return EXIT_USAGE
        now = app.coach.clock()
        certificate, changed = await certificates.revoke(app.db, found.id, reason, now)
        if changed:
            await audit.record(
                app.db,
                now,
                certificate.organisation_id,
                _operator(),
                "revoke",
                certificate.code,
                reason=reason,
            )
    if not changed:
        print(f"{certificate.code} was already revoked ({certificate.revoked_reason})")
        return EXIT_OK
    print(f"revoked {certificate.code}: its check page now says so")
    return EXIT_OK


async def run_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase one person, found without doubt, after a confirmation."""
    async with open_app(settings) as app:
        organisations = await privacy.find_organisations(app.db, args.org)
        if len(organisations) != 1:
            problem = "no organisation" if not organisations else "more than one organisation"
            print(f"nis2-coach: {problem} matches {args.org!r}", file=sys.stderr)
            return EXIT_USAGE
        organisation = organisations[0]
        people = await privacy.find_people(app.db, organisation.id, args.who)
        if len(people) != 1:
            print(_ambiguous(args.who, people), file=sys.stderr)
            return EXIT_USAGE
        person = people[0]
        question = (
            f"Erase the personal data of {person.name} ({person.platform_user_id}) in "
            f"{organisation.label}? This cannot be undone. [y/N] "
        )
        if not args.yes and not _confirmed(question):
            print("nothing erased")
            return EXIT_FAILED
        now = app.coach.clock()
        erased = await privacy.erase(app.db, person.id, now)
        detail = {k: v for k, v in vars(erased).items() if k != "person_id"}
        await audit.record(
            app.db, now, organisation.id, _operator(), "erase", f"person:{person.id}", **detail
        )
    print(
        f"erased person {person.id}: {erased.reflections} reflection texts, "
        f"{erased.conversations} conversations, {erased.certificates} certificate names; "
        "answers and certificate codes kept anonymously"
    )
    return EXIT_OK


def _ambiguous(who: str, people: list[Any]) -> str:
    if not people:
        return f"nis2-coach: nobody matches {who!r} (give the platform user id, email or name)"
    ids = ", ".join(person.platform_user_id for person in people)
    return f"nis2-coach: {len(people)} people match {who!r}; give one user id: {ids}"


def _confirmed(question: str) -> bool:
    try:
        return input(question).strip().casefold() in ("y", "yes", "j", "ja")
    except EOFError:
        return False


async def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.days or settings.reflection_retention_days
    if not days or days < 1:
        print(
            "nis2-coach: set REFLECTION_RETENTION_DAYS or give --days (a whole number of days)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    async with open_app(settings) as app:
        deleted = await privacy.purge_reflections(app.db, days, app.coach.clock())
    print(f"deleted {deleted} reflection texts older than {days} days (the rows stay)")
    return EXIT_OK


async def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """The evidence pack for one organisation, streamed to a file; the request is audited."""
    from bot import evidence, reports

    async with open_app(settings) as app:
        lang = app.course.language(args.lang or settings.default_language)
        now = app.coach.clock()
        try:
            scope = await reports.cli_scope(app.db, args.org, args.team, args.since)
        except evidence.ReportError as error:
            print(f"nis2-coach: {lang.s(error.key, **error.values)}", file=sys.stderr)
            return EXIT_USAGE
        path = args.output or Path(reports.filename(scope, args.format, now))
        problem = await asyncio.to_thread(reports.unwritable, path)
        if problem is not None:
            print(f"nis2-coach: {lang.s(problem, path=path, folder=path.parent)}", file=sys.stderr)
            return EXIT_USAGE
        total = await evidence.count_people(app.db, scope)
        progress = reports.progress_printer(lang, total, sys.stderr)
        try:
            people = await reports.write_file(
                path, app.db, app.course, settings, scope, args.format, lang, now, progress
            )
        except OSError as error:
            problem = error.strerror or str(error)
            print(
                f"nis2-coach: {lang.s('report.cli.cannot_write', path=path, problem=problem)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        actor = f"cli:{_login()}"
        await reports.record(app.db, now, scope, actor, [args.format], people=people)
    print(lang.s("report.cli.written", path=path, people=people))
    return EXIT_OK


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
