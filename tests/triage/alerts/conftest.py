"""Seeding tickets for the alert checks: rows written straight to the tables (category, priority, team, escalated,
arrival time), as the workers leave them once decided."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from db.engine import Database
from db.models import Ticket
from triage.domain import CLASSIFIED, ESCALATED

_serial = itertools.count(1)


def add_tickets(db: Database, rows: list[dict[str, Any]]) -> list[int]:
    """Insert decided tickets: each row's text (default a unique one), category, priority, team, escalated and
    created_at (default now)."""
    objs: list[Ticket] = []
    for row in rows:
        n = next(_serial)
        text = row.get("text", f"ticket number {n}")
        escalated = bool(row.get("escalated", False))
        objs.append(Ticket(text=text, content_hash=f"h{n}-{id(objs)}", source="test",
                           status=(ESCALATED if escalated else CLASSIFIED).value,
                           category=row.get("category", "billing"),
                           confidence=0.9, label_source="tier1", priority=row.get("priority"), team=row.get("team"),
                           language=row.get("language", "en"), escalated=escalated,
                           purpose=row.get("purpose", "production"),
                           created_at=row.get("created_at", datetime.now(UTC))))
    with db.transaction() as s:
        s.add_all(objs)
        s.flush()
        return [o.id for o in objs]


@pytest.fixture
def private_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local receivers listen on 127.0.0.1: allowed, as TRIAGE_ALERT_PRIVATE_HOSTS=1 allows them."""
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
