"""Operator-labelled tickets and their stored vectors, for the few-shot examples of tier 1 (triage.fewshot_source)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Correction, Ticket, TicketVector


def operator_labelled(s: Session, categories: Sequence[str]) -> list[tuple[int, str, str, str | None]]:
    """(ticket id, text, label, text hash) of every ticket carrying an operator's label from the taxonomy, by id."""
    rows = s.execute(select(Ticket.id, Ticket.text, Ticket.category, Ticket.text_hash)
                     .where(Ticket.label_source == "operator", Ticket.category.in_(list(categories)))
                     .order_by(Ticket.id))
    return [(r.id, r.text, r.category or "", r.text_hash) for r in rows]


def same_text(s: Session, text_hash: str, model: str) -> tuple[list[int], bytes | None]:
    """The tickets whose normalised text hashes to `text_hash`, and a stored vector of one of them (the embedding
    depends on the text alone), or None when none is stored."""
    ids = list(s.scalars(select(Ticket.id).where(Ticket.text_hash == text_hash).order_by(Ticket.id)))
    vector = s.scalar(select(TicketVector.vector).where(TicketVector.ticket_id.in_(ids), TicketVector.model == model)
                      .limit(1)) if ids else None
    return ids, vector


def labels_stamp(s: Session) -> tuple[int, int]:
    """Changes whenever an operator label does (every label is an append-only corrections row): how many rows
    and the newest id. Not the `labels` data version, which also moves with every call on a labelled ticket."""
    n, newest = s.execute(select(func.count(Correction.id), func.max(Correction.id))).one()
    return int(n or 0), int(newest or 0)
