"""Pilots (triage/work/pilot.py): queued by a lead, worked once by one process, their figures stored; and the
calls of a pilot's runs, read back to measure each route. Callers hold the transaction; nothing here calls an
API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TypedDict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import rollups
from db.engine import rows_affected
from db.models import ModelCall, Pilot, Run, Ticket
from triage.domain import FAILED, PENDING, PILOT

PREPARING, QUEUED, RUNNING = "preparing", "queued", "running"  # its runs being made; ready to run; being run
FINISHED, STOPPED, BROKEN = "finished", "stopped", "failed"


class PilotFields(TypedDict):
    """What a pilot's row says besides its spec and result (the same whether these are stored text or read)."""

    id: int
    source: str
    started_by: str
    status: str
    message: str | None
    sample: int
    seed: int
    cap_pico: int
    volume: int | None
    worker: str | None
    created_at: datetime
    finished_at: datetime | None


class PilotRow(PilotFields):
    """A pilot as stored. `spec` and `result` are its JSON text (the shapes are triage.work.pilot's, which writes
    and reads them)."""

    spec: str  # "{}" until its runs are made
    result: str | None


class PilotCall(TypedDict):
    """A recorded call of a pilot's run (`calls_of_runs`), with its ticket's external id."""

    id: int
    ticket_id: int
    run_id: int | None
    tier: int
    model: str
    outcome: str
    category: str | None
    confidence: float | None
    calibration_id: int | None
    calibrated_confidence: float | None
    cost_pico: int
    latency_ms: int
    error_kind: str | None
    group_size: int  # tickets in its request
    external_id: str | None


def create(s: Session, *, source: str, started_by: str, sample: int, seed: int, cap_pico: int,
           volume: int | None) -> int:
    pilot = Pilot(source=source[:255], started_by=started_by, status=PREPARING, sample=sample, seed=seed,
                  cap_pico=cap_pico, volume=volume, spec="{}")
    s.add(pilot)
    s.flush()
    return pilot.id


def set_spec(s: Session, pilot_id: int, spec: str, *, ready: bool = False) -> None:
    """Store what the pilot is (JSON text); `ready`: its runs are made, and it is queued for a worker to take."""
    q = update(Pilot).where(Pilot.id == pilot_id)
    s.execute(q.values(spec=spec, status=QUEUED) if ready else q.values(spec=spec))


def take(s: Session, worker: str, pilot_id: int | None = None) -> int | None:
    """Make a queued pilot (this one, else the oldest) this worker's: a compare-and-set, so that of any number of
    processes exactly one works it. Returns its id, or None when there was none to take."""
    q = select(Pilot.id).where(Pilot.status == QUEUED).order_by(Pilot.id).limit(1)
    if pilot_id is not None:
        q = q.where(Pilot.id == pilot_id)
    found = s.scalar(q)
    if found is None:
        return None
    taken = rows_affected(s.execute(update(Pilot).where(Pilot.id == found, Pilot.status == QUEUED)
                                    .values(status=RUNNING, worker=worker)))
    return found if taken else None


def any_queued(s: Session) -> bool:
    """One probe of ix_pilots_status (the dashboard's worker asks it every poll)."""
    return s.scalar(select(Pilot.id).where(Pilot.status == QUEUED).limit(1)) is not None


def finish(s: Session, pilot_id: int, status: str, message: str | None, result: str | None) -> None:
    """End it, with its figures (JSON text) when it measured any."""
    s.execute(update(Pilot).where(Pilot.id == pilot_id).values(
        status=status, message=message, result=result, finished_at=datetime.now(UTC), worker=None))


def _plain(p: Pilot) -> PilotRow:
    return PilotRow(id=p.id, source=p.source, started_by=p.started_by, status=p.status, message=p.message,
                    sample=p.sample, seed=p.seed, cap_pico=p.cap_pico, volume=p.volume, spec=p.spec or "{}",
                    result=p.result or None, worker=p.worker, created_at=p.created_at, finished_at=p.finished_at)


def get(s: Session, pilot_id: int) -> PilotRow | None:
    p = s.get(Pilot, pilot_id)
    return None if p is None else _plain(p)


def recent(s: Session, limit: int = 10) -> list[PilotRow]:
    return [_plain(p) for p in s.scalars(select(Pilot).order_by(Pilot.id.desc()).limit(limit))]


def running_by(s: Session, workers: Sequence[str]) -> list[int]:
    """Pilots these (gone) processes were working."""
    return list(s.scalars(select(Pilot.id).where(Pilot.status == RUNNING, Pilot.worker.in_(list(workers)))))


def running_workers(s: Session) -> list[str]:
    return [w for w in s.scalars(select(Pilot.worker).where(Pilot.status == RUNNING).distinct()) if w]


def calls_of_runs(s: Session, run_ids: Sequence[int]) -> list[PilotCall]:
    """Every call recorded for these runs' tickets (a pilot's), with the ticket's external id, in call order."""
    if not run_ids:
        return []
    m = ModelCall
    q = (select(m.id, m.ticket_id, m.run_id, m.tier, m.model, m.outcome, m.category, m.confidence, m.calibration_id,
                m.calibrated_confidence, m.cost_pico, m.latency_ms, m.error_kind, m.group_size, Ticket.external_id)
         .join(Ticket, Ticket.id == m.ticket_id).where(m.run_id.in_(list(run_ids))).order_by(m.id))
    return [PilotCall(id=r[0], ticket_id=r[1], run_id=r[2], tier=r[3], model=r[4], outcome=r[5], category=r[6],
                      confidence=r[7], calibration_id=r[8], calibrated_confidence=r[9], cost_pico=r[10],
                      latency_ms=r[11], error_kind=r[12], group_size=r[13], external_id=r[14])
            for r in s.execute(q)]


def spend(s: Session, start: date | None = None, end: date | None = None) -> int:
    """What pilots' recorded calls cost on the UTC days `start`..`end` (pico-dollars): a walk of the pilot runs'
    calls only (ix_model_calls_run_id)."""
    pilot_runs = select(Run.id).where(Run.purpose == PILOT)
    q = select(func.coalesce(func.sum(ModelCall.cost_pico), 0)).where(ModelCall.run_id.in_(pilot_runs))
    return int(s.scalar(rollups.within_days(q, start, end, ModelCall.created_at)) or 0)


def close(s: Session, run_ids: Sequence[int], reason: str) -> int:
    """A pilot ended (finished, stopped by a cap, failed): its tickets still pending are never asked (they leave the
    queue as failed, with why; no worker claims a pilot's tickets, and retries leave them alone) and its runs end.
    Returns how many tickets were left unasked."""
    if not run_ids:
        return 0
    ids = list(run_ids)
    left = rows_affected(s.execute(update(Ticket).where(Ticket.run_id.in_(ids), Ticket.purpose == PILOT,
                                                        Ticket.status == PENDING)
                                   .values(status=FAILED, status_reason=reason, claimed_by=None, claimed_at=None)))
    s.execute(update(Run).where(Run.id.in_(ids), Run.status == "running")
              .values(status="finished", finished_at=datetime.now(UTC)))
    return left
