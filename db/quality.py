"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import rollups
from db.models import ModelCall, Ticket


def labelled_calls(s: Session, limit: int = 50_000) -> list[dict]:
    """For tickets an operator labelled (corrected or confirmed): each answered model call, newest tickets first."""
    q = (select(Ticket.id, Ticket.category, ModelCall.tier, ModelCall.model, ModelCall.category,
                ModelCall.confidence, ModelCall.cost_pico)
         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
         .where(Ticket.label_source == "operator", ModelCall.outcome != "error")
         .order_by(Ticket.id.desc(), ModelCall.id).limit(limit))
    return [{"ticket_id": r[0], "truth": r[1], "tier": r[2], "model": r[3], "label": r[4], "confidence": r[5],
             "cost_pico": r[6]} for r in s.execute(q)]


def labels_version(s: Session) -> int:
    """Changes whenever labelled_calls could: an operator label, or a new call on a labelled ticket."""
    return rollups.version(s, rollups.LABELS)
