"""Operator labels brought in from a file: find the tickets a labelled row means (by id, by text), and add
tickets that exist only in the file, already labelled. Callers hold the transaction; the label of an existing
ticket is set through `db.review.correct` (compare-and-set on its version, plus the audit row)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import Correction, Ticket
from db.queue import content_hash
from triage.domain import CLASSIFIED

CHUNK = 500


class Known(NamedTuple):
    """What matching needs to know about a ticket."""

    id: int
    external_id: str | None
    text_hash: str | None
    category: str | None
    label_source: str | None
    version: int


_COLUMNS = (Ticket.id, Ticket.external_id, Ticket.text_hash, Ticket.category, Ticket.label_source, Ticket.version)


def _grouped(s: Session, column: InstrumentedAttribute[str | None], values: Sequence[str],
             key: str) -> dict[str, list[Known]]:
    out: dict[str, list[Known]] = {}
    unique = list(dict.fromkeys(values))
    for i in range(0, len(unique), CHUNK):
        rows = s.execute(select(*_COLUMNS).where(column.in_(unique[i:i + CHUNK])).order_by(Ticket.id))
        for r in rows:
            known = Known(*r)
            out.setdefault(getattr(known, key), []).append(known)
    return out


def by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, list[Known]]:
    return _grouped(s, Ticket.external_id, external_ids, "external_id")


def by_text_hashes(s: Session, hashes: Sequence[str]) -> dict[str, list[Known]]:
    return _grouped(s, Ticket.text_hash, hashes, "text_hash")


def load(s: Session, ticket_ids: Sequence[int]) -> None:
    """Bring these tickets into the session at once, so labelling them one by one does not query each."""
    for i in range(0, len(ticket_ids), CHUNK):
        s.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids[i:i + CHUNK]))).all()


def add_labelled_ticket(s: Session, *, external_id: str | None, text: str, label: str, operator: str, file: str,
                        note: str | None = None) -> int | None:
    """A ticket that exists only in the file: stored `classified` with the operator's label (no model call, no
    cost) and its audit row. None when a ticket with the same id and text exists (it appeared meanwhile)."""
    h = content_hash(text, external_id)
    if s.scalar(select(Ticket.id).where(Ticket.content_hash == h)) is not None:
        return None
    now = datetime.now(UTC)
    t = Ticket(external_id=external_id, text=text, source=file, content_hash=h, created_at=now, updated_at=now,
               status=CLASSIFIED, category=label, label_source="operator", corrected=True, corrected_by=operator,
               corrected_at=now)
    s.add(t)
    s.flush()
    s.add(Correction(ticket_id=t.id, previous_label=None, new_label=label, operator=operator, note=note,
                     source="import", file=file, created_at=now))
    return t.id


def operator_label_counts(s: Session, categories: Sequence[str]) -> dict[str, int]:
    """Tickets carrying an operator's label, per category of the taxonomy (every category listed)."""
    rows = s.execute(select(Ticket.category, func.count()).where(Ticket.label_source == "operator",
                                                                 Ticket.category.in_(categories))
                     .group_by(Ticket.category))
    counts = {c: 0 for c in categories}
    counts.update({str(c): int(n) for c, n in rows})
    return counts

