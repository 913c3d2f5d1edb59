"""Runs: one import-and-classify request, who started it, how it is routed, how it ended.

Callers hold the transaction; nothing here calls an API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.engine import rows_affected
from db.models import ModelCall, Run, Ticket
from triage.domain import FAILED, PENDING, PILOT, PRODUCTION
from triage.errors import NotFound


def run_info(s: Session, run_id: int) -> Run | None:
    return s.get(Run, run_id)


def create_run(s: Session, *, started_by: str, source: str, mode: str, threshold: float,
               per_call: int | None = None, purpose: str = PRODUCTION) -> int:
    run = Run(started_by=started_by, source=source, mode=mode, threshold=threshold, per_call=per_call,
              purpose=purpose)
    s.add(run)
    s.flush()
    return run.id


def finish_idle_runs(s: Session) -> int:
    """Mark running runs with nothing left pending as finished."""
    busy = select(Ticket.run_id).where(Ticket.status == PENDING, Ticket.run_id.is_not(None)).distinct()
    res = s.execute(update(Run).where(Run.status == "running", Run.id.not_in(busy))
                    .values(status="finished", finished_at=datetime.now(UTC)))
    return rows_affected(res)


def stop_running_runs(s: Session, message: str) -> None:
    s.execute(update(Run).where(Run.status == "running")
              .values(status="stopped", message=message, finished_at=datetime.now(UTC)))


def finish_run(s: Session, run_id: int, status: str, message: str | None = None) -> None:
    run = s.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    run.status, run.message, run.finished_at = status, message, datetime.now(UTC)


def recent_runs(s: Session, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs with who started them, from where, when, and their tickets' states now."""
    runs = s.scalars(select(Run).order_by(Run.id.desc()).limit(limit)).all()
    counts: dict[int, dict[str, int]] = {}
    if runs:
        rows = s.execute(select(Ticket.run_id, Ticket.status, func.count())
                         .where(Ticket.run_id.in_([r.id for r in runs])).group_by(Ticket.run_id, Ticket.status))
        for run_id, status, n in rows:
            if run_id is not None:  # excluded by the query; the column is nullable
                counts.setdefault(run_id, {})[status] = n
    return [{"run": r.id, "started_by": r.started_by, "source": r.source, "mode": r.mode, "status": r.status,
             "tickets": r.n_tickets, "new": r.n_new, **counts.get(r.id, {}), "started_at": r.started_at,
             "finished_at": r.finished_at, "message": r.message} for r in runs]


def run_state_counts(s: Session, run_id: int) -> dict[str, int]:
    rows = s.execute(select(Ticket.status, func.count()).where(Ticket.run_id == run_id).group_by(Ticket.status))
    return {k: v for k, v in rows}


def ticket_ids_of_run(s: Session, run_id: int, limit: int) -> list[int]:
    return list(s.scalars(select(Ticket.id).where(Ticket.run_id == run_id).order_by(Ticket.id).limit(limit)))


def run_cost_by_ticket(s: Session, run_id: int) -> dict[int, int]:
    rows = s.execute(select(ModelCall.ticket_id, func.sum(ModelCall.cost_pico))
                     .where(ModelCall.run_id == run_id).group_by(ModelCall.ticket_id))
    return {tid: int(p or 0) for tid, p in rows}


def failed_by_routing(s: Session, default_threshold: float) -> dict[tuple[str, float], list[int]]:
    """Failed tickets grouped by the mode and threshold of the run that queued them (retries keep both)."""
    groups: dict[tuple[str, float], list[int]] = {}
    rows = s.execute(select(Ticket.id, Run.mode, Run.threshold).outerjoin(Run, Run.id == Ticket.run_id)
                     .where(Ticket.status == FAILED, Ticket.purpose != PILOT).order_by(Ticket.id))
    for tid, mode, threshold in rows:
        key = (mode or "auto", default_threshold if threshold is None else threshold)
        groups.setdefault(key, []).append(tid)
    return groups
