"""The learner's data: my-data, erasure that keeps anonymous counts, and reflection retention."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot import audit, privacy
from bot import certificate as certificates
from bot.coach import Coach
from bot.lessons.course import Course
from bot.programme import Programme
from bot.store.models import (
    Answer,
    Certificate,
    ChecklistConfirmation,
    ConversationRef,
    Person,
    PlannedSend,
    Reflection,
)
from tests.helpers import new_learner
from tests.test_coach import pass_quiz
from tests.test_store import _run_cli, verify_env  # noqa: F401
from tests.test_verification_page import fetch, site  # noqa: F401

THOUGHT = "A thought of mine."


async def certified_ada_and_grace(coach: Coach, course: Course) -> tuple[int, int]:
    """Ada finished the course (reflections written); Grace, same organisation, just started."""
    ada = await new_learner(coach, "Ada Lovelace")
    await pass_quiz(coach, course, ada)
    grace = await new_learner(coach, "Grace Hopper")
    await coach.next(grace)
    return (await coach.enrolment(ada)).person_id, (await coach.enrolment(grace)).person_id


async def rows(coach: Coach, model, *where) -> list:
    async with coach.db.session() as session:
        return list((await session.execute(select(model).where(*where))).scalars())


async def total(coach: Coach, model) -> int:
    async with coach.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def add_planned_send_and_chat(coach: Coach, person_id: int) -> None:
    person = (await rows(coach, Person, Person.id == person_id))[0]
    async with coach.db.session() as session:
        session.add(
            PlannedSend(
                organisation_id=person.organisation_id,
                person_id=person_id,
                kind="daily",
                day=date(2027, 1, 4),
                due_at=datetime(2027, 1, 4, 8, 30, tzinfo=UTC),
            )
        )
        session.add(
            ConversationRef(
                organisation_id=person.organisation_id,
                person_id=person_id,
                conversation_id=f"a:chat-{person_id}",
                reference={"user": {"id": person.platform_user_id, "name": person.name}},
            )
        )


async def test_my_data_holds_everything_about_the_learner_and_nothing_of_others(
    coach: Coach, course: Course
) -> None:
    ada, _ = await certified_ada_and_grace(coach, course)
    await add_planned_send_and_chat(coach, ada)
    data = await privacy.my_data(coach.db, ada)
    text = json.dumps(data)
    assert data["person"]["name"] == "Ada Lovelace" and data["person"]["organisation"] == "Acme"
    (enrolment,) = data["enrolments"]
    assert enrolment["reflections"] and all(r["text"] == THOUGHT for r in enrolment["reflections"])
    assert len(enrolment["answers"]) == await total(coach, Answer)  # Grace answered none
    assert enrolment["checklist"] and enrolment["quiz_attempts"][-1]["passed"] is True
    assert enrolment["certificates"][0]["code"].startswith("NIS2-")
    assert "pdf_path" not in enrolment["certificates"][0]
    assert len(enrolment["deliveries"]) > 5
    assert data["planned_sends"][0]["kind"] == "daily" and data["conversations"] == 1
    assert "Grace" not in text


async def test_erasure_keeps_anonymous_counts_and_the_certificate_code(
    coach: Coach,
    course: Course,
    site,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    app, session, base = site
    coach = app.coach
    monkeypatch.setenv("DATABASE_URL", coach.db.url)
    if coach.db.schema:
        monkeypatch.setenv("DATABASE_SCHEMA", coach.db.schema)
    ada, grace = await certified_ada_and_grace(coach, course)
    await add_planned_send_and_chat(coach, ada)
    (certificate,) = await rows(coach, Certificate)
    organisation_id = certificate.organisation_id
    programme = Programme(coach)
    before = (await programme.organisation_counts(organisation_id), await total(coach, Answer))
    assert (await fetch(session, base + certificate.code))[1].count("Ada Lovelace") == 1
    assert certificates.pdf_path(certificate).is_file()

    monkeypatch.setattr("builtins.input", lambda question: "n")
    assert await _run_cli(["person", "erase", "--org", "acme", "ada lovelace"]) == 1
    assert (await rows(coach, Person, Person.id == ada))[0].erased_at is None
    assert await _run_cli(["person", "erase", "--org", "nowhere", "ada"]) == 2
    assert await _run_cli(["person", "erase", "--org", "acme", "nobody"]) == 2
    capsys.readouterr()

    assert await _run_cli(["person", "erase", "--org", "acme", "ada lovelace", "--yes"]) == 0
    assert "erased person" in capsys.readouterr().out

    person = (await rows(coach, Person, Person.id == ada))[0]
    assert person.name == "(erased)" and person.erased_at is not None
    assert person.platform_user_id not in ("ada lovelace", "") and person.email is None
    reflections = await rows(coach, Reflection)
    assert reflections and all(r.text is None and r.text_deleted_at for r in reflections)
    assert all(row.text == "" for row in await rows(coach, ChecklistConfirmation))
    assert await rows(coach, ConversationRef) == []
    assert await rows(coach, PlannedSend) == []
    stored = (await rows(coach, Certificate))[0]
    assert stored.code == certificate.code and stored.learner_name == "" and stored.pdf_path is None
    assert not certificates.pdf_path(certificate).exists()

    after = (await programme.organisation_counts(organisation_id), await total(coach, Answer))
    assert after == before  # the answers and the certificate still count, anonymously
    status, page = await fetch(session, base + certificate.code)
    assert status == 200 and "Valid:" in page and "Ada" not in page and certificate.code in page
    assert "Ada" not in json.dumps(await privacy.my_data(coach.db, ada))
    assert (await rows(coach, Person, Person.id == grace))[0].name == "Grace Hopper"

    (event,) = await audit.events(coach.db, organisation_id)
    assert (event.action, event.target, event.actor[:4]) == ("erase", f"person:{ada}", "cli:")
    assert event.detail["reflections"] == len(reflections) and "Ada" not in json.dumps(event.detail)


@pytest.mark.usefixtures("verify_env")
async def test_erasure_asks_for_one_person_when_a_name_is_ambiguous(
    coach: Coach,
    capsys,
) -> None:
    organisation = await coach.organisation("slack", "T0ACME", "Acme")
    await coach.person(organisation.id, "U1", "Sam Smith")
    await coach.person(organisation.id, "U2", "Sam Smith")
    assert await _run_cli(["person", "erase", "--org", "T0ACME", "sam smith", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "2 people match" in err and "U1, U2" in err
    assert await _run_cli(["person", "erase", "--org", "Acme", "U2", "--yes"]) == 0
    names = sorted(person.name for person in await rows(coach, Person))
    assert names == ["(erased)", "Sam Smith"]
    async with coach.db.session() as session:
        await session.execute(
            update(Person).where(Person.platform_user_id == "U1").values(email="sam@acme.example")
        )
    assert await _run_cli(["person", "erase", "--org", "acme", "SAM@acme.example", "--yes"]) == 0
    people = await rows(coach, Person)
    assert [p.name for p in people] == ["(erased)", "(erased)"]
    assert all(p.email is None and p.platform_user_id.startswith("erased-") for p in people)


async def test_the_audit_log_keeps_the_erased_persons_actions_under_an_opaque_id(
    coach: Coach,
) -> None:
    organisation = await coach.organisation("slack", "T0ACME", "Acme")
    person = await coach.person(organisation.id, "UADMIN01", "Alma Admin")
    now = datetime(2026, 12, 1, tzinfo=UTC)
    await audit.record(coach.db, now, organisation.id, "UADMIN01", "remind", None, reminded=2)
    await audit.record(coach.db, now, organisation.id, "UOTHER", "manager", "UADMIN01")
    await privacy.erase(coach.db, person.id, now)
    events = await audit.events(coach.db, organisation.id)
    opaque = (await rows(coach, Person))[0].platform_user_id
    assert [(e.actor, e.target) for e in events] == [(opaque, None), ("UOTHER", opaque)]


@pytest.mark.usefixtures("verify_env")
async def test_retention_deletes_old_reflection_texts_and_keeps_submitted(
    coach: Coach,
    course: Course,
    capsys,
) -> None:
    ada, _ = await certified_ada_and_grace(coach, course)
    now = datetime.now(UTC)
    reflections = await rows(coach, Reflection)
    enrolment_id = reflections[0].enrolment_id
    points_before = (await coach.progress(enrolment_id))[0].summary
    old, recent = reflections[0], reflections[1:]
    async with coach.db.session() as session:
        await session.execute(
            update(Reflection)
            .where(Reflection.id == old.id)
            .values(submitted_at=now - timedelta(days=31))
        )
    assert await privacy.purge_reflections(coach.db, 30, now) == 1
    assert await privacy.purge_reflections(coach.db, 30, now) == 0
    kept = {row.id: row for row in await rows(coach, Reflection)}
    assert len(kept) == len(reflections)
    assert kept[old.id].text is None and kept[old.id].text_deleted_at is not None
    assert all(kept[row.id].text == THOUGHT for row in recent)
    # The learner keeps the points of a written reflection after its text is gone.
    assert (await coach.progress(enrolment_id))[0].summary == points_before

    assert await _run_cli(["data", "purge"]) == 2
    assert "REFLECTION_RETENTION_DAYS" in capsys.readouterr().err
    async with coach.db.session() as session:
        await session.execute(update(Reflection).values(submitted_at=now - timedelta(days=8)))
    assert await _run_cli(["data", "purge", "--days", "7"]) == 0
    assert f"deleted {len(recent)} reflection texts" in capsys.readouterr().out
    assert all(row.text is None for row in await rows(coach, Reflection))
    assert (await privacy.my_data(coach.db, ada))["enrolments"][0]["reflections"][0][
        "text_deleted_at"
    ]


async def test_a_purged_reflection_still_counts_as_submitted_and_a_skipped_one_does_not(
    coach: Coach, course: Course
) -> None:
    enrolment_id = await new_learner(coach)
    await pass_quiz(coach, course, enrolment_id)
    written = (await rows(coach, Reflection))[0]
    async with coach.db.session() as session:
        session.add(Reflection(enrolment_id=enrolment_id, lesson_id="skipped-one", text=None))
    await privacy.purge_reflections(coach.db, 1, datetime.now(UTC) + timedelta(days=2))
    by_lesson = {row.lesson_id: row for row in await rows(coach, Reflection)}
    assert privacy.submitted(by_lesson[written.lesson_id])
    assert not privacy.submitted(by_lesson["skipped-one"])
    submitted_rows = await rows(coach, Reflection, privacy.SUBMITTED)
    assert "skipped-one" not in {row.lesson_id for row in submitted_rows}
    assert len(submitted_rows) == len(by_lesson) - 1


@pytest.mark.parametrize("days", ["99999999999", "36501", "0", "-5", "abc"])
def test_purge_refuses_a_number_of_days_out_of_range(days: str, capsys) -> None:
    from bot.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["data", "purge", "--days", days])
    assert stopped.value.code == 2
    assert f"'{days}' is not a number of days from 1 to 36500" in capsys.readouterr().err


def test_a_retention_setting_out_of_range_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from bot.cli import main

    monkeypatch.setenv("REFLECTION_RETENTION_DAYS", "99999999999")
    assert main(["data", "purge"]) == 2
    assert "REFLECTION_RETENTION_DAYS: Input should be less than or equal to 36500" in (
        capsys.readouterr().err
    )


@pytest.mark.usefixtures("verify_env")
async def test_erasure_finds_danish_and_other_non_ascii_names_in_any_case(
    coach: Coach,
    capsys,
) -> None:
    organisation = await coach.organisation("slack", "T0NORD", "Nordlys Økonomi")
    await coach.person(organisation.id, "U1", "Søren Ærø")
    await coach.person(organisation.id, "U2", "Дмитрий Иванов")
    argv = ["person", "erase", "--org", "NORDLYS ØKONOMI", "--yes"]
    assert await _run_cli([*argv, "Søren Ærø"]) == 0, capsys.readouterr().err
    assert await _run_cli([*argv, "дмитрий иванов"]) == 0, capsys.readouterr().err
    assert [p.name for p in await rows(coach, Person)] == ["(erased)", "(erased)"]
    assert await _run_cli([*argv, "Søren Ærø"]) == 2
    assert "nobody matches 'Søren Ærø'" in capsys.readouterr().err


def test_verify_prints_no_blank_holder_line_for_an_erased_person(capsys) -> None:
    from bot.cli import _describe

    moment = datetime(2026, 3, 1, tzinfo=UTC)
    erased = Certificate(
        learner_name="",
        organisation_name="",
        course_title="NIS2 Awareness",
        course_version="1.0.0",
        score=0.9,
        issued_at=moment,
        expires_at=moment + timedelta(days=365),
    )
    _describe(erased)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "  NIS2 Awareness 1.0.0, score 90 %, issued 1 March 2026, expires 1 March 2027"
    ]
