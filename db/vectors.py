"""Stored embeddings and the labelled tickets the local head learns from."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from db.models import Ticket, TicketVector

CONFIDENT_TIER1 = 0.9


def vectors_for(s: Session, ticket_ids: Sequence[int], model: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for i in range(0, len(ticket_ids), 500):
        rows = s.execute(select(TicketVector.ticket_id, TicketVector.vector)
                         .where(TicketVector.ticket_id.in_(ticket_ids[i:i + 500]), TicketVector.model == model))
        out.update({tid: vec for tid, vec in rows})
    return out


def store(s: Session, vectors: dict[int, bytes], model: str) -> None:
    have = set(vectors_for(s, list(vectors), model))
    s.add_all(TicketVector(ticket_id=tid, model=model, vector=v) for tid, v in vectors.items() if tid not in have)


def labelled(s: Session, categories: Sequence[str]) -> list[tuple[int, str, str, str]]:
    """(ticket id, text, label, source) for tickets whose label the head may learn from: operator corrections,
    tier-2 labels, and confident tier-1 labels. The local tier's own labels are never learned from."""
    cond = and_(Ticket.category.in_(categories), Ticket.text != "", or_(  # erased tickets (db/privacy.py) teach nothing
        Ticket.label_source == "operator", Ticket.label_source == "tier2",
        and_(Ticket.label_source == "tier1", Ticket.confidence >= CONFIDENT_TIER1)))
    rows = s.execute(select(Ticket.id, Ticket.text, Ticket.category, Ticket.label_source).where(cond)
                     .order_by(Ticket.id))
    return [(r.id, r.text, r.category or "", r.label_source or "") for r in rows]


def text_of(s: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for i in range(0, len(ticket_ids), 500):
        out.update(dict(s.execute(select(Ticket.id, Ticket.text).where(Ticket.id.in_(ticket_ids[i:i + 500]))).all()))
    return out
