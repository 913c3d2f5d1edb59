"""The SQL of Message Batch runs: holding tickets for a batch, remembering it, recording results once.

A run's batch goes queued -> submitting -> in_progress -> collecting -> collected (or gone, or failed). Its
tickets are held (claimed by `holder(run_id)` until `HELD_OPEN`, i.e. until the batch is collected, gone or
failed, however long that takes) from before the batch is sent, so that no worker and no re-import sends them
again meanwhile. Entering submitting and collecting is a compare-and-set (`begin_submission`,
`begin_collecting`): exactly one process wins it and only that process (`batch_owner`) sends or records.
Callers hold the transaction; nothing here calls an API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_, select, update
from sqlalchemy.orm import Session

from db.engine import rows_affected
from db.models import ModelCall, Run, Ticket
from triage.domain import PENDING
from triage.errors import NotFound

HELD_OPEN = datetime(9999, 1, 1, tzinfo=UTC)  # a held ticket's claim: never runs out while its batch is open
OPEN = ("queued", "submitting", "in_progress", "collecting")


@dataclass(frozen=True)
class BatchRun:
    run_id: int
    batch_id: str | None
    state: str | None  # None: the run has no batch (any more)
    since: datetime | None
    message: str | None
    key: str | None = None  # the submission's nonce, in every custom id of its batch
    owner: str | None = None  # the process submitting or collecting it


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


def hold(s: Session, run_id: int, state: str, limit: int = 100_000, *, owner: str | None = None,
         key: str | None = None) -> list[tuple[int, str]]:
    """Hold the run's free pending tickets for its batch (until it is closed) and set the run's batch state (with
    the owner and key of a submission); (id, text) of each."""
    from db.queue import LEASE  # here: db.queue imports this module

    now = datetime.now(UTC)
    free = or_(Ticket.claimed_at.is_(None), Ticket.claimed_at < now - LEASE)  # a live worker renews its claims
    rows = s.execute(select(Ticket.id, Ticket.text).where(Ticket.run_id == run_id, Ticket.status == PENDING, free)
                     .order_by(Ticket.id).limit(limit).with_for_update(skip_locked=True)).all()
    if rows:
        s.execute(update(Ticket).where(Ticket.id.in_([r.id for r in rows]))
                  .values(claimed_by=holder(run_id), claimed_at=HELD_OPEN)
                  .execution_options(synchronize_session=False))
    set_state(s, run_id, state if rows else None, owner=owner, key=key)
    return [(r.id, r.text) for r in rows]


def held(s: Session, run_id: int) -> list[tuple[int, str]]:
    rows = s.execute(select(Ticket.id, Ticket.text).where(Ticket.claimed_by.in_(_holders(s, run_id)),
                                                          Ticket.status == PENDING).order_by(Ticket.id))
    return [(r.id, r.text) for r in rows]


def set_state(s: Session, run_id: int, state: str | None, *, batch_id: str | None = None,
              message: str | None = None, owner: str | None = None, key: str | None = None,
              where: ColumnElement[bool] | None = None) -> bool:
    """Set the run's batch state (the owner is cleared unless given); with `where`, only if it holds (a
    compare-and-set: True when this call changed the row)."""
    values: dict[str, Any] = {"batch_state": state, "batch_since": datetime.now(UTC), "batch_owner": owner}
    if batch_id is not None:
        values["batch_id"] = batch_id
    if message is not None:
        values["message"] = message
    if key is not None:
        values["batch_key"] = key
    cond = Run.id == run_id if where is None else and_(Run.id == run_id, where)
    return rows_affected(s.execute(update(Run).where(cond).values(**values)
                                   .execution_options(synchronize_session=False))) == 1


def begin_submission(s: Session, run_id: int, owner: str, key: str, *, seen: BatchRun,
                     abandoned: timedelta) -> bool:
    """queued -> submitting, or take over a submission abandoned `abandoned` ago, for `owner` with a new `key`:
    True for exactly one of any number of processes trying at once."""
    if seen.state == "queued":
        cond = Run.batch_state == "queued"
    else:
        cond = and_(Run.batch_state == "submitting", _same(Run.batch_key, seen.key), _same(Run.batch_owner, seen.owner),
                    Run.batch_since < datetime.now(UTC) - abandoned)
    return set_state(s, run_id, "submitting", owner=owner, key=key, where=cond)


def submitted(s: Session, run_id: int, key: str | None, batch_id: str) -> bool:
    """submitting (under `key`) -> in_progress with the batch's id; False when the submission was taken over."""
    return set_state(s, run_id, "in_progress", batch_id=batch_id,
                     where=and_(Run.batch_state == "submitting", _same(Run.batch_key, key)))


def let_go(s: Session, run_id: int, owner: str) -> None:
    """`owner` stops submitting (interrupted): the next check may resume at once. The state and its time stay:
    the time bounds the search for a batch the interrupted attempt may have created."""
    s.execute(update(Run).where(Run.id == run_id, Run.batch_owner == owner).values(batch_owner=None)
              .execution_options(synchronize_session=False))


def begin_collecting(s: Session, run_id: int, owner: str, *, seen: BatchRun, abandoned: timedelta) -> bool:
    """in_progress -> collecting for `owner`, or take over the collect `seen` holds when nobody has moved it on for
    `abandoned`: True for exactly one of any number of processes trying at once."""
    if seen.state == "in_progress":
        cond = Run.batch_state == "in_progress"
    else:
        cond = and_(Run.batch_state == "collecting", _same(Run.batch_owner, seen.owner),
                    Run.batch_since < datetime.now(UTC) - abandoned)
    return set_state(s, run_id, "collecting", owner=owner, where=cond)


def still_collecting(s: Session, run_id: int, owner: str) -> bool:
    """Whether `owner` still collects the run's batch; takes the run's row lock and says it is alive."""
    row = s.execute(select(Run.id).where(Run.id == run_id, Run.batch_state == "collecting", Run.batch_owner == owner)
                    .with_for_update()).first()
    if row is not None:
        s.execute(update(Run).where(Run.id == run_id).values(batch_since=datetime.now(UTC))
                  .execution_options(synchronize_session=False))
    return row is not None


def owned_by(owner: str) -> ColumnElement[bool]:
    """A run whose submission or collect `owner` holds (for `set_state(where=...)`)."""
    return Run.batch_owner == owner


def in_state(state: str) -> ColumnElement[bool]:
    return Run.batch_state == state


def _same(column: Any, value: str | None) -> ColumnElement[bool]:
    same: ColumnElement[bool] = column.is_(None) if value is None else column == value
    return same


def release(s: Session, run_id: int, reason: str, ticket_ids: Iterable[int] | None = None) -> int:
    """Give the run's held tickets (or these of them) back to the queue as pending, saying why."""
    cond = [Ticket.claimed_by.in_(_holders(s, run_id)), Ticket.status == PENDING]
    if ticket_ids is not None:
        cond.append(Ticket.id.in_(list(ticket_ids)))
    return rows_affected(s.execute(update(Ticket).where(*cond)
                                   .values(claimed_by=None, claimed_at=None, status_reason=reason)
                                   .execution_options(synchronize_session=False)))


_COLUMNS = (Run.id, Run.batch_id, Run.batch_state, Run.batch_since, Run.message, Run.batch_key, Run.batch_owner)
_BatchRow = Row[int, str | None, str | None, datetime | None, str | None, str | None, str | None]


def _batch_run(row: _BatchRow) -> BatchRun:
    return BatchRun(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def open_runs(s: Session) -> list[BatchRun]:
    rows = s.execute(select(*_COLUMNS).where(Run.batch_state.in_(OPEN)).order_by(Run.id))
    return [_batch_run(r) for r in rows]


def batch_run(s: Session, run_id: int) -> BatchRun | None:
    row = s.execute(select(*_COLUMNS).where(Run.id == run_id)).first()
    return _batch_run(row) if row else None


def holding_batch(s: Session, ticket_ids: Sequence[int]) -> dict[int, BatchRun]:
    """Those of these tickets an open batch holds, with the batch run holding each."""
    rows = s.execute(select(Ticket.id, Ticket.claimed_by).where(
        Ticket.id.in_(list(ticket_ids)), Ticket.status == PENDING, Ticket.claimed_by.like("batch:%"),
        Ticket.claimed_at >= datetime.now(UTC)))
    out: dict[int, BatchRun] = {}
    for tid, by in rows:
        run = _holder_run(s, str(by))
        if run is not None and run.state in OPEN:
            out[tid] = run
    return out


def _holder_run(s: Session, name: str) -> BatchRun | None:
    tail = name.removeprefix("batch:")
    if tail.startswith("run-") and tail[4:].isdigit():
        return batch_run(s, int(tail[4:]))
    row = s.execute(select(*_COLUMNS).where(Run.batch_id == tail)).first()  # held before batch states existed
    return _batch_run(row) if row else None


def is_held(s: Session, run_id: int, ticket_id: int) -> bool:
    """Whether the run's batch still holds this ticket (pending, waiting for its answer)."""
    return s.scalar(select(Ticket.id).where(Ticket.id == ticket_id, Ticket.status == PENDING,
                                            Ticket.claimed_by.in_(_holders(s, run_id)))) is not None


def known_batch_ids(s: Session) -> set[str]:
    return set(s.scalars(select(Run.batch_id).where(Run.batch_id.is_not(None))))


def recorded(s: Session, request_ids: Sequence[str]) -> set[str]:
    """Which of these request ids already have a call on the books."""
    return set(s.scalars(select(ModelCall.request_id).where(ModelCall.request_id.in_(list(request_ids)))))


def existing_tickets(s: Session, ticket_ids: Sequence[int]) -> set[int]:
    return set(s.scalars(select(Ticket.id).where(Ticket.id.in_(list(ticket_ids)))))
