"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import rollups
from db.models import Correction, ModelCall, Ticket


def labelled_calls(s: Session, limit: int = 50_000, since: datetime | None = None) -> list[dict[str, Any]]:
    """For tickets an operator labelled (corrected, confirmed or imported): each answered model call (made at or
    after `since`, when given), newest tickets first."""
    q = (select(Ticket.id, Ticket.category, ModelCall.tier, ModelCall.model, ModelCall.category,
                ModelCall.confidence, ModelCall.cost_pico, ModelCall.outcome, ModelCall.calibration_id,
                ModelCall.calibrated_confidence, ModelCall.examples)
         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
         .where(Ticket.label_source == "operator", ModelCall.outcome != "error"))
    if since is not None:
        q = q.where(ModelCall.created_at >= since)
    q = q.order_by(Ticket.id.desc(), ModelCall.id).limit(limit)
    return [{"ticket_id": r[0], "truth": r[1], "tier": r[2], "model": r[3], "label": r[4], "confidence": r[5],
             "cost_pico": r[6], "outcome": r[7], "calibration_id": r[8], "calibrated_confidence": r[9],
             "examples": r[10]} for r in s.execute(q)]


def label_sources(s: Session, ticket_ids: Sequence[int]) -> dict[str, int]:
    """Where these tickets' operator labels came from (their latest audit row): review or import, counted."""
    latest: dict[int, str] = {}
    ids = list(ticket_ids)
    for i in range(0, len(ids), 500):
        rows = s.execute(select(Correction.ticket_id, Correction.source)
                         .where(Correction.ticket_id.in_(ids[i:i + 500])).order_by(Correction.id))
        latest.update({tid: source for tid, source in rows})  # later rows win
    counts: dict[str, int] = {}
    for source in latest.values():
        counts[source] = counts.get(source, 0) + 1
    return counts


def labels_version(s: Session) -> int:
    """Changes whenever the labelled answers could: an operator label, or a new call on a labelled ticket."""
    return rollups.version(s, rollups.LABELS)


def labelled_answers_from_calls(s: Session) -> list[dict[str, Any]]:
    """The labelled_answers rollup's rows, straight from the tickets and their calls (to check the rollup)."""
    keys = ("ticket_id", "tier", "call_id", "truth", "label", "confidence", "cost_pico")
    return [dict(zip(keys, r, strict=True)) for r in s.execute(rollups.latest_answers().order_by(ModelCall.id))]


def labelled_calls_by_group_size(s: Session, limit: int = 50_000,
                                 since: datetime | None = None) -> list[dict[str, Any]]:
    """For operator-labelled tickets: each answered model call with how many tickets shared its request, newest
    tickets first (the Quality page's comparison by group size)."""
    q = (select(Ticket.id, Ticket.category, ModelCall.tier, ModelCall.group_size, ModelCall.category,
                ModelCall.confidence)
         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
         .where(Ticket.label_source == "operator", ModelCall.outcome != "error"))
    if since is not None:
        q = q.where(ModelCall.created_at >= since)
    q = q.order_by(Ticket.id.desc(), ModelCall.id).limit(limit)
    return [{"ticket_id": r[0], "truth": r[1], "tier": r[2], "group_size": r[3], "label": r[4], "confidence": r[5]}
            for r in s.execute(q)]
