"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import rollups
from db.models import LabelledAnswer, ModelCall, Ticket

LIMIT = 50_000


def labelled_answers(s: Session, limit: int = LIMIT) -> list[tuple[Any, ...]]:
    """For tickets an operator labelled (corrected or confirmed): each tier's latest answer as (ticket_id, tier,
    truth, label, confidence, cost_pico), newest tickets first (from the labelled_answers rollup, read in key
    order: one row per answer, whatever the history holds)."""
    q = (select(LabelledAnswer.ticket_id, LabelledAnswer.tier, LabelledAnswer.truth, LabelledAnswer.label,
                LabelledAnswer.confidence, LabelledAnswer.cost_pico)
         .order_by(LabelledAnswer.ticket_id.desc(), LabelledAnswer.tier.desc()).limit(limit))
    return list(s.connection().execute(q).all())


def labelled_answers_from_calls(s: Session) -> list[dict[str, Any]]:
    """The labelled_answers rows, straight from the tickets and their calls."""
    keys = ("ticket_id", "tier", "call_id", "truth", "label", "confidence", "cost_pico")
    return [dict(zip(keys, r, strict=True)) for r in s.execute(rollups.latest_answers().order_by(ModelCall.id))]


def labelled_calls(s: Session, limit: int = LIMIT) -> list[dict[str, Any]]:
    """For tickets an operator labelled: each answered model call, newest tickets first (a scan of their calls:
    what the page read before labelled_answers, kept to check it)."""
    q = (select(Ticket.id, Ticket.category, ModelCall.tier, ModelCall.model, ModelCall.category,
                ModelCall.confidence, ModelCall.cost_pico)
         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
         .where(Ticket.label_source == "operator", ModelCall.outcome != "error")
         .order_by(Ticket.id.desc(), ModelCall.id).limit(limit))
    return [{"ticket_id": r[0], "truth": r[1], "tier": r[2], "model": r[3], "label": r[4], "confidence": r[5],
             "cost_pico": r[6]} for r in s.execute(q)]


def labels_version(s: Session) -> int:
    """Changes whenever labelled_answers could: an operator label, or a new call on a labelled ticket."""
    return rollups.version(s, rollups.LABELS)
