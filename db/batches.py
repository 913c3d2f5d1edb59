"""The SQL of Message Batch runs: holding tickets for a batch, remembering it, recording results once.

A run's batch goes queued -> submitting -> in_progress -> collected (or gone, or failed). Its tickets are held
(claimed by `holder(run_id)` until the batch's expiry) from before the batch is sent, so that no worker and no
re-import sends them again meanwhile. Callers hold the transaction; nothing here calls an API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.orm import Session

from db.engine import rows_affected
from db.models import ModelCall, Run, Ticket
from triage.domain import PENDING
from triage.errors import NotFound

HOLD = timedelta(hours=25)  # a batch expires after 24 h; its tickets stay held until then
OPEN = ("queued", "submitting", "in_progress")


@dataclass(frozen=True)
class BatchRun:
    run_id: int
    batch_id: str | None
    state: str | None  # None: the run has no batch (any more)
    since: datetime | None
    message: str | None


def holder(run_id: int) -> str:
    return f"batch:run-{run_id}"


def _holders(s: Session, run_id: int) -> list[str]:
    run = s.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    names = [holder(run.id)]
    if run.batch_id:
        names.append(f"batch:{run.batch_id}")  # how tickets were held before batch states existed
    return names


def hold(s: Session, run_id: int, state: str, limit: int = 100_000) -> list[tuple[int, str]]:
    """Hold the run's free pending tickets for its batch and set the run's batch state; (id, text) of each."""
    now = datetime.now(UTC)
    free = or_(Ticket.claimed_at.is_(None), Ticket.claimed_at < now - timedelta(minutes=10))
    rows = s.execute(select(Ticket.id, Ticket.text).where(Ticket.run_id == run_id, Ticket.status == PENDING, free)
                     .order_by(Ticket.id).limit(limit).with_for_update(skip_locked=True)).all()
    if rows:
        s.execute(update(Ticket).where(Ticket.id.in_([r.id for r in rows]))
                  .values(claimed_by=holder(run_id), claimed_at=now + HOLD)
                  .execution_options(synchronize_session=False))
    set_state(s, run_id, state if rows else None)
    return [(r.id, r.text) for r in rows]


def held(s: Session, run_id: int) -> list[tuple[int, str]]:
    rows = s.execute(select(Ticket.id, Ticket.text).where(Ticket.claimed_by.in_(_holders(s, run_id)),
                                                          Ticket.status == PENDING).order_by(Ticket.id))
    return [(r.id, r.text) for r in rows]


def set_state(s: Session, run_id: int, state: str | None, *, batch_id: str | None = None,
              message: str | None = None) -> None:
    values: dict[str, Any] = {"batch_state": state, "batch_since": datetime.now(UTC)}
    if batch_id is not None:
        values["batch_id"] = batch_id
    if message is not None:
        values["message"] = message
    s.execute(update(Run).where(Run.id == run_id).values(**values).execution_options(synchronize_session=False))


def release(s: Session, run_id: int, reason: str, ticket_ids: Iterable[int] | None = None) -> int:
    """Give the run's held tickets (or these of them) back to the queue as pending, saying why."""
    cond = [Ticket.claimed_by.in_(_holders(s, run_id)), Ticket.status == PENDING]
    if ticket_ids is not None:
        cond.append(Ticket.id.in_(list(ticket_ids)))
    return rows_affected(s.execute(update(Ticket).where(*cond)
                                   .values(claimed_by=None, claimed_at=None, status_reason=reason)
                                   .execution_options(synchronize_session=False)))


def _batch_run(row: Row[int, str | None, str | None, datetime | None, str | None]) -> BatchRun:
    return BatchRun(row[0], row[1], row[2], row[3], row[4])


def open_runs(s: Session) -> list[BatchRun]:
    rows = s.execute(select(Run.id, Run.batch_id, Run.batch_state, Run.batch_since, Run.message)
                     .where(Run.batch_state.in_(OPEN)).order_by(Run.id))
    return [_batch_run(r) for r in rows]


def batch_run(s: Session, run_id: int, lock: bool = False) -> BatchRun | None:
    """The run's batch; `lock` takes its row lock (PostgreSQL) so that two collectors take turns."""
    stmt = select(Run.id, Run.batch_id, Run.batch_state, Run.batch_since, Run.message).where(Run.id == run_id)
    row = s.execute(stmt.with_for_update() if lock else stmt).first()
    return _batch_run(row) if row else None


def known_batch_ids(s: Session) -> set[str]:
    return set(s.scalars(select(Run.batch_id).where(Run.batch_id.is_not(None))))


def recorded(s: Session, request_ids: Sequence[str]) -> set[str]:
    """Which of these request ids already have a call on the books."""
    return set(s.scalars(select(ModelCall.request_id).where(ModelCall.request_id.in_(list(request_ids)))))


def existing_tickets(s: Session, ticket_ids: Sequence[int]) -> set[int]:
    return set(s.scalars(select(Ticket.id).where(Ticket.id.in_(list(ticket_ids)))))
