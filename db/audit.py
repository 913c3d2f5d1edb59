"""The audit trail: append an event, and read the recent ones merged with the runs people started."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, Run


def record(s: Session, *, actor: str, role: str, event: str, detail: dict[str, object],
           at: datetime | None = None) -> None:
    s.add(AuditEvent(actor=actor, role=role, event=event, detail=json.dumps(detail, sort_keys=True, default=str),
                     **({"at": at} if at else {})))


class Event(TypedDict):
    """One line of the audit trail: who (and with which role; "" for a run start), when, what, and its details."""

    at: datetime
    actor: str
    role: str
    event: str
    detail: dict[str, object]


def recent(s: Session, limit: int = 50) -> list[Event]:
    """The latest events, newest first: audit rows and run starts (who, when, what, details)."""
    events: list[Event] = [
        {"at": e.at, "actor": e.actor, "role": e.role, "event": e.event, "detail": json.loads(e.detail)}
        for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))]
    started: list[Event] = [
        {"at": r.started_at, "actor": r.started_by, "role": "", "event": "run.start",
         "detail": {"run": r.id, "source": r.source, "mode": r.mode, "tickets": r.n_tickets, "new": r.n_new}}
        for r in s.scalars(select(Run).order_by(Run.id.desc()).limit(limit))]
    merged = sorted(events + started, key=lambda e: _aware(e["at"]), reverse=True)
    return merged[:limit]


def _aware(value: object) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them alike."""
    if not isinstance(value, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
