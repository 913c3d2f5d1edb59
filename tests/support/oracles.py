"""Oracles: figures computed straight from the recorded calls, the slow way, to check the rollups and their
readers against (production reads the rollups; only tests and benchmarks ask these)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from db import rollups
from db.models import ModelCall
from db.reports import Tier2Inputs
from triage.domain import ERROR


def labelled_answers_from_calls(s: Session) -> list[dict[str, Any]]:
    """The labelled_answers rollup's rows, straight from the tickets and their calls (to check the rollup)."""
    return [dict(zip(rollups.ANSWER_COLUMNS, r, strict=True))
            for r in s.execute(rollups.latest_answers().order_by(ModelCall.id))]


def latencies_from_calls(s: Session, start: date | None = None, end: date | None = None) -> list[tuple[Any, ...]]:
    """(day, model, latency_ms) of every answered live call: the raw values the histogram counts."""
    day = rollups.day_sql(s).label("day")
    q = select(day, ModelCall.model, ModelCall.latency_ms).where(
        ModelCall.outcome != ERROR,
        or_(ModelCall.service_tier.is_(None), ModelCall.service_tier != rollups.BATCH))
    return [tuple(r) for r in s.execute(rollups.within_days(q, start, end).order_by(ModelCall.id))]


def tier1_tokens_and_direct_tier2_from_calls(s: Session, start: date | None = None,
                                              end: date | None = None) -> Tier2Inputs:
    """`reports.tier1_tokens_and_direct_tier2`, straight from model_calls."""
    t1 = rollups.within_days(select(func.coalesce(func.sum(ModelCall.input_tokens), 0),
                                    func.coalesce(func.sum(ModelCall.output_tokens), 0))
                             .where(ModelCall.tier == 1, ModelCall.outcome != ERROR), start, end)
    inp, out = s.execute(t1).one()
    seen_by_t1 = select(ModelCall.ticket_id).where(ModelCall.tier == 1)
    direct = rollups.within_days(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                                 .where(ModelCall.tier == 2, ModelCall.ticket_id.not_in(seen_by_t1)), start, end)
    return Tier2Inputs(input_tokens=int(inp), output_tokens=int(out), direct_tier2_pico=int(s.scalar(direct) or 0))
