"""The Teams app package: a zip with the manifest and two icons, ready to upload."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

ACCENT = (31, 78, 121)  # the certificate's blue
MANIFEST_SCHEMA = (
    "https://developer.microsoft.com/en-us/json-schemas/teams/v1.16/MicrosoftTeams.schema.json"
)
PERSONAL_COMMANDS = [
    ("next", "The next lesson now"),
    ("progress", "Your progress, points and streak"),
    ("pause", "Hold the daily lessons"),
    ("language da", "Dansk / Danish"),
    ("my-data", "Everything stored about you, as a file"),
    ("help", "What I can do"),
]
TEAM_COMMANDS = [
    ("enroll", "Enrol this team: track=, deadline=YYYY-MM-DD, lang=, keep=yes"),
    ("unenroll", "Stop the course for this team"),
    ("manager", "manager @person: they follow this team's progress"),
    ("status", "How the organisation is doing"),
    ("remind", "A friendly nudge to everyone behind"),
    ("revoke", "revoke CODE reason: withdraw a certificate"),
]


def png(size: int, background: tuple[int, int, int, int], mark: tuple[int, int, int, int]) -> bytes:
    """A square PNG with a centred block: enough for Teams' colour and outline icons."""
    inner = range(size // 4, size - size // 4)
    rows = b"".join(
        b"\0"
        + b"".join(bytes(mark if x in inner and y in inner else background) for x in range(size))
        for y in range(size)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def manifest(app_id: str, website: str) -> dict[str, Any]:
    def commands(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"title": title, "description": description} for title, description in pairs]

    return {
        "$schema": MANIFEST_SCHEMA,
        "manifestVersion": "1.16",
        "version": "1.0.0",
        "id": app_id,
        "developer": {
            "name": "NIS2 Awareness Coach",
            "websiteUrl": website,
            "privacyUrl": website,
            "termsOfUseUrl": website,
        },
        "name": {"short": "NIS2 Coach", "full": "NIS2 Awareness Coach"},
        "description": {
            "short": "NIS2 cyber-security awareness, one short lesson a day.",
            "full": "Daily micro-lessons with scenario questions and reflections, a final "
            "checklist and quiz, and a verifiable certificate. Team owners enrol their "
            "team; managers follow its progress.",
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#{:02X}{:02X}{:02X}".format(*ACCENT),
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal", "team"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {"scopes": ["personal"], "commands": commands(PERSONAL_COMMANDS)},
                    {"scopes": ["team"], "commands": commands(TEAM_COMMANDS)},
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


def write(path: Path, app_id: str, website: str) -> Path:
    """Write the zip Teams admins upload (Apps -> Manage your apps -> Upload an app)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest(app_id, website), indent=2))
        archive.writestr("color.png", png(192, (*ACCENT, 255), (255, 255, 255, 255)))
        archive.writestr("outline.png", png(32, (0, 0, 0, 0), (255, 255, 255, 255)))
    return path
