"""The certificate as a signed Open Badges 3.0 credential an auditor's software can check.

The credential is a W3C Verifiable Credential (OpenBadgeCredential) with a Data Integrity
proof of the eddsa-jcs-2022 cryptosuite: the document and the proof options are
canonicalised with JCS (RFC 8785), hashed with SHA-256 and signed with Ed25519. The
verification method is a did:key, so the public key travels with the credential; the
command line also checks it is this installation's key. Nothing is stored: the credential
is built from the certificate row whenever it is asked for, and since Ed25519 signatures
are deterministic and `created` is the issue time, the same certificate always gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot.downloads import public_url

if TYPE_CHECKING:
    from bot.lessons.course import Language
    from bot.settings import Settings
    from bot.store.models import Certificate

CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
MEDIA_TYPE = "application/vc+ld+json"
ED25519_MULTICODEC = b"\xed\x01"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class CredentialError(Exception):
    """A key or credential that cannot be used; the message says what is wrong."""


# -- keys ---------------------------------------------------------------------------------


def generate_key(path: Path) -> Ed25519PrivateKey:
    """Write a new private key readable by its owner only; an existing file is never replaced."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CredentialError(f"{path} already exists; choose another file") from None
    except OSError as error:
        raise CredentialError(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def load_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The signing key SIGNING_KEY names (a PEM file or the PEM text); None when not set."""
    value = (settings.signing_key or "").strip()
    if not value:
        return None
    if value.startswith("-----BEGIN"):
        pem, where = value.encode(), "SIGNING_KEY"
    else:
        try:
            pem, where = Path(value).expanduser().read_bytes(), value
        except OSError as error:
            raise CredentialError(f"SIGNING_KEY: cannot read {value}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise CredentialError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialError(
            f"{where}: not an Ed25519 key (make one with: nis2-coach keys generate)"
        )
    return key


def did_key(public: Ed25519PublicKey) -> str:
    """The did:key of a public key: multicodec ed25519-pub, base58btc multibase."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "did:key:z" + b58encode(ED25519_MULTICODEC + raw)


def public_key_of(did: str) -> Ed25519PublicKey:
    """The Ed25519 public key a did:key (or one of its verification methods) stands for."""
    identifier = did.split("#", 1)[0].removeprefix("did:key:")
    if not identifier.startswith("z"):
        raise CredentialError("the verification method is not an Ed25519 did:key")
    try:
        raw = b58decode(identifier[1:])
    except ValueError:
        raw = b""
    if not raw.startswith(ED25519_MULTICODEC) or len(raw) != 34:
        raise CredentialError("the verification method is not an Ed25519 did:key")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


# -- building and signing -----------------------------------------------------------------


def build(certificate: Certificate, settings: Settings, lang: Language) -> dict[str, Any]:
    """The unsigned OpenBadgeCredential of a stored certificate."""
    base = public_url(settings)
    url = settings.verify_url(certificate.code)
    track = lang.s(f"track.{certificate.track}")
    return {
        "@context": CONTEXTS,
        "id": url,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": certificate.course_title,
        "issuer": {
            "id": f"{base}/issuers/{certificate.organisation_id}",
            "type": ["Profile"],
            "name": certificate.organisation_name or base,
            "url": base,
        },
        "validFrom": _stamp(certificate.issued_at),
        "validUntil": _stamp(certificate.expires_at),
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "result": [
                {
                    "type": ["Result"],
                    "resultDescription": _quiz_id(base, certificate),
                    "value": str(round(certificate.score * 100)),
                }
            ],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityType": "name",
                    "hashed": False,
                    "identityHash": certificate.learner_name,
                }
            ],
            "achievement": _achievement(certificate, base, track, lang),
        },
        "credentialStatus": {"id": url, "type": "NIS2CoachCertificateCheck"},
    }


def _quiz_id(base: str, certificate: Certificate) -> str:
    return f"{base}/achievements/{certificate.course_version}/final-quiz"


def _achievement(certificate: Certificate, base: str, track: str, lang: Language) -> dict[str, Any]:
    pass_mark = round(certificate.pass_mark * 100)
    return {
        "id": f"{base}/achievements/{certificate.course_version}/{certificate.track}",
        "type": ["Achievement"],
        "achievementType": "Course",
        "name": certificate.course_title,
        "description": lang.s("credential.description", track=track),
        "criteria": {"narrative": lang.s("credential.criteria", pass_mark=pass_mark)},
        "version": certificate.course_version,
        "specialization": track,
        "inLanguage": certificate.language,
        "otherIdentifier": [
            {
                "type": "IdentifierEntry",
                "identifier": f"sha256:{certificate.content_hash}",
                "identifierType": "identifier",
            }
        ],
        "resultDescription": [
            {
                "id": _quiz_id(base, certificate),
                "type": ["ResultDescription"],
                "name": lang.s("credential.quiz"),
                "resultType": "Percent",
                "requiredValue": str(pass_mark),
            }
        ],
    }


def sign(document: dict[str, Any], key: Ed25519PrivateKey, created: datetime) -> dict[str, Any]:
    """The document with an eddsa-jcs-2022 DataIntegrityProof added."""
    method = did_key(key.public_key())
    options = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": _stamp(created),
        "verificationMethod": f"{method}#{method.removeprefix('did:key:')}",
        "proofPurpose": "assertionMethod",
    }
    signature = key.sign(_hash_data(document, options))
    return {**document, "proof": {**options, "proofValue": "z" + b58encode(signature)}}


def issue(
    certificate: Certificate, settings: Settings, lang: Language, key: Ed25519PrivateKey
) -> dict[str, Any]:
    """The signed credential of a certificate, the same every time it is asked for."""
    return sign(build(certificate, settings, lang), key, certificate.issued_at)


def to_bytes(credential: dict[str, Any]) -> bytes:
    return json.dumps(credential, ensure_ascii=False, indent=2).encode()


# -- checking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What a valid proof tells: who signed, and which certificate it speaks of."""

    signer: str
    code: str
    valid_from: str | None
    valid_until: str | None


def check(credential: Any) -> Checked:
    """Verify the proof of a credential; raise CredentialError saying what does not hold."""
    if not isinstance(credential, dict) or not isinstance(credential.get("proof"), dict):
        raise CredentialError("not a signed credential: there is no proof")
    proof = dict(credential["proof"])
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise CredentialError(f"unsupported proof: only {PROOF_TYPE} {CRYPTOSUITE} is checked")
    value = str(proof.pop("proofValue", ""))
    method = str(proof.get("verificationMethod", ""))
    public = public_key_of(method)
    document = {name: item for name, item in credential.items() if name != "proof"}
    try:
        signature = b58decode(value.removeprefix("z")) if value.startswith("z") else b""
        public.verify(signature, _hash_data(document, proof))
    except (InvalidSignature, ValueError):
        raise CredentialError("signature does not match: the credential was changed") from None
    code = str(document.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
    return Checked(
        method.split("#", 1)[0], code, document.get("validFrom"), document.get("validUntil")
    )


def _hash_data(document: dict[str, Any], options: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical proof options, then of the canonical document."""
    config = {name: value for name, value in options.items() if name != "proofValue"}
    if "@context" in document:
        config["@context"] = document["@context"]
    try:
        canonical_config = rfc8785.dumps(config)
        canonical_document = rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        raise CredentialError("the credential holds values JSON cannot canonicalise") from None
    return hashlib.sha256(canonical_config).digest() + hashlib.sha256(canonical_document).digest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stamp(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


# -- base58btc (the multibase "z" alphabet) ------------------------------------------------


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, remainder = divmod(number, 58)
        digits = BASE58[remainder] + digits
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + digits


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = BASE58.find(char)
        if index < 0:
            raise ValueError(f"not base58: {char!r}")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body
