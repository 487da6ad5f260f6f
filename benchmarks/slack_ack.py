"""How fast the server acknowledges Slack button clicks, beside a bare Bolt app that only acks.

Runs `nis2-coach serve` (and a bare slack-bolt app) as separate processes on
127.0.0.1, with the Web API answered by the local fake, and sends signed
answer clicks at a fixed rate. Prints p50 and p99 acknowledgement latency and
the throughput for SQLite, PostgreSQL (when it answers) and the bare app.

    .venv/bin/python benchmarks/slack_ack.py [--rate 200] [--seconds 10] [--learners 400]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from bot.coach import Coach  # noqa: E402
from bot.lessons.loader import load_course  # noqa: E402
from bot.lessons.messages import QuestionCard  # noqa: E402
from bot.settings import REPO_CONTENT, Settings  # noqa: E402
from bot.store.db import Database  # noqa: E402
from bot.store.models import Answer  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402

SECRET = "benchmark-signing-secret"
TEAM, TOKEN = "T0BENCH", "xoxb-bench"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

BARE_APP = """
import os
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.adapter.aiohttp import to_bolt_request, to_aiohttp_response
from slack_sdk.web.async_client import AsyncWebClient

bolt = AsyncApp(signing_secret=os.environ["SLACK_SIGNING_SECRET"],
                client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"],
                                      base_url=os.environ["SLACK_API_URL"]))

@bolt.action({"action_id": __import__("re").compile(".*")})
async def on_click(ack):
    await ack()

async def handle(request):
    return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

app = web.Application()
app.router.add_post("/slack/events", handle)
app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sign(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def prepare(
    database_url: str, schema: str | None, learners: int, fake: FakeSlack
) -> list[bytes]:
    """Enrol learners, post each their first question, and build one click body each."""
    client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
    course = load_course(REPO_CONTENT)
    db = Database(database_url, schema)
    await db.upgrade()
    settings = Settings(database_url=database_url, database_schema=schema)
    coach = Coach(course, db, settings)
    organisation = await coach.organisation("slack", TEAM, "Bench")
    bodies = []
    for number in range(learners):
        user = f"U{number:08d}"
        fake.add_user(TEAM, user, f"Learner {number}")
        person = await coach.person(organisation.id, user, f"Learner {number}")
        enrolment, _ = await coach.enrol(person.id)
        card = next(m for m in await coach.next(enrolment.id) if isinstance(m, QuestionCard))
        choice = card.options[0]
        posted = await client.chat_postMessage(channel=user, text=card.prompt)
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A0BENCH",
            "token": "x",
            "trigger_id": "1.2.3",
            "channel": {"id": posted["channel"]},
            "message": {"ts": posted["ts"], "text": card.prompt, "blocks": []},
            "actions": [
                {
                    "action_id": "nis2.answer.0",
                    "value": choice.value,
                    "type": "button",
                    "action_ts": "1.2",
                }
            ],
        }
        bodies.append(urlencode({"payload": json.dumps(payload)}).encode())
    await db.dispose()
    return bodies


async def start(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    # A pipe nobody reads would fill up and stall the server: its log goes to a file.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server process
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
    )
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    process.kill()
    log.seek(0)
    raise RuntimeError(f"server did not start: {log.read().decode()[-2000:]}")


async def load(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict[str, float]:
    """Open-loop load: a click every 1/rate seconds, whatever the server's pace."""
    url = f"http://127.0.0.1:{port}/slack/events"
    latencies: list[float] = []
    failures = 0
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def click(body: bytes) -> None:
            nonlocal failures
            started = time.perf_counter()
            async with session.post(url, data=body, headers=sign(body)) as response:
                await response.read()
                if response.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        tasks = []
        for index in range(total):
            delay = began + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(click(bodies[index % len(bodies)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "throughput": len(ordered) / elapsed,
        "failures": failures,
    }


async def recorded(env: dict[str, str]) -> int:
    db = Database(env["DATABASE_URL"], env.get("DATABASE_SCHEMA"))
    try:
        async with db.session() as session:
            return (await session.execute(select(func.count()).select_from(Answer))).scalar_one()
    finally:
        await db.dispose()


async def drained(env: dict[str, str], expected: int, started: float) -> str:
    """How long until every click's answer is in the database (the work after the ack)."""
    count = 0
    for _ in range(600):
        count = await recorded(env)
        if count >= expected:
            return f"all {count} answers recorded {time.perf_counter() - started:.1f} s after start"
        await asyncio.sleep(0.5)
    return f"only {count} of {expected} answers recorded after 300 s"


async def measure(
    name: str, argv: list[str], env: dict[str, str], bodies: list[bytes], args: argparse.Namespace
) -> dict[str, float]:
    port = free_port()
    process = await start(argv, {**env, "PORT": str(port)}, port)
    warm_up = int(args.rate)
    try:
        started = time.perf_counter()
        await load(port, bodies[:warm_up], args.rate, 1.0)
        figures = await load(port, bodies[warm_up:], args.rate, args.seconds)
        drain = None
        if "DATABASE_URL" in env:
            drain = await drained(
                env, min(len(bodies), int(args.rate * (args.seconds + 1))), started
            )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    print(
        f"{name:<24} p50 {figures['p50_ms']:6.1f} ms   p99 {figures['p99_ms']:6.1f} ms   "
        f"{figures['throughput']:6.1f} clicks/s   non-200: {figures['failures']}",
        flush=True,
    )
    if drain:
        print(f"{'':<24} {drain}", flush=True)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--learners",
        type=int,
        default=0,
        help="learners (default: one per click, so every click is a new answer)",
    )
    args = parser.parse_args()
    args.learners = args.learners or int(args.rate * (args.seconds + 1))

    fake = FakeSlack()
    await fake.start()
    fake.add_workspace(TEAM, TOKEN)
    base = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "LOG_LEVEL": "ERROR",
    }
    print(
        f"{args.rate:.0f} signed clicks per second for {args.seconds:.0f} s, "
        f"{args.learners} learners, {os.cpu_count()} cores",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{folder}/bench.db"
        bodies = await prepare(sqlite_url, None, args.learners, fake)
        serve = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1"]
        results["bare"] = await measure(
            "bare slack-bolt app", [sys.executable, "-c", BARE_APP], base, bodies, args
        )
        results["sqlite"] = await measure(
            "nis2-coach (SQLite)", serve, {**base, "DATABASE_URL": sqlite_url}, bodies, args
        )
        results["postgresql"] = await measure_postgres(serve, base, args, fake)
    await fake.stop()
    report(results, args)


async def measure_postgres(
    serve: list[str], base: dict[str, str], args: argparse.Namespace, fake: FakeSlack
) -> dict[str, float] | None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as error:
        print(f"nis2-coach (PostgreSQL)  skipped: {type(error).__name__}")
        return None
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        bodies = await prepare(PG_URL, schema, args.learners, fake)
        env = {**base, "DATABASE_URL": PG_URL, "DATABASE_SCHEMA": schema}
        return await measure("nis2-coach (PostgreSQL)", serve, env, bodies, args)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def report(results: dict[str, dict[str, float] | None], args: argparse.Namespace) -> None:
    bare = results["bare"]
    for name in ("sqlite", "postgresql"):
        figures = results[name]
        if figures is None:
            continue
        ratio = figures["p99_ms"] / bare["p99_ms"]
        target = figures["p99_ms"] < 100 and ratio <= 1.5
        print(
            f"{name}: p99 {figures['p99_ms']:.1f} ms = {ratio:.2f} x bare "
            f"(target: under 100 ms and at most 1.5 x): {'met' if target else 'NOT met'}"
        )


if __name__ == "__main__":
    asyncio.run(main())
