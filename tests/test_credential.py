"""The signed credential: it verifies, a changed byte fails, and its status is the register's."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import audit, credential
from bot import certificate as certificates
from bot.cli import main
from bot.coach import Coach
from bot.lessons.course import Course
from bot.settings import Settings
from tests.test_store import _certificate, _run_cli, verify_env  # noqa: F401

ISSUED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "signing.pem"
    assert main(["keys", "generate", "--output", str(path)]) == 0
    monkeypatch.setenv("SIGNING_KEY", str(path))
    return path


async def credential_file(
    coach: Coach, course: Course, key_file: Path, tmp_path: Path, **changes
) -> tuple[str, Path]:
    """A certificate in the register and its signed credential written to a file."""
    code = await _certificate(coach, **changes)
    stored = await certificates.find(coach.db, code)
    settings = coach.settings.model_copy(update={"signing_key": str(key_file)})
    key = credential.load_key(settings)
    document = credential.issue(stored, settings, course.language("en"), key)
    path = tmp_path / f"{code}.json"
    path.write_bytes(credential.to_bytes(document))
    return code, path


def test_keys_generate_writes_a_private_file_and_never_overwrites(tmp_path: Path, capsys) -> None:
    path = tmp_path / "key.pem"
    assert main(["keys", "generate", "--output", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"SIGNING_KEY={path}" in out and "did:key:z6Mk" in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    original = path.read_bytes()
    assert original.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert main(["keys", "generate", "--output", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_bytes() == original


def test_the_key_may_be_given_as_pem_text_and_a_wrong_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    key = credential.generate_key(path)
    as_text = Settings(signing_key=path.read_text())
    assert credential.did_key(credential.load_key(as_text).public_key()) == credential.did_key(
        key.public_key()
    )
    assert credential.load_key(Settings()) is None
    with pytest.raises(credential.CredentialError, match="cannot read"):
        credential.load_key(Settings(signing_key=str(tmp_path / "missing.pem")))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(credential.CredentialError, match="not an unencrypted PEM"):
        credential.load_key(Settings(signing_key=str(tmp_path / "junk.pem")))


async def test_the_credential_is_an_open_badge_and_verifies(
    coach: Coach, course: Course, key_file: Path, tmp_path: Path
) -> None:
    code, path = await credential_file(coach, course, key_file, tmp_path, issued_at=ISSUED)
    document = json.loads(path.read_text())
    assert document["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert document["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert document["id"].endswith(f"/certificates/{code}")
    assert document["issuer"]["name"] == "Acme" and document["issuer"]["type"] == ["Profile"]
    subject = document["credentialSubject"]
    assert subject["identifier"][0]["identityHash"] == "Ada"
    assert subject["achievement"]["version"] == "1.0.0"
    assert subject["achievement"]["otherIdentifier"][0]["identifier"] == "sha256:" + "0" * 64
    assert document["validFrom"] == "2026-03-01T09:30:00Z"
    proof = document["proof"]
    assert proof["cryptosuite"] == "eddsa-jcs-2022" and proof["proofValue"].startswith("z")
    assert proof["verificationMethod"].startswith("did:key:z6Mk")
    checked = credential.check(document)
    assert checked.code == code
    # Produced on demand, the same each time: nothing needs storing.
    again = credential.issue(
        await certificates.find(coach.db, code),
        coach.settings.model_copy(update={"signing_key": str(key_file)}),
        course.language("en"),
        credential.load_key(coach.settings.model_copy(update={"signing_key": str(key_file)})),
    )
    assert credential.to_bytes(again) == path.read_bytes()


@pytest.mark.usefixtures("verify_env")
async def test_verify_file_says_valid_and_a_changed_byte_fails(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
) -> None:
    code, path = await credential_file(coach, course, key_file, tmp_path)
    assert await _run_cli(["certificate", "verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "signature OK" in out and "\nvalid\n" in out and "Ada, Acme" in out

    changed = path.read_bytes().replace(b'"Ada"', b'"Eve"')
    path.write_bytes(changed)
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    assert "signature does not match" in capsys.readouterr().out

    original = json.loads(changed.replace(b'"Eve"', b'"Ada"'))
    original["validUntil"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(original))
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    assert "signature does not match" in capsys.readouterr().out


async def test_every_single_byte_change_of_the_signed_part_fails(
    coach: Coach, course: Course, key_file: Path, tmp_path: Path
) -> None:
    _, path = await credential_file(coach, course, key_file, tmp_path)
    document = json.loads(path.read_text())
    signed = dict(document)
    for field in ("id", "validFrom", "validUntil", "name"):
        value = signed[field]
        flipped = value[:-1] + ("0" if value[-1] != "0" else "1")
        with pytest.raises(credential.CredentialError, match="signature does not match"):
            credential.check({**signed, field: flipped})
    proof = dict(document["proof"])
    proof["proofValue"] = proof["proofValue"][:-2] + (
        "22" if proof["proofValue"][-2:] != "22" else "33"
    )
    with pytest.raises(credential.CredentialError, match="signature does not match"):
        credential.check({**signed, "proof": proof})


@pytest.mark.usefixtures("verify_env")
async def test_a_revoked_certificate_is_reported_revoked(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
) -> None:
    code, path = await credential_file(coach, course, key_file, tmp_path)
    reason = "issued to the wrong person"
    assert await _run_cli(["certificate", "revoke", code, "--reason", reason]) == 0
    assert "revoked" in capsys.readouterr().out
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "signature OK" in out and "\nrevoked\n" in out and reason in out
    stored = await certificates.find(coach.db, code)
    (event,) = await audit.events(coach.db, stored.organisation_id)
    assert (event.action, event.target, event.detail) == ("revoke", code, {"reason": reason})
    assert event.actor.startswith("cli:") and event.at is not None
    assert await _run_cli(["certificate", "revoke", code, "--reason", "again"]) == 0
    assert "already revoked" in capsys.readouterr().out
    assert len(await audit.events(coach.db, stored.organisation_id)) == 1
    assert await _run_cli(["certificate", "revoke", "NIS2-AAAA-BBBB", "--reason", "x"]) == 2
    assert "there is no certificate NIS2-AAAA-BBBB; nothing revoked" in capsys.readouterr().err


@pytest.mark.usefixtures("verify_env")
async def test_an_expired_certificate_is_reported_expired(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
) -> None:
    _, path = await credential_file(
        coach,
        course,
        key_file,
        tmp_path,
        issued_at=datetime(2024, 1, 1, tzinfo=UTC),
        expires_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    assert "\nexpired\n" in capsys.readouterr().out


@pytest.mark.usefixtures("verify_env")
async def test_a_credential_signed_by_another_key_or_of_an_unknown_code_fails(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, path = await credential_file(coach, course, key_file, tmp_path)
    other = tmp_path / "other.pem"
    credential.generate_key(other)
    monkeypatch.setenv("SIGNING_KEY", str(other))
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    assert "signed by another key" in capsys.readouterr().out

    monkeypatch.setenv("SIGNING_KEY", str(key_file))
    forged = json.loads(path.read_text())
    forged["id"] = forged["id"].replace(code, "NIS2-AAAA-BBBB-CCCC")
    forged.pop("proof")
    key = credential.load_key(Settings(signing_key=str(key_file)))
    path.write_bytes(credential.to_bytes(credential.sign(forged, key, ISSUED)))
    assert await _run_cli(["certificate", "verify", str(path)]) == 1
    assert "\nunknown" in capsys.readouterr().out


@pytest.mark.usefixtures("verify_env")
async def test_verify_names_a_file_that_is_not_a_credential(
    tmp_path: Path,
    capsys,
) -> None:
    (tmp_path / "notes.json").write_text("{not json")
    assert await _run_cli(["certificate", "verify", str(tmp_path / "notes.json")]) == 2
    assert "not a readable JSON credential" in capsys.readouterr().err
    bad_method = {"proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022"}}
    bad_method["proof"]["verificationMethod"] = "did:key:z0OIl"  # not base58 at all
    (tmp_path / "method.json").write_text(json.dumps(bad_method))
    assert await _run_cli(["certificate", "verify", str(tmp_path / "method.json")]) == 1
    assert "not an Ed25519 did:key" in capsys.readouterr().out
    (tmp_path / "huge.json").write_bytes(b" " * 2_000_000 + b"{}")
    assert await _run_cli(["certificate", "verify", str(tmp_path / "huge.json")]) == 2
    assert "(larger than 1,000,000 bytes)" in capsys.readouterr().err
    (tmp_path / "plain.json").write_text('{"id": "x"}')
    assert await _run_cli(["certificate", "verify", str(tmp_path / "plain.json")]) == 1
    assert "there is no proof" in capsys.readouterr().out


def test_base58_round_trips_leading_zeros() -> None:
    for data in (b"", b"\0\0\x01", bytes(range(40)), b"\xff" * 64):
        assert credential.b58decode(credential.b58encode(data)) == data
    assert credential.b58encode(b"hello world") == "StV1DL6CwTryKyV"


def test_credential_timestamps_parse() -> None:
    assert credential.parse_stamp("2026-03-01T09:30:00Z") == ISSUED
    assert credential.parse_stamp("yesterday") is None


def test_the_chat_certificate_mentions_the_credential_when_there_is_one(course: Course) -> None:
    from bot.adapters.slack.app import _certificate_comment
    from bot.adapters.teams import cards
    from bot.lessons.messages import CertificateCard

    lang = course.language("en")
    url = "https://coach.example/certificates/NIS2-AAAA"
    card = CertificateCard("Your certificate", "Well done", "NIS2-AAAA", url, None, ISSUED)
    signed = CertificateCard(
        "Your certificate", "Well done", "NIS2-AAAA", url, None, ISSUED, url + "/credential"
    )
    assert "credential" not in _certificate_comment(card, lang)
    assert url + "/credential" in _certificate_comment(signed, lang)
    buttons = [a["url"] for a in cards.render(signed, lang)["actions"]]
    assert url + "/credential" in buttons
    assert url + "/credential" not in [a["url"] for a in cards.render(card, lang)["actions"]]


async def test_the_coach_offers_the_credential_only_with_a_key(
    coach: Coach, course: Course, tmp_path: Path
) -> None:
    from tests.helpers import new_learner
    from tests.test_coach import pass_quiz

    enrolment_id = await new_learner(coach)
    plain = (await pass_quiz(coach, course, enrolment_id))[-1]
    assert plain.credential_url is None
    coach.settings = coach.settings.model_copy(update={"signing_key": str(tmp_path / "k.pem")})
    signed = (await coach.resume(enrolment_id))[-1]
    assert signed.credential_url == coach.settings.verify_url(signed.code) + "/credential"


@pytest.mark.usefixtures("verify_env")
async def test_without_a_key_here_the_file_is_checked_against_its_own_key(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, path = await credential_file(coach, course, key_file, tmp_path)
    monkeypatch.delenv("SIGNING_KEY")
    assert await _run_cli(["certificate", "verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SIGNING_KEY is not set here" in out and "keys generate" in out and "\nvalid\n" in out


# The W3C vc-di-eddsa specification's eddsa-jcs-2022 example (its published test key and
# credential): checking it, and signing it again, shows the proof is the standard one.
SPEC_SECRET_KEY = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
SPEC_DID = "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
SPEC_CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2",
]
SPEC_CREDENTIAL = {
    "@context": SPEC_CONTEXT,
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
SPEC_PROOF_VALUE = (
    "z2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX"
)


def test_the_specifications_example_checks_and_signs_to_the_same_proof() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    published = {
        **SPEC_CREDENTIAL,
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "created": "2023-02-24T23:36:38Z",
            "verificationMethod": f"{SPEC_DID}#{SPEC_DID.removeprefix('did:key:')}",
            "proofPurpose": "assertionMethod",
            "@context": SPEC_CONTEXT,
            "proofValue": SPEC_PROOF_VALUE,
        },
    }
    assert credential.check(published).signer == SPEC_DID

    seed = credential.b58decode(SPEC_SECRET_KEY.removeprefix("z"))
    assert seed[:2] == b"\x80\x26"  # multicodec ed25519-priv
    key = Ed25519PrivateKey.from_private_bytes(seed[2:])
    assert credential.did_key(key.public_key()) == SPEC_DID
    created = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
    ours = credential.sign(SPEC_CREDENTIAL, key, created)
    assert ours["proof"]["proofValue"] == SPEC_PROOF_VALUE


@pytest.mark.usefixtures("verify_env")
async def test_a_signing_key_setting_that_is_no_key_is_a_setup_error_not_an_invalid_file(
    coach: Coach,
    course: Course,
    key_file: Path,
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, path = await credential_file(coach, course, key_file, tmp_path)
    monkeypatch.setenv("SIGNING_KEY", str(tmp_path / "missing.pem"))
    assert await _run_cli(["certificate", "verify", str(path)]) == 2
    captured = capsys.readouterr()
    assert "SIGNING_KEY: cannot read" in captured.err and "invalid" not in captured.out
    (tmp_path / "notes.pem").write_text("hello")
    monkeypatch.setenv("SIGNING_KEY", str(tmp_path / "notes.pem"))
    assert await _run_cli(["certificate", "verify", str(path)]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err
    monkeypatch.setenv("SIGNING_KEY", str(key_file))
    assert await _run_cli(["certificate", "verify", str(path)]) == 0
