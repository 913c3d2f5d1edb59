"""Erasure of personal data (issue 21): a ticket's text and requester, its stored vectors, the model's reasons and
problems (they quote the text) and corrections' notes are blanked or deleted; the ticket stays as a row with its labels,
calls and costs, so spend, routing and quality figures do not change. SQLite connections run with
`secure_delete` on (db/engine.py), so the freed bytes are overwritten; `scrub` checkpoints the WAL into the
database file and truncates it, so no old copy of a page stays there either."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from db import settings
from db.engine import Database, rows_affected
from db.models import Correction, ModelCall, Ticket, TicketVector
from triage.domain import PENDING

ERASED_TEXT = ""  # an erased ticket's text
_SALT_KEY = "privacy.salt"
_CHUNK = 500


@dataclass(frozen=True)
class Found:
    """The tickets asked for, as the database has them."""

    erasable: list[int]  # present, not erased yet, not waiting for or in classification
    erased: list[int]  # erased already (nothing left to erase)
    busy: list[int]  # pending or claimed: a worker may be sending their text right now
    missing: list[int]  # no such ticket


@dataclass(frozen=True)
class Erased:
    tickets: int
    vectors: int
    reasons: int  # model calls whose reason, problem or error was blanked
    notes: int  # corrections whose note was blanked


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[i:i + _CHUNK]) for i in range(0, len(ids), _CHUNK)]


def find(s: Session, ticket_ids: Sequence[int]) -> Found:
    rows: dict[int, tuple[str, str, str | None]] = {}
    for chunk in _chunks(sorted(set(ticket_ids))):
        rows.update({r.id: (r.text, r.status, r.claimed_by) for r in s.execute(
            select(Ticket.id, Ticket.text, Ticket.status, Ticket.claimed_by).where(Ticket.id.in_(chunk)))})
    erasable, erased, busy, missing = [], [], [], []
    for tid in sorted(set(ticket_ids)):
        if tid not in rows:
            missing.append(tid)
        elif rows[tid][0] == ERASED_TEXT:
            erased.append(tid)
        elif rows[tid][1] == PENDING or rows[tid][2] is not None:
            busy.append(tid)
        else:
            erasable.append(tid)
    return Found(erasable, erased, busy, missing)


def erased_among(s: Session, ticket_ids: Sequence[int]) -> set[int]:
    """Those of these tickets that were erased (nothing left to send to a model)."""
    out: set[int] = set()
    for chunk in _chunks(ticket_ids):
        out.update(s.scalars(select(Ticket.id).where(Ticket.id.in_(chunk), Ticket.text == ERASED_TEXT)))
    return out


def what_goes(s: Session, ticket_ids: Sequence[int]) -> Erased:
    """What `erase` would blank or delete for these tickets (nothing changes)."""
    vectors = reasons = notes = 0
    for chunk in _chunks(ticket_ids):
        vectors += s.scalar(select(func.count()).select_from(TicketVector)
                            .where(TicketVector.ticket_id.in_(chunk))) or 0
        reasons += s.scalar(select(func.count()).select_from(ModelCall)
                            .where(ModelCall.ticket_id.in_(chunk), _quoted())) or 0
        notes += s.scalar(select(func.count()).select_from(Correction)
                          .where(Correction.ticket_id.in_(chunk), Correction.note.is_not(None))) or 0
    return Erased(len(ticket_ids), vectors, reasons, notes)


def _quoted() -> ColumnElement[bool]:
    return or_(ModelCall.reason.is_not(None), ModelCall.problem.is_not(None), ModelCall.error.is_not(None))


def erase(s: Session, ticket_ids: Sequence[int]) -> Erased:
    """Blank the personal data of these tickets (found erasable by `find`, in the same transaction). Labels,
    statuses, calls, tokens and costs stay as they are; the hashes of the text go too (they would confirm a
    guessed text), the ticket's content hash becomes one no import can produce."""
    tickets = vectors = reasons = notes = 0
    for chunk in _chunks(ticket_ids):
        vectors += rows_affected(s.execute(delete(TicketVector).where(TicketVector.ticket_id.in_(chunk))))
        reasons += rows_affected(s.execute(update(ModelCall).where(ModelCall.ticket_id.in_(chunk), _quoted())
                                           .values(reason=None, problem=None, error=None)))
        notes += rows_affected(s.execute(update(Correction).where(Correction.ticket_id.in_(chunk),
                                                                  Correction.note.is_not(None)).values(note=None)))
        for tid in chunk:  # content_hash is unique: each erased ticket gets its own
            tickets += rows_affected(s.execute(
                update(Ticket).where(Ticket.id == tid).values(
                    text=ERASED_TEXT, text_hash=None, status_reason=None, requester_hash=None,
                    content_hash=hashlib.sha256(f"erased:{tid}".encode()).hexdigest())))
    return Erased(tickets, vectors, reasons, notes)


def of_requester(s: Session, requester_hash: str) -> list[int]:
    """The tickets imported with this requester (its keyed hash), in id order."""
    return list(s.scalars(select(Ticket.id).where(Ticket.requester_hash == requester_hash).order_by(Ticket.id)))


def idle_since(s: Session, cutoff: datetime) -> list[int]:
    """Tickets not erased yet whose last activity (the ticket changed, a call, a correction) is before `cutoff`,
    and that no worker is on."""
    recent_call = exists().where(ModelCall.ticket_id == Ticket.id, ModelCall.created_at >= cutoff)
    recent_fix = exists().where(Correction.ticket_id == Ticket.id, Correction.created_at >= cutoff)
    cond = and_(Ticket.text != ERASED_TEXT, Ticket.status != PENDING, Ticket.claimed_by.is_(None),
                Ticket.created_at < cutoff, or_(Ticket.updated_at.is_(None), Ticket.updated_at < cutoff),
                not_(recent_call), not_(recent_fix))
    return list(s.scalars(select(Ticket.id).where(cond).order_by(Ticket.id)))


def salt(s: Session) -> str:
    """This database's secret salt for the criteria the audit trail keeps hashed (made on first use)."""
    value = settings.get(s, _SALT_KEY)
    if not isinstance(value, str):
        value = secrets.token_hex(16)
        settings.put(s, _SALT_KEY, value, operator="system")
    return value


def scrub(db: Database) -> bool:
    """After an erasure: on SQLite, copy the WAL into the database file and truncate it, so the old pages are gone
    from both (secure_delete already zeroed the freed space). True when the checkpoint completed (False: another
    connection was reading; the next checkpoint finishes it). PostgreSQL keeps the old row versions until VACUUM
    reclaims them: nothing to do here."""
    if db.dialect != "sqlite":
        return True
    with db.engine.connect() as conn:
        busy, _log, _moved = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return not busy
