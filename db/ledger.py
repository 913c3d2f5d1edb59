"""The spending ledger: every paid call reserves its worst-case cost before its request is sent.

The reservation is also the record of the attempt. `calls.record_call` settles it in the transaction that
records the call (deleted; or kept as `unpriced` at its estimate when the price table could not price the
answer). A reservation whose process stopped or died before the answer arrived becomes `lost`: probably billed,
answer lost, counted at its estimate in spend and budget; so does each attempt that timed out or lost its
connection after the request went out (the retry reserves anew), and a lost one stays when its call is then
recorded without an answer. Callers hold the transaction; `lock` makes
check-then-reserve atomic across processes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, func, insert, not_, or_, select, text, update
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.selectable import ScalarSelect

from db import batches, rollups
from db.engine import rows_affected
from db.models import CallAttempt, ModelCall, Run, SpendDaily
from triage.domain import worker_pid

OPEN, LOST, UNPRICED = "open", "lost", "unpriced"
VERSION = "ledger"  # data version bumped when estimates change without a new call (cached spend pages key on it)
ESTIMATED = (LOST, UNPRICED)
STALE = timedelta(hours=1)  # an open call reservation this old belongs to a process that is gone, whatever its host
SUBMITTING = timedelta(minutes=10)  # a batch reservation counts this long before its run remembers the batch id
_LOCK_KEY = 7_432_017_955_102  # pg_advisory_xact_lock key of the ledger


def lock(s: Session) -> None:
    """Serialise reservations for the rest of this transaction. SQLite: the write transaction began with BEGIN
    IMMEDIATE, which already excludes every other writer. PostgreSQL: a transaction-scoped advisory lock."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


@dataclass(frozen=True)
class Committed:
    """Money spent or spoken for, in pico-dollars: the month and the day (UTC) of `today`."""

    month: int  # exact recorded spend (the demo's simulated calls left out: they were never billed)
    day: int
    estimated_month: int  # lost and unpriced calls at their estimate
    estimated_day: int
    in_flight: int  # open reservations (counted in both periods)


def _holding() -> ColumnElement[bool]:
    """Which open reservations hold money: every call's; a batch's while its run's batch is open (queued,
    submitting, in progress) or, just after it was reserved, before the run holds it. A collected, gone or failed
    batch stops holding without anyone settling it (`mark_dead_lost` clears it away)."""
    with_batch = select(Run.id).where(Run.batch_state.in_(batches.OPEN))
    not_yet_held = select(Run.id).where(Run.batch_state.is_(None))
    return or_(CallAttempt.kind != "batch", CallAttempt.run_id.in_(with_batch),
               and_(CallAttempt.run_id.in_(not_yet_held), CallAttempt.started_at >= datetime.now(UTC) - SUBMITTING))


def committed(s: Session, today: date) -> Committed:
    """One statement, so that a call recorded meanwhile is seen either as spend or as a reservation, never as
    neither (READ COMMITTED gives each statement one snapshot)."""
    first, last = today.replace(day=1).isoformat(), today.isoformat()

    def spent(start: str) -> ScalarSelect[Any]:
        return (select(func.coalesce(func.sum(SpendDaily.cost_pico - SpendDaily.demo_cost_pico), 0))  # not the demo's
                .where(SpendDaily.day >= start, SpendDaily.day <= last).scalar_subquery())

    def estimated(since: date) -> ScalarSelect[Any]:
        return (select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
                .where(CallAttempt.state.in_(ESTIMATED), CallAttempt.started_at >= rollups.midnight(since))
                .scalar_subquery())

    in_flight = (select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
                 .where(CallAttempt.state == OPEN, _holding()).scalar_subquery())
    row = s.execute(select(spent(first), spent(last), estimated(today.replace(day=1)), estimated(today),
                           in_flight)).one()
    return Committed(*(int(v or 0) for v in row))


def runs_committed(s: Session, run_ids: Sequence[int]) -> int:
    """Money spent or spoken for by these runs (a pilot's), in pico-dollars: their calls' exact cost plus, at their
    estimate, their reservations open, lost or unpriced (an unpriced call's own cost is 0 on its row). One
    statement, so a call recorded meanwhile counts once (as spend or as its reservation)."""
    if not run_ids:
        return 0
    ids = list(run_ids)
    spent = (select(func.coalesce(func.sum(ModelCall.cost_pico), 0)).where(ModelCall.run_id.in_(ids))
             .scalar_subquery())
    held = (select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
            .where(CallAttempt.run_id.in_(ids), CallAttempt.state.in_((OPEN, *ESTIMATED))).scalar_subquery())
    return sum(int(v or 0) for v in s.execute(select(spent, held)).one())


def reserve(s: Session, *, estimated_pico: int, tier: int, model: str, worker: str | None,
            ticket_id: int | None = None, run_id: int | None = None, kind: str = "call") -> int:
    row = insert(CallAttempt).values(kind=kind, ticket_id=ticket_id, run_id=run_id, tier=tier, model=model,
                                     worker=worker, estimated_pico=estimated_pico, state=OPEN,
                                     started_at=datetime.now(UTC))
    return int(s.execute(row.returning(CallAttempt.id)).scalar_one())


def batch_reservation(s: Session, run_id: int) -> int | None:
    """The open reservation of this run's Message Batch, if it has one."""
    return s.scalar(select(CallAttempt.id).where(CallAttempt.kind == "batch", CallAttempt.run_id == run_id,
                                                 CallAttempt.state == OPEN).limit(1))


def settle(s: Session, reservation_id: int, call_id: int, *, priced: bool, answered: bool = True,
           note: str | None = None, estimated_pico: int = 0) -> None:
    """The call is on the books: drop its reservation; or, when its cost is unknown, keep it as `unpriced` at the
    larger of its worst case and `estimated_pico` (its usage at the dearest known price). A call recorded without
    an answer drops only an open reservation: a lost one is an attempt that may have been billed all the same."""
    if not priced:
        held = s.scalar(select(CallAttempt.estimated_pico).where(CallAttempt.id == reservation_id)) or 0
        s.execute(update(CallAttempt).where(CallAttempt.id == reservation_id)
                  .values(state=UNPRICED, call_id=call_id, note=note, ended_at=datetime.now(UTC),
                          estimated_pico=max(held, estimated_pico)))
    elif answered:
        s.execute(delete(CallAttempt).where(CallAttempt.id == reservation_id))
    else:
        s.execute(delete(CallAttempt).where(CallAttempt.id == reservation_id, CallAttempt.state == OPEN))


def book_unpriced(s: Session, call_id: int, *, estimated_pico: int, tier: int, model: str, note: str | None,
                  ticket_id: int | None, run_id: int | None, at: datetime) -> None:
    """A call answered and billed under a model the price table lacks that had no reservation of its own (a
    Message Batches result: its batch's reservation is cleared as a whole): on the books as `unpriced` at
    `estimated_pico`, counted in spend and budget like every unpriced call, never as $0."""
    s.execute(insert(CallAttempt).values(kind="call", ticket_id=ticket_id, run_id=run_id, tier=tier, model=model,
                                         worker=None, estimated_pico=estimated_pico, state=UNPRICED,
                                         call_id=call_id, note=note, started_at=at, ended_at=datetime.now(UTC)))
    rollups.bump_version(s, VERSION)


def abandon(s: Session, reservation_id: int, note: str) -> None:
    """The call ended without an answer we could record: count it as probably billed."""
    abandon_all(s, [reservation_id], note)


def abandon_all(s: Session, reservation_ids: Sequence[int], note: str) -> list[CallAttempt]:
    """As `abandon`, for each of these reservations (the tickets of one request); returns their rows (those
    already settled or lost are left as they are, and returned too)."""
    if rows_affected(s.execute(update(CallAttempt).where(CallAttempt.id.in_(reservation_ids),
                                                          CallAttempt.state == OPEN)
                               .values(state=LOST, note=note, ended_at=datetime.now(UTC)))):
        rollups.bump_version(s, VERSION)
    rows = {r.id: r for r in s.scalars(select(CallAttempt).where(CallAttempt.id.in_(reservation_ids)))}
    return [rows[i] for i in reservation_ids if i in rows]


def mark_lost(s: Session, worker: str, note: str) -> int:
    """The open reservations of a worker that stopped with requests in flight."""
    lost = rows_affected(s.execute(update(CallAttempt).where(CallAttempt.state == OPEN, CallAttempt.worker == worker)
                                   .values(state=LOST, note=note, ended_at=datetime.now(UTC))))
    if lost:
        rollups.bump_version(s, VERSION)
    return lost


def _dead_workers(s: Session, host: str, alive: Callable[[int], bool]) -> list[str]:
    workers = s.scalars(select(CallAttempt.worker).where(CallAttempt.state == OPEN, CallAttempt.kind == "call",
                                                         CallAttempt.worker.like(f"{host}:%")).distinct()).all()
    return [w for w in workers if w and (pid := worker_pid(w, host)) is not None and not alive(pid)]


def needs_recovery(s: Session, host: str, alive: Callable[[int], bool]) -> bool:
    """Whether `mark_dead_lost` has anything to do (a read, so that idle workers do not take the write lock)."""
    stale = select(CallAttempt.id).where(CallAttempt.state == OPEN, or_(
        and_(CallAttempt.kind == "call", CallAttempt.started_at < datetime.now(UTC) - STALE),
        and_(CallAttempt.kind == "batch", not_(_holding())))).limit(1)
    return s.scalar(stale) is not None or bool(_dead_workers(s, host, alive))


def mark_dead_lost(s: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Open reservations of dead processes on this host, and stale ones from anywhere, become lost."""
    now = datetime.now(UTC)
    s.execute(delete(CallAttempt).where(CallAttempt.kind == "batch", CallAttempt.state == OPEN, not_(_holding())))
    lost = rows_affected(s.execute(update(CallAttempt).where(CallAttempt.kind == "call", CallAttempt.state == OPEN,
                                                             CallAttempt.started_at < now - STALE)
                                   .values(state=LOST, ended_at=now, note="still open after an hour: its process is "
                                                                          "gone (probably billed, answer lost)")))
    if lost:
        rollups.bump_version(s, VERSION)
    for worker in _dead_workers(s, host, alive):
        lost += mark_lost(s, worker, f"worker {worker} died with the request in flight (probably billed, answer "
                                     "lost)")
    return lost


@dataclass(frozen=True)
class PicoEstimates:
    """What the exact spend leaves out, in pico-dollars (the spend views' `triage.spend.reports.Estimates`)."""

    interrupted_calls: int = 0  # lost: probably billed, answer lost
    interrupted_pico: int = 0  # their worst-case estimate
    unknown_cost_calls: int = 0  # answered and billed, but the price table had no price
    unknown_cost_pico: int = 0  # their worst-case estimate (when they were reserved)


def estimates(s: Session, start: date | None = None, end: date | None = None) -> PicoEstimates:
    def bounded(q: Any, column: InstrumentedAttribute[datetime]) -> Any:  # Any: a Select of any row shape
        return rollups.within_days(q, start, end, column)

    lost_n, lost_pico = s.execute(bounded(
        select(func.count(), func.coalesce(func.sum(CallAttempt.estimated_pico), 0)).where(CallAttempt.state == LOST),
        CallAttempt.started_at)).one()
    unpriced_pico = s.scalar(bounded(select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
                                     .where(CallAttempt.state == UNPRICED), CallAttempt.started_at)) or 0
    unknown = select(func.count()).select_from(ModelCall).where(ModelCall.cost_known == false())  # partial index
    unknown_n = s.scalar(bounded(unknown, ModelCall.created_at)) or 0
    return PicoEstimates(int(lost_n), int(lost_pico), int(unknown_n), int(unpriced_pico))


