"""Short-lived download links, for files a chat cannot attach (a Teams bot's personal chat).

A link carries what to produce (a report, a learner's data), for whom, and until when,
signed with HMAC-SHA256. Nothing is stored: the file is produced when the link is opened,
so it shows the data of that moment, and a link is worthless after its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.settings import Settings

VALID_FOR = timedelta(minutes=15)


@dataclass(frozen=True)
class Grant:
    """What an opened link allows: one kind of file, for one person of one organisation."""

    kind: str
    organisation_id: int
    person_id: int
    expires: datetime
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class File:
    content: bytes
    content_type: str
    filename: str


# kind -> producer; each module that offers a download registers its producer here.
Producer = Callable[[Any, Grant], Awaitable[File]]
PRODUCERS: dict[str, Producer] = {}


def public_url(settings: Settings) -> str:
    """The server's public address, taken from the certificate check address."""
    parts = urlsplit(settings.certificate_base_url)
    return f"{parts.scheme}://{parts.netloc}"


def secret(settings: Settings) -> bytes | None:
    """A key for signing links, derived from a secret the server already has; None if none."""
    base = settings.microsoft_app_password or settings.slack_signing_secret or _key_text(settings)
    if not base:
        return None
    return hmac.new(base.encode(), b"nis2-coach download links", hashlib.sha256).digest()


def _key_text(settings: Settings) -> str | None:
    """The signing key itself: SIGNING_KEY may be a file's path, which is no secret."""
    value = (settings.signing_key or "").strip()
    if not value or value.startswith("-----BEGIN"):
        return value or None
    try:
        return Path(value).expanduser().read_text()
    except (OSError, UnicodeDecodeError):
        return None


class Links:
    def __init__(self, key: bytes, base_url: str) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")

    def make(self, grant: Grant) -> str:
        """The URL of a link for this grant."""
        payload = {
            "k": grant.kind,
            "o": grant.organisation_id,
            "p": grant.person_id,
            "e": int(grant.expires.timestamp()),
            "a": grant.params,
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{self.base_url}/downloads/{body}.{_b64(self._sign(body))}"

    def open(self, token: str, now: datetime) -> Grant | None:
        """The grant of a token, or None when it is forged, damaged or expired."""
        body, _, signature = token.partition(".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(body))
            payload = json.loads(_unb64(body)) if valid else None
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(payload, dict) or payload.get("e", 0) < now.timestamp():
            return None
        expires = datetime.fromtimestamp(payload["e"], now.tzinfo)
        return Grant(payload["k"], payload["o"], payload["p"], expires, payload.get("a") or {})

    def _sign(self, body: str) -> bytes:
        return hmac.new(self.key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
