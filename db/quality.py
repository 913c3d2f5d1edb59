"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import rollups
from db.models import ModelCall, QualityTotal, Ticket


def quality_stats(s: Session) -> dict[str, Any]:
    """What the Quality page shows, as counts over every labelled answer (each labelled ticket's latest answer
    per tier), from the quality_totals rollup: a few hundred rows, whatever the history (db.rollups):

    - bins: (tier, reliability bin, calibration bin, answers, sum of confidence, right) of answers with a label
    - pairs: (first threshold above Haiku's confidence, has Sonnet answer, Haiku right, Sonnet right, both
      labelled, labels differ, tickets, Haiku cost) of tier-1 answers with a label, next to the ticket's tier 2
    - sonnet: (answers, cost) of tier-2 answers; tickets: labelled tickets with an answer."""
    out: dict[str, Any] = {"bins": [], "pairs": [], "sonnet": (0, 0), "tickets": 0}
    for key, n, units, right, cost in s.execute(select(QualityTotal.key, QualityTotal.n, QualityTotal.confidence_units,
                                                       QualityTotal.right, QualityTotal.cost_pico)):
        kind, *parts = key.split(":")
        if not n:
            continue
        if kind == "bins":
            out["bins"].append((*map(int, parts), int(n), units / rollups.CONFIDENCE_UNITS, int(right)))
        elif kind == "pairs":
            out["pairs"].append((*map(int, parts), int(n), int(cost)))
        elif kind == "sonnet":
            out["sonnet"] = (int(n), int(cost))
        elif kind == "tickets":
            out["tickets"] = int(n)
    return out


def labelled_answers_from_calls(s: Session) -> list[dict[str, Any]]:
    """The labelled_answers rows, straight from the tickets and their calls."""
    keys = ("ticket_id", "tier", "call_id", "truth", "label", "confidence", "cost_pico")
    return [dict(zip(keys, r, strict=True)) for r in s.execute(rollups.latest_answers().order_by(ModelCall.id))]


def labelled_calls(s: Session, limit: int | None = None) -> list[dict[str, Any]]:
    """For tickets an operator labelled: each answered model call, newest tickets first (a scan of their calls,
    what the page read before the rollups, kept to check them; the page then read at most 50,000)."""
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
