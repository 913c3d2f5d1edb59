"""Alerts' SQL: events deduplicated by their UNIQUE key, the outbox of deliveries (claimed by a compare-and-set),
every attempt, and the counts the checks read. The rules are in triage/alerts/; no network call is made here.

Each function runs inside the caller's short transaction: claim in one, send outside any, record in another."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.engine import rows_affected
from db.models import AlertAttempt, AlertDelivery, AlertEvent, Ticket
from triage.domain import PENDING, PRODUCTION

KEY = "alerts"  # the settings row holding a lead's alert configuration (triage/alerts/config.py)
PENDING_STATE, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


def event_key(condition: str, episode: int) -> str:
    return f"{condition}#{episode}"


def insert_event(s: Session, *, condition: str, episode: int, kind: str, title: str, facts: dict[str, Any],
                 channels: Sequence[str], now: datetime, ticket_id: int | None = None,
                 team: str | None = None) -> int | None:
    """The event and one pending delivery per channel, or None when its key exists already (another worker
    noticed it first: INSERT ... ON CONFLICT DO NOTHING on the UNIQUE key, so exactly one of them inserts it)."""
    table = cast(Table, AlertEvent.__table__)
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(
        key=event_key(condition, episode), condition=condition, episode=episode, kind=kind, title=title[:300],
        facts=json.dumps(facts, sort_keys=True, default=str), ticket_id=ticket_id, team=team, created_at=now,
    ).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    event_id = s.execute(stmt).scalar_one_or_none()
    if event_id is not None:
        s.add_all(AlertDelivery(event_id=event_id, channel=c, state=PENDING_STATE, attempts=0, next_at=now)
                  for c in channels)
    return event_id


@dataclass(frozen=True)
class Latest:
    id: int
    episode: int
    cleared: bool


def latest(s: Session, condition: str) -> Latest | None:
    """The condition's latest episode, or None when it never held."""
    row = s.execute(select(AlertEvent.id, AlertEvent.episode, AlertEvent.cleared_at)
                    .where(AlertEvent.condition == condition).order_by(AlertEvent.episode.desc()).limit(1)).first()
    return None if row is None else Latest(row[0], row[1], row[2] is not None)


def clear(s: Session, event_id: int, now: datetime) -> bool:
    """The episode's condition stopped holding: the next time it holds is a new episode (idempotent)."""
    res = s.execute(update(AlertEvent).where(AlertEvent.id == event_id, AlertEvent.cleared_at.is_(None))
                    .values(cleared_at=now))
    return rows_affected(res) == 1


@dataclass(frozen=True)
class UrgentTicket:
    id: int
    team: str | None
    category: str | None
    language: str | None


def urgent_tickets(s: Session, level: str, since: datetime, teams: Sequence[str], limit: int) -> list[UrgentTicket]:
    """Decided tickets at this priority level that arrived since `since` and have no event yet, oldest first
    (`teams`: only theirs; empty: every team)."""
    announced = select(AlertEvent.id).where(AlertEvent.ticket_id == Ticket.id).exists()
    # `priority || ''` keeps the planner off the priority index: it walks the day's arrivals on the created_at
    # index, however many urgent tickets the years before hold
    q = select(Ticket.id, Ticket.team, Ticket.category, Ticket.language).where(
        Ticket.priority.concat("") == level, Ticket.created_at >= since, Ticket.status != PENDING,
        Ticket.category.is_not(None), Ticket.purpose == PRODUCTION, ~announced)  # a pilot's or eval's: not traffic
    if teams:
        q = q.where(Ticket.team.in_(list(teams)))
    return [UrgentTicket(*r) for r in s.execute(q.order_by(Ticket.created_at, Ticket.id).limit(limit))]


@dataclass(frozen=True)
class Counts:
    """Decided tickets that arrived in a span: in all, escalated to tier 2, and per category."""

    tickets: int
    escalated: int
    categories: dict[str, int]


def counts(s: Session, start: datetime, end: datetime) -> Counts:
    """One GROUP BY over the tickets created in [start, end) that have a label (on the created_at index)."""
    rows = s.execute(select(Ticket.category, func.count(), func.sum(case((Ticket.escalated.is_(True), 1), else_=0)))
                     .where(Ticket.created_at >= start, Ticket.created_at < end, Ticket.category.is_not(None),
                            Ticket.purpose == PRODUCTION)
                     .group_by(Ticket.category)).all()
    cats = {str(c): int(n) for c, n, _ in rows}
    return Counts(sum(cats.values()), sum(int(e or 0) for _, _, e in rows), cats)


def ticket_text(s: Session, ticket_id: int) -> str | None:
    """A ticket's stored text ('' once erased), or None when there is no such ticket."""
    return s.scalar(select(Ticket.text).where(Ticket.id == ticket_id))


def _due(now: datetime, stale: datetime) -> Any:
    """A delivery that may be claimed now: pending and due, or claimed by a process silent past the lease."""
    return or_(and_(AlertDelivery.state == PENDING_STATE, AlertDelivery.next_at <= now),
               and_(AlertDelivery.state == SENDING, AlertDelivery.claimed_at < stale))


def due(s: Session, now: datetime, stale: datetime, limit: int) -> list[int]:
    return list(s.scalars(select(AlertDelivery.id).where(_due(now, stale)).order_by(AlertDelivery.next_at,
                                                                                     AlertDelivery.id).limit(limit)))


def any_due(s: Session, now: datetime, stale: datetime) -> bool:
    return s.scalar(select(AlertDelivery.id).where(_due(now, stale)).limit(1)) is not None


def claim(s: Session, delivery_id: int, worker: str, now: datetime, stale: datetime) -> bool:
    """Take the delivery to send it: a conditional UPDATE whose row count decides, so of any number of workers
    exactly one gets it."""
    res = s.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id, _due(now, stale))
                    .values(state=SENDING, claimed_by=worker, claimed_at=now))
    return rows_affected(res) == 1


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery: what to send and where."""

    delivery_id: int
    channel: str
    attempts: int  # made before this one
    key: str
    kind: str
    title: str
    facts: dict[str, Any]
    ticket_id: int | None
    team: str | None
    created_at: datetime


def outgoing(s: Session, delivery_id: int) -> Outgoing:
    d, e = s.execute(select(AlertDelivery, AlertEvent).join(AlertEvent, AlertEvent.id == AlertDelivery.event_id)
                     .where(AlertDelivery.id == delivery_id)).one()
    return Outgoing(d.id, d.channel, d.attempts, e.key, e.kind, e.title, json.loads(e.facts), e.ticket_id, e.team,
                    e.created_at)


def record_attempt(s: Session, delivery_id: int, *, worker: str, now: datetime, ok: bool, status: int | None,
                   error: str | None, latency_ms: int, next_at: datetime | None) -> int:
    """Log the attempt and move the delivery on: sent (ok), pending again at `next_at`, or failed (given up,
    `next_at` None). Returns the attempt's number."""
    d = s.get(AlertDelivery, delivery_id)
    assert d is not None
    d.attempts += 1
    s.add(AlertAttempt(delivery_id=delivery_id, number=d.attempts, worker=worker, at=now, ok=ok, status=status,
                       error=error, latency_ms=latency_ms))
    d.claimed_by = d.claimed_at = None
    if ok:
        d.state, d.sent_at = SENT, now
    elif next_at is None:
        d.state = FAILED
    else:
        d.state, d.next_at = PENDING_STATE, next_at
    return d.attempts


def deliveries_of(s: Session, event_id: int) -> list[int]:
    return list(s.scalars(select(AlertDelivery.id).where(AlertDelivery.event_id == event_id)
                          .order_by(AlertDelivery.id)))


def recent(s: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The latest events, newest first, each with its deliveries and their attempts (no ticket text anywhere)."""
    events = s.scalars(select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit)).all()
    ids = [e.id for e in events]
    deliveries = s.scalars(select(AlertDelivery).where(AlertDelivery.event_id.in_(ids))
                           .order_by(AlertDelivery.id)).all() if ids else []
    attempts = _attempts(s, [d.id for d in deliveries])
    by_event: dict[int, list[dict[str, Any]]] = {}
    for d in deliveries:
        by_event.setdefault(d.event_id, []).append({
            "channel": d.channel, "state": d.state, "attempts": d.attempts, "next_at": d.next_at,
            "sent_at": d.sent_at, "tries": attempts.get(d.id, [])})
    return [{"id": e.id, "key": e.key, "kind": e.kind, "title": e.title, "facts": json.loads(e.facts),
             "ticket_id": e.ticket_id, "team": e.team, "created_at": e.created_at, "cleared_at": e.cleared_at,
             "deliveries": by_event.get(e.id, [])} for e in events]


def _attempts(s: Session, delivery_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = list(delivery_ids)
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    for a in s.scalars(select(AlertAttempt).where(AlertAttempt.delivery_id.in_(ids)).order_by(AlertAttempt.id)):
        out.setdefault(a.delivery_id, []).append({"number": a.number, "at": a.at, "ok": a.ok, "status": a.status,
                                                  "error": a.error, "latency_ms": a.latency_ms, "worker": a.worker})
    return out


def open_conditions(s: Session, prefix: str) -> set[str]:
    """The conditions under `prefix` whose latest episode has not cleared (an older one always has)."""
    return set(s.scalars(select(AlertEvent.condition).where(AlertEvent.condition.startswith(prefix, autoescape=True),
                                                            AlertEvent.cleared_at.is_(None))))
