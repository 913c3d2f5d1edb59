"""Stored calibrations (one row per fit, never changed; the latest per model is in force) and the cheap counts
that tell whether enough new labels arrived to refit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session, aliased

from db import rollups
from db.models import Calibration, LabelledAnswer
from triage.domain import UNKNOWN


class CalibrationRow(TypedDict):
    """One stored fit (the columns of `calibrations`, in this order: triage.quality.calibrate's JSON keeps it)."""

    id: int
    model: str
    method: str
    a: float
    b: float
    n: int  # labelled answers it was fitted on, and of those right
    n_right: int
    ece_before: float
    ece_after: float | None  # cross-validated; None when there were too few answers to hold some out
    trigger: str
    fitted_by: str
    fitted_at: datetime  # aware UTC


def _as_row(row: Calibration) -> CalibrationRow:
    fitted_at = row.fitted_at if row.fitted_at.tzinfo is not None else row.fitted_at.replace(tzinfo=UTC)  # SQLite
    return CalibrationRow(id=row.id, model=row.model, method=row.method, a=row.a, b=row.b, n=row.n,
                          n_right=row.n_right, ece_before=row.ece_before, ece_after=row.ece_after,
                          trigger=row.trigger, fitted_by=row.fitted_by, fitted_at=fitted_at)


def in_force(s: Session) -> dict[str, CalibrationRow]:
    """The latest fit of each model, by model."""
    latest = select(func.max(Calibration.id)).group_by(Calibration.model)
    return {r.model: _as_row(r) for r in s.scalars(select(Calibration).where(Calibration.id.in_(latest)))}


def add(s: Session, *, model: str, a: float, b: float, n: int, n_right: int, ece_before: float,
        ece_after: float | None, trigger: str, fitted_by: str, method: str = "platt") -> int:
    """Store a fit; it is in force from now on. The Quality page's figures change with it (the what-if replays
    on the calibrated confidence), so the `labels` data version moves in the same transaction."""
    row = Calibration(model=model, method=method, a=a, b=b, n=n, n_right=n_right, ece_before=ece_before,
                      ece_after=ece_after, trigger=trigger[:40], fitted_by=fitted_by[:255],
                      fitted_at=datetime.now(UTC))
    s.add(row)
    s.flush()
    rollups.bump_version(s, rollups.LABELS)
    return row.id


def labelled_answer_counts(s: Session) -> dict[str, tuple[int, int]]:
    """Per model (tiers 1 and 2): (answers, right answers) among labelled tickets' latest answer of each tier
    that has a label from the taxonomy and a confidence. Reads the labelled_answers rollup (one or two rows per
    labelled ticket and tier: the later one is the latest answer), so it costs what the labels cost, not what the
    history holds."""
    later = aliased(LabelledAnswer)
    superseded = exists().where(later.ticket_id == LabelledAnswer.ticket_id, later.tier == LabelledAnswer.tier,
                                later.call_id > LabelledAnswer.call_id)
    right = func.sum(case((LabelledAnswer.label == LabelledAnswer.truth, 1), else_=0))
    rows = s.execute(select(LabelledAnswer.model, func.count(), right)
                     .where(LabelledAnswer.tier >= 1, LabelledAnswer.confidence.is_not(None),
                            LabelledAnswer.label.is_not(None), LabelledAnswer.label != UNKNOWN, ~superseded)
                     .group_by(LabelledAnswer.model))
    return {model: (int(n), int(r or 0)) for model, n, r in rows}
