"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from db import rollups
from db.models import LabelledAnswer, ModelCall, Ticket

LIMIT = 50_000


def answer_stats(s: Session, edges: list[float], thresholds: list[float], limit: int = LIMIT) -> dict[str, Any]:
    """What the Quality page shows, aggregated in SQL over the newest `limit` labelled answers (each labelled
    ticket's latest answer per tier, from the labelled_answers rollup), so no answer row reaches Python:

    - bins: (tier, reliability bin, calibration bin, answers, sum of confidence, right) of answers with a label;
      reliability bins are [lo, hi) (the last [lo, 1]), calibration bins (lo, hi] (the first [0, hi]), -1 outside
    - pairs: (first threshold above Haiku's confidence, has Sonnet answer, Haiku right, Sonnet right, both
      labelled, labels differ, tickets, Haiku cost) of tier-1 answers with a label, next to the ticket's tier 2
    - sonnet: (answers, cost) of tier-2 answers; tickets: labelled tickets with an answer.
    Confidence is taken as 0 where a model gave none."""
    w = (select(LabelledAnswer.ticket_id, LabelledAnswer.tier, LabelledAnswer.truth, LabelledAnswer.label,
                func.coalesce(LabelledAnswer.confidence, 0.0).label("conf"), LabelledAnswer.cost_pico)
         .order_by(LabelledAnswer.ticket_id.desc(), LabelledAnswer.tier.desc()).limit(limit).cte("w"))
    last = len(edges) - 2
    reliability = case(*[(and_(w.c.conf >= lo, w.c.conf < hi if i < last else w.c.conf <= hi), i)
                         for i, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False))], else_=-1)
    calibration = case(*[(and_(w.c.conf > lo if i else w.c.conf >= lo, w.c.conf <= hi), i)
                         for i, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False))], else_=-1)
    right = case((w.c.label == w.c.truth, 1), else_=0)
    bins = s.execute(select(w.c.tier, reliability, calibration, func.count(), func.sum(w.c.conf), func.sum(right))
                     .where(w.c.label.is_not(None)).group_by(w.c.tier, reliability, calibration)).all()
    h, t2 = w.alias("h"), w.alias("t2")
    above = case(*[(h.c.conf < t, i) for i, t in enumerate(thresholds)], else_=len(thresholds))
    has_sonnet = case((t2.c.ticket_id.is_not(None), 1), else_=0)
    h_right = case((h.c.label == h.c.truth, 1), else_=0)
    s_right = case((t2.c.label == h.c.truth, 1), else_=0)
    both = case((and_(h.c.label != "", t2.c.label.is_not(None), t2.c.label != ""), 1), else_=0)
    differ = case((h.c.label != t2.c.label, 1), else_=0)
    keys = (above, has_sonnet, h_right, s_right, both, differ)
    pairs = s.execute(select(*keys, func.count(), func.sum(h.c.cost_pico))
                      .select_from(h.outerjoin(t2, and_(t2.c.ticket_id == h.c.ticket_id, t2.c.tier == 2)))
                      .where(h.c.tier == 1, h.c.label.is_not(None)).group_by(*keys)).all()
    sonnet = s.execute(select(func.count(), func.coalesce(func.sum(w.c.cost_pico), 0)).where(w.c.tier == 2)).one()
    tickets = s.scalar(select(func.count(func.distinct(w.c.ticket_id))))
    return {"bins": [tuple(r) for r in bins], "pairs": [tuple(r) for r in pairs], "sonnet": tuple(sonnet),
            "tickets": int(tickets or 0)}


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
