"""The audit log: every admin action, with who did it and when, kept as evidence."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import AuditEvent

logger = logging.getLogger(__name__)

ACTIONS = frozenset(
    {"enrol", "unenrol", "manager", "remind", "report", "revoke", "erase", "digest", "settings"}
)


async def record(
    db: Database,
    at: datetime,
    organisation_id: int | None,
    actor: str,
    action: str,
    target: str | None = None,
    **detail: Any,
) -> None:
    """Write one admin action; detail holds counts and options, never a learner's answers."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    async with db.session() as session:
        event = AuditEvent(
            organisation_id=organisation_id,
            actor=actor,
            action=action,
            target=target,
            detail=detail,
            at=at,
        )
        session.add(event)
    logger.info("audit: %s by %s in organisation %s", action, actor, organisation_id)


async def events(db: Database, organisation_id: int, since: datetime | None = None) -> list:
    """An organisation's audit events, oldest first."""
    query = select(AuditEvent).where(AuditEvent.organisation_id == organisation_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    async with db.session() as session:
        return list((await session.execute(query.order_by(AuditEvent.at, AuditEvent.id))).scalars())
