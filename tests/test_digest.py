"""The weekly digest: exact figures for known learners, counts only, each team and organisation
its own, split to fit Slack and Teams, and a chart that is a real PNG."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image
from slack_sdk.models.blocks import Block

from bot.adapters.slack import blocks
from bot.adapters.teams import cards
from bot.coach import Coach
from bot.digest import Digests
from bot.lessons.messages import DigestCard, DigestSection
from bot.store.db import Database
from bot.store.models import (
    Answer,
    Certificate,
    Enrolment,
    LessonDelivery,
    Organisation,
    Person,
    Reflection,
    Team,
    TeamManager,
    TeamMember,
)
from tests.cards import library_problems_or_skip, schema_errors_or_skip
from tests.test_slack_blocks import check_block

TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
SECRET_REFLECTION = "I once gave my password to a caller named Zebedee"


def days(n: int) -> datetime:
    return NOW - timedelta(days=n)


@dataclass
class World:
    acme: int
    other: int
    security: int
    sales: int
    mia: int  # manages Security
    sam: int  # manages Sales
    olga: int  # manages Ops in the other organisation
    topics: list[str]


class Builder:
    """Rows written straight into the store, with the timestamps each case needs."""

    def __init__(self, coach: Coach) -> None:
        self.coach = coach
        self.rows: list[object] = []
        self.next_id = 1

    def id(self) -> int:
        self.next_id += 1
        return self.next_id

    def person(self, org: int, name: str, active: bool = True) -> int:
        person_id = self.id()
        self.rows.append(
            Person(
                id=person_id,
                organisation_id=org,
                platform_user_id=name.casefold().replace(" ", "."),
                name=name,
                language="en",
                active=active,
            )
        )
        return person_id

    def learner(
        self,
        org: int,
        team: int,
        name: str,
        enrolled: int,
        deadline: int | None = None,
        started: int | None = None,
        certified: int | None = None,
        status: str = "active",
        active: bool = True,
    ) -> int:
        """A learner enrolled `enrolled` days ago; the other numbers are days ago too."""
        person_id = self.person(org, name, active)
        self.rows.append(TeamMember(team_id=team, person_id=person_id))
        enrolment_id = self.id()
        self.rows.append(
            Enrolment(
                id=enrolment_id,
                organisation_id=org,
                person_id=person_id,
                cycle=1,
                track="core",
                language="en",
                deadline=None if deadline is None else TODAY - timedelta(days=deadline),
                status=status,
                content_version="test",
                content_hash="x" * 64,
                enrolled_at=days(enrolled),
                completed_at=None if certified is None else days(certified),
            )
        )
        if started is not None:
            self.rows.append(
                LessonDelivery(
                    enrolment_id=enrolment_id,
                    lesson_id="first",
                    position=1,
                    content_version="test",
                    delivered_at=days(started),
                )
            )
        if certified is not None:
            self.rows.append(
                Certificate(
                    code=f"code-{enrolment_id}",
                    enrolment_id=enrolment_id,
                    organisation_id=org,
                    person_id=person_id,
                    learner_name=name,
                    organisation_name="Acme",
                    course_title="NIS2",
                    course_version="test",
                    content_hash="x" * 64,
                    language="en",
                    track="core",
                    score=0.9,
                    pass_mark=0.8,
                    issued_at=days(certified),
                    expires_at=days(certified) + timedelta(days=365),
                )
            )
        self.rows.append(
            Reflection(enrolment_id=enrolment_id, lesson_id="first", text=SECRET_REFLECTION)
        )
        return enrolment_id

    def wrong(self, enrolment_id: int, topic: str, times: int = 1, correct: bool = False) -> None:
        for index in range(times):
            self.rows.append(
                Answer(
                    enrolment_id=enrolment_id,
                    question_id=f"{topic}-q{index}",
                    option_id="b",
                    correct=correct,
                    context="lesson",
                    topic=topic,
                    content_version="test",
                    content_hash="x" * 64,
                    answered_at=days(2),
                )
            )

    async def save(self, db: Database) -> None:
        async with db.session() as session:
            for kind in (Person, Team, TeamMember, TeamManager, Enrolment):
                session.add_all([row for row in self.rows if isinstance(row, kind)])
                await session.flush()
            session.add_all(
                [row for row in self.rows if not isinstance(row, Person | Team | Enrolment)]
            )


async def build(coach: Coach) -> World:
    """Acme: Security (managed by Mia) and Sales (Sam); Other: Ops (Olga). See each comment."""
    acme = (await coach.organisation("test", "acme", "Acme")).id
    other = (await coach.organisation("test", "other", "Other Org")).id
    topics = [lesson.id for lesson in coach.course.language("en").plan("core")[:5]]
    b = Builder(coach)
    b.next_id = 1000
    security, sales, ops = b.id(), b.id(), b.id()
    b.rows += [
        Team(id=security, organisation_id=acme, external_id="C1", name="Security"),
        Team(id=sales, organisation_id=acme, external_id="C2", name="Sales"),
        Team(id=ops, organisation_id=other, external_id="C3", name="Ops"),
    ]
    mia, sam, olga = b.person(acme, "Mia Manager"), b.person(acme, "Sam Sales"), 0
    olga = b.person(other, "Olga Other")
    b.rows += [
        TeamManager(team_id=security, person_id=mia),
        TeamManager(team_id=sales, person_id=sam),
        TeamManager(team_id=ops, person_id=olga),
    ]
    # Alice: started 25 days ago, certified 5 days ago (in progress a week ago).
    alice = b.learner(acme, security, "Alice Archer", 30, deadline=-10, started=25, certified=5)
    # Bob: in progress for 20 days, deadline 3 days ago: overdue now, not a week ago.
    bob = b.learner(acme, security, "Bob Builder", 30, deadline=3, started=20)
    # Carol: started 5 days ago, deadline 14 days ago: overdue now and a week ago.
    carol = b.learner(acme, security, "Carol Cole", 30, deadline=14, started=5)
    # Dan: enrolled 3 days ago, not started.
    b.learner(acme, security, "Dan Dorsey", 3, deadline=-30)
    # Eve unenrolled, Frank left the company: neither counts.
    b.learner(acme, security, "Eve Exit", 30, deadline=20, status="unenrolled")
    b.learner(acme, security, "Frank Former", 30, deadline=20, active=False)
    # Sales: Gina, overdue, with many wrong answers on a topic Security never missed.
    gina = b.learner(acme, sales, "Gina Gone", 30, deadline=10, started=28)
    # Other organisation: Otto, overdue.
    otto = b.learner(other, ops, "Otto Outsider", 30, deadline=10, started=28)
    b.wrong(alice, topics[0])
    b.wrong(bob, topics[0])
    b.wrong(carol, topics[0])
    b.wrong(bob, topics[1], 2)
    b.wrong(carol, topics[2])
    b.wrong(alice, topics[3], 4, correct=True)
    b.wrong(gina, topics[4], 5)
    b.wrong(otto, topics[4], 7)
    await b.save(coach.db)
    return World(acme, other, security, sales, mia, sam, olga, topics)


@pytest.fixture
async def world(coach: Coach) -> World:
    return await build(coach)


def digest_text(card: DigestCard) -> str:
    return json.dumps(
        [blocks.render_digest(card)[i].blocks for i in range(len(blocks.render_digest(card)))]
        + cards.render_digest(card),
        ensure_ascii=False,
    )


async def test_manager_digest_has_exact_figures_names_and_missed_topics(
    coach: Coach, world: World
) -> None:
    digests = Digests(coach)
    [card] = await digests.for_manager(world.mia, TODAY)
    assert isinstance(card, DigestCard)
    [section] = card.sections
    assert section.title == "Security"
    assert section.lines == (
        "Enrolled: 4 (+1 since last week)",
        "In progress: 2 (±0)",
        "Certified: 1 (+1)",
        "Overdue: 2 (+1)",
    )
    assert section.overdue_names == ("Bob Builder", "Carol Cole")
    lang = coach.course.language("en")
    titles = [lang.lesson(topic).title for topic in world.topics]
    assert section.topics == (f"{titles[0]}: 3", f"{titles[1]}: 2", f"{titles[2]}: 1")
    assert card.heading == "Weekly digest: Security (2026-11-30)"


async def test_digest_shows_counts_only_and_no_one_from_elsewhere(
    coach: Coach, world: World
) -> None:
    digests = Digests(coach)
    [card] = await digests.for_manager(world.mia, TODAY)
    rendered = digest_text(card) + repr(card)
    assert SECRET_REFLECTION not in rendered
    for stranger in ("Gina Gone", "Otto Outsider", "Eve Exit", "Frank Former", "Alice Archer"):
        assert stranger not in rendered
    lang = coach.course.language("en")
    assert lang.lesson(world.topics[4]).title not in rendered  # only Sales and Ops missed it
    [sales] = await digests.for_manager(world.sam, TODAY)
    assert sales.sections[0].overdue_names == ("Gina Gone",)
    assert sales.sections[0].lines[0] == "Enrolled: 1 (±0 since last week)"
    [ops] = await digests.for_manager(world.olga, TODAY)
    assert ops.sections[0].overdue_names == ("Otto Outsider",)
    assert "Acme" not in digest_text(ops)


async def test_digest_off_or_no_team_gives_nothing(coach: Coach, world: World) -> None:
    digests = Digests(coach)
    await digests.set_manager_digest(world.mia, on=False)
    assert await digests.for_manager(world.mia, TODAY) == []
    await digests.set_manager_digest(world.mia, on=True)
    assert len(await digests.for_manager(world.mia, TODAY)) == 1
    async with coach.db.session() as session:
        alice = (
            await session.execute(Person.__table__.select().where(Person.name == "Alice Archer"))
        ).one()
    assert await digests.for_manager(alice.id, TODAY) == []


async def test_organisation_digest_ranks_teams_never_people(coach: Coach, world: World) -> None:
    digests = Digests(coach)
    [card] = await digests.for_organisation(world.acme, TODAY, rank_teams=True)
    [section] = card.sections
    assert section.lines[0] == "Enrolled: 5 (+1 since last week)"
    assert section.lines[3] == "Overdue: 3 (+1)"
    assert section.overdue_names == ("Bob Builder", "Carol Cole", "Gina Gone")
    assert card.ranking == ("1. Security: 25 % (1 of 4)", "2. Sales: 0 % (0 of 1)")
    assert "Otto Outsider" not in digest_text(card)
    [plain] = await digests.for_organisation(world.acme, TODAY, rank_teams=False)
    assert plain.ranking == ()
    assert "Security: 25 %" not in digest_text(plain)


async def test_admin_choices_are_stored_and_audited(coach: Coach, world: World) -> None:
    digests = Digests(coach)
    assert await digests.for_admin(world.mia, TODAY) == []
    await digests.set_org_digest(world.acme, world.mia, True, actor="UADMIN")
    await digests.set_ranking(world.acme, True, actor="UADMIN")
    [card] = await digests.for_admin(world.mia, TODAY)
    assert card.ranking[0].startswith("1. Security")
    await digests.set_org_digest(world.acme, world.mia, False, actor="UADMIN")
    assert await digests.for_admin(world.mia, TODAY) == []
    async with coach.db.session() as session:
        organisation = await session.get_one(Organisation, world.acme)
    assert organisation.settings["rank_teams"] is True
    assert organisation.settings["org_digest_to"] == []
    from bot import audit

    actions = [(e.action, e.detail) for e in await audit.events(coach.db, world.acme)]
    assert actions == [
        ("digest", {"on": True}),
        ("settings", {"on": True}),
        ("digest", {"on": False}),
    ]


async def test_all_managers_use_a_fixed_number_of_queries(coach: Coach, world: World) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(coach.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        found = {d.person_id: d for d in await Digests(coach).all_managers(TODAY)}
    finally:
        event.remove(coach.db.engine.sync_engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4
    assert set(found) == {world.mia, world.sam, world.olga}
    security = found[world.mia].teams[0]
    assert (security.now.enrolled, security.now.certified, security.now.overdue) == (4, 1, 2)


async def test_chart_is_a_small_valid_png(coach: Coach, world: World) -> None:
    [card] = await Digests(coach).for_manager(world.mia, TODAY)
    assert card.chart_png is not None
    assert card.chart_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 5_000 < len(card.chart_png) < 45_000
    image = Image.open(io.BytesIO(card.chart_png))
    image.verify()
    assert image.format == "PNG" and image.size == (500, 240)


# -- rendering: long digests are split, never rejected ----------------------------------------


def long_digest(people: int, teams: int = 1) -> DigestCard:
    names = tuple(f"Person Number {index:05d} Longname-Hyphenated" for index in range(people))
    section = DigestSection(
        title="Everyone",
        lines=("Enrolled: 1 (+1 since last week)",) * 4,
        overdue_heading=f"Past their deadline ({people})",
        overdue_names=names,
        topics_heading="Most missed topics",
        topics=("Phishing: 3",),
    )
    return DigestCard(
        heading="Weekly digest",
        sections=(section,) * teams,
        chart_png=b"\x89PNG\r\n\x1a\n" + bytes(30_000),
        chart_title="Share certified",
        fallback="Weekly digest: enrolled 1",
        ranking_heading="Teams",
        ranking=tuple(f"{i}. Team {i}: 50 % (1 of 2)" for i in range(1, 200)),
        note="Counts only.",
    )


@pytest.mark.parametrize("people,teams", [(300, 1), (3000, 3)])
def test_slack_splits_a_long_overdue_list_within_limits(people: int, teams: int) -> None:
    payloads = blocks.render_digest(long_digest(people, teams))
    assert len(payloads) > 1
    shown = ""
    for payload in payloads:
        assert payload.text.strip()
        assert len(payload.blocks) <= blocks.MESSAGE_BLOCKS
        visible = sum(len(b.get("text", {}).get("text", "")) for b in payload.blocks)
        assert visible <= blocks.MESSAGE_CHARACTERS
        for block in payload.blocks:
            check_block(block)
            Block.parse(block).to_dict()  # slack_sdk's validators
        shown += json.dumps(payload.blocks)
    for index in (0, people // 2, people - 1):
        assert f"Person Number {index:05d}" in shown
    assert "199. Team 199" in shown


@pytest.mark.parametrize("people", [300, 5000])
def test_teams_cards_stay_under_80_kb_and_valid(people: int) -> None:
    produced = cards.render_digest(long_digest(people))
    assert len(produced) >= (2 if people > 1000 else 1)
    everything = ""
    for card in produced:
        activity = json.dumps({"type": "message", "attachments": [{"content": card}]})
        assert len(activity.encode()) < 80_000
        assert card["version"] == "1.2" and card["fallbackText"]
        assert not schema_errors_or_skip(card)
        everything += json.dumps(card)
    assert everything.count('"type": "Image"') == 1
    assert f"Person Number {people - 1:05d}" in everything
    problems = library_problems_or_skip([(f"digest-{i}", c) for i, c in enumerate(produced)])
    assert not any(problems.values()), problems


async def test_a_danish_manager_gets_the_digest_in_danish(coach: Coach, world: World) -> None:
    async with coach.db.session() as session:
        (await session.get_one(Person, world.mia)).language = "da"
    [card] = await Digests(coach).for_manager(world.mia, TODAY)
    assert card.heading == "Ugens overblik: Security (2026-11-30)"
    assert card.sections[0].lines[0] == "Tilmeldt: 4 (+1 siden sidste uge)"
    assert card.chart_png is not None and card.chart_png.startswith(b"\x89PNG")
