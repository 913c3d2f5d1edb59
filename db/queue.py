"""Every query the engine needs. Short write transactions; no API call ever happens in here."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.models import ModelCall, Run, SpendDaily, Ticket
from triage.pricing import Usage, from_pico, to_pico
from triage.providers.base import CallResult
from triage.router import FAILED, PENDING, Outcome

LEASE = timedelta(minutes=10)  # a claim older than this is considered abandoned (crashed worker)


def content_hash(text: str, external_id: str | None = None) -> str:
    normal = re.sub(r"\s+", " ", text.strip())
    return hashlib.sha256(f"{external_id or ''}\x00{normal}".encode()).hexdigest()


@dataclass(frozen=True)
class Imported:
    ticket_ids: list[int]  # in input order, one per input item (known tickets included)
    new_ids: list[int]
    known_ids: list[int]
    run_id: int | None = None


@dataclass(frozen=True)
class Claimed:
    ticket_id: int
    text: str
    wants_tier2: bool
    run_id: int | None


def _aware(when: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; every stored time is UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def count_known(s: Session, items: Sequence[tuple[str | None, str]]) -> int:
    """How many of these tickets are already in the database (for a preview before importing)."""
    hashes = list({content_hash(text, ext) for ext, text in items})
    known = 0
    for i in range(0, len(hashes), 500):
        known += s.scalar(select(func.count()).select_from(Ticket)
                          .where(Ticket.content_hash.in_(hashes[i:i + 500]))) or 0
    return known


def run_info(s: Session, run_id: int) -> Run | None:
    return s.get(Run, run_id)


def create_run(s: Session, *, started_by: str, source: str, mode: str, threshold: float) -> int:
    run = Run(started_by=started_by, source=source, mode=mode, threshold=threshold)
    s.add(run)
    s.flush()
    return run.id


def import_tickets(
    s: Session, items: Sequence[tuple[str | None, str]], *, source: str, run_id: int | None,
    requeue: Iterable[str] = (PENDING, FAILED), reclassify: bool = False,
) -> Imported:
    """Insert new tickets as pending. Known tickets (same text and id) are not duplicated; those in a
    `requeue` state (or all of them with `reclassify`) are queued again under this run."""
    hashes = [content_hash(text, ext) for ext, text in items]
    known: dict[str, Ticket] = {}
    unique = list(dict.fromkeys(hashes))
    for i in range(0, len(unique), 500):
        chunk = unique[i:i + 500]
        for t in s.scalars(select(Ticket).where(Ticket.content_hash.in_(chunk))):
            known[t.content_hash] = t
    now = datetime.now(UTC)
    new_ids, known_ids, by_hash = [], [], {}
    requeue = set(requeue)
    fresh_from = (s.scalar(select(func.max(ModelCall.id))) or 0) + 1 if reclassify else 0  # calls after this count
    for (ext, text), h in zip(items, hashes, strict=True):
        if h in by_hash:
            continue
        if h in known:
            t = known[h]
            held = t.claimed_by is not None and t.claimed_at is not None and _aware(t.claimed_at) > now - LEASE
            if not held and (reclassify or t.status in requeue):  # a ticket in flight is left alone
                if reclassify:
                    t.first_call_id = fresh_from
                t.status, t.run_id, t.claimed_by, t.claimed_at = PENDING, run_id, None, None
            known_ids.append(t.id)
        else:
            t = Ticket(external_id=ext, text=text, source=source, content_hash=h, run_id=run_id,
                       created_at=now, updated_at=now, status=PENDING)
            s.add(t)
            s.flush()
            new_ids.append(t.id)
        by_hash[h] = t.id
    if run_id is not None:
        run = s.get(Run, run_id)
        run.n_tickets, run.n_new = len(by_hash), len(new_ids)
    return Imported([by_hash[h] for h in hashes], new_ids, known_ids, run_id)


def requeue_tickets(s: Session, ticket_ids: Sequence[int], run_id: int | None) -> int:
    res = s.execute(
        update(Ticket).where(Ticket.id.in_(ticket_ids))
        .values(status=PENDING, run_id=run_id, claimed_by=None, claimed_at=None)
    )
    return res.rowcount


def claim_pending(s: Session, worker: str, limit: int, run_id: int | None = None) -> list[Claimed]:
    """Claim up to `limit` pending tickets for `worker` (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    now = datetime.now(UTC)
    cond = and_(Ticket.status == PENDING,
                or_(Ticket.claimed_at.is_(None), Ticket.claimed_at < now - LEASE))
    if run_id is not None:
        cond = and_(cond, Ticket.run_id == run_id)
    rows = s.execute(
        select(Ticket.id, Ticket.text, Ticket.escalation_requested, Ticket.run_id).where(cond).order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        s.execute(update(Ticket).where(Ticket.id.in_([r.id for r in rows]))
                  .values(claimed_by=worker, claimed_at=now))
    return [Claimed(r.id, r.text, bool(r.escalation_requested), r.run_id) for r in rows]


def hold_for_batch(s: Session, ticket_ids: Sequence[int], batch_id: str, until: datetime) -> None:
    """Keep tickets claimed while a Message Batch works on them (batches may take up to 24 hours)."""
    s.execute(update(Ticket).where(Ticket.id.in_(ticket_ids)).values(claimed_by=f"batch:{batch_id}",
                                                                        claimed_at=until))


def open_batches(s: Session) -> list[tuple[int, str]]:
    return [tuple(r) for r in s.execute(select(Run.id, Run.batch_id).where(Run.batch_id.is_not(None))
                                        .order_by(Run.id))]


def set_run_batch(s: Session, run_id: int, batch_id: str | None) -> None:
    s.execute(update(Run).where(Run.id == run_id).values(batch_id=batch_id))


def request_escalation(s: Session, ticket_ids: Sequence[int]) -> int:
    """Queue tickets for tier 2; a worker picks them up like any pending ticket."""
    free = or_(Ticket.claimed_by.is_(None), Ticket.claimed_at < datetime.now(UTC) - LEASE)  # not in flight
    return s.execute(
        update(Ticket).where(Ticket.id.in_(ticket_ids), free)
        .values(escalation_requested=True, status=PENDING, claimed_by=None, claimed_at=None,
                version=Ticket.version + 1)
    ).rowcount


def finish_idle_runs(s: Session) -> int:
    """Mark running runs with nothing left pending as finished."""
    busy = select(Ticket.run_id).where(Ticket.status == PENDING, Ticket.run_id.is_not(None)).distinct()
    res = s.execute(update(Run).where(Run.status == "running", Run.id.not_in(busy))
                    .values(status="finished", finished_at=datetime.now(UTC)))
    return res.rowcount


def stop_running_runs(s: Session, message: str) -> None:
    s.execute(update(Run).where(Run.status == "running")
              .values(status="stopped", message=message, finished_at=datetime.now(UTC)))


def release_claims(s: Session, worker: str) -> None:
    s.execute(update(Ticket).where(Ticket.claimed_by == worker, Ticket.status == PENDING)
              .values(claimed_by=None, claimed_at=None))


def release_dead_claims(s: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Free tickets claimed by workers on this host whose process is gone (killed, crashed)."""
    freed = 0
    claims = s.execute(select(Ticket.claimed_by).where(Ticket.status == PENDING, Ticket.claimed_by.like(f"{host}:%"))
                       .distinct()).scalars().all()
    for worker in claims:
        pid = worker.rsplit(":", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            freed += s.execute(update(Ticket).where(Ticket.claimed_by == worker, Ticket.status == PENDING)
                               .values(claimed_by=None, claimed_at=None)).rowcount
    return freed


def record_call(s: Session, ticket_id: int, run_id: int | None, c: CallResult) -> int:
    u = c.usage
    row = ModelCall(
        ticket_id=ticket_id, run_id=run_id, tier=c.tier, model=c.model, model_returned=c.model_returned,
        outcome=c.outcome, category=c.category, confidence=c.confidence, reason=c.reason, problem=c.problem,
        stop_reason=c.stop_reason, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
        cache_write_5m_tokens=u.cache_write_5m_tokens, cache_write_1h_tokens=u.cache_write_1h_tokens,
        cache_read_tokens=u.cache_read_tokens, service_tier=u.service_tier, inference_geo=u.inference_geo,
        cost_pico=to_pico(c.cost_usd), latency_ms=c.latency_ms, request_id=c.request_id, error=c.error,
        error_kind=c.error_kind, attempts=c.attempts, created_at=c.created_at,
    )
    s.add(row)
    s.flush()
    add_to_spend_daily(s, row)
    if c.vector is not None:
        from db import vectors

        vectors.store(s, {ticket_id: c.vector}, c.model)
    return row.id


def add_to_spend_daily(s: Session, row: ModelCall) -> None:
    """Upsert the call's usage into the daily rollup (same transaction as the call)."""
    day = row.created_at.astimezone(UTC).strftime("%Y-%m-%d") if row.created_at.tzinfo else \
        row.created_at.strftime("%Y-%m-%d")
    values = {"day": day, "model": row.model, "tier": row.tier, "calls": 1, "input_tokens": row.input_tokens,
              "output_tokens": row.output_tokens,
              "cache_tokens": row.cache_read_tokens + row.cache_write_5m_tokens + row.cache_write_1h_tokens,
              "cost_pico": row.cost_pico}
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(SpendDaily).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "model", "tier"],
        set_={k: getattr(SpendDaily, k) + getattr(stmt.excluded, k)
              for k in ("calls", "input_tokens", "output_tokens", "cache_tokens", "cost_pico")},
    )
    s.execute(stmt)


def call_from_row(r: ModelCall) -> CallResult:
    return CallResult(
        tier=r.tier, model=r.model, outcome=r.outcome, category=r.category, confidence=r.confidence,
        reason=r.reason or "", problem=r.problem, model_returned=r.model_returned,
        usage=Usage(r.input_tokens, r.output_tokens, r.cache_write_5m_tokens, r.cache_write_1h_tokens,
                    r.cache_read_tokens, r.service_tier, r.inference_geo),
        cost_usd=from_pico(r.cost_pico), latency_ms=r.latency_ms, request_id=r.request_id,
        stop_reason=r.stop_reason, error=r.error, error_kind=r.error_kind, attempts=r.attempts,
        created_at=r.created_at,
    )


def current_calls(s: Session, ticket_id: int) -> list[CallResult]:
    """The calls that count toward the ticket's machine label (oldest first)."""
    t = s.get(Ticket, ticket_id)
    rows = s.scalars(select(ModelCall).where(ModelCall.ticket_id == ticket_id,
                                             ModelCall.id >= t.first_call_id).order_by(ModelCall.id))
    return [call_from_row(r) for r in rows]


def apply_outcome(s: Session, ticket_id: int, o: Outcome) -> None:
    t = s.get(Ticket, ticket_id, with_for_update=True)  # row lock on PostgreSQL; SQLite has BEGIN IMMEDIATE
    t.status, t.status_reason = o.status, o.reason
    t.escalated = o.escalated
    tier1 = [c for c in o.calls if c.tier == 1 and c.answered]
    tier2 = [c for c in o.calls if c.tier == 2 and c.answered]
    t.tier1_category = tier1[-1].category if tier1 else t.tier1_category
    t.tier2_category = tier2[-1].category if tier2 else t.tier2_category
    t.disagree = bool(t.tier1_category and t.tier2_category and t.tier1_category != t.tier2_category)
    if not t.corrected and o.tier is not None:
        t.category, t.confidence, t.label_source = o.category, o.confidence, f"tier{o.tier}"
    t.claimed_by, t.claimed_at = None, None
    t.escalation_requested = False
    t.updated_at = datetime.now(UTC)
    t.version += 1


def run_cost_by_ticket(s: Session, run_id: int) -> dict[int, int]:
    rows = s.execute(select(ModelCall.ticket_id, func.sum(ModelCall.cost_pico))
                     .where(ModelCall.run_id == run_id).group_by(ModelCall.ticket_id))
    return {tid: int(p or 0) for tid, p in rows}


def tickets_by_id(s: Session, ids: Sequence[int]) -> dict[int, Ticket]:
    out: dict[int, Ticket] = {}
    for i in range(0, len(ids), 500):
        out.update({t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[i:i + 500])))})
    return out


def last_answered_calls(s: Session, ticket_ids: Sequence[int]) -> dict[int, ModelCall]:
    """Each ticket's latest answered call, in one query per 500 tickets."""
    out: dict[int, ModelCall] = {}
    for i in range(0, len(ticket_ids), 500):
        rows = s.scalars(select(ModelCall).where(ModelCall.ticket_id.in_(ticket_ids[i:i + 500]),
                                                 ModelCall.outcome != "error").order_by(ModelCall.id))
        out.update({c.ticket_id: c for c in rows})  # later calls overwrite earlier ones
    return out


def ticket_ids_below(s: Session, confidence: float, include_unlabelled: bool = True) -> list[int]:
    cond = Ticket.confidence < confidence
    if include_unlabelled:
        cond = or_(cond, and_(Ticket.confidence.is_(None), Ticket.status != PENDING))
    return list(s.scalars(select(Ticket.id).where(cond, Ticket.corrected.is_(False), Ticket.status != PENDING)
                          .order_by(Ticket.id)))


def ticket_ids_in_state(s: Session, status: str) -> list[int]:
    return list(s.scalars(select(Ticket.id).where(Ticket.status == status).order_by(Ticket.id)))


def ticket_ids_of_run(s: Session, run_id: int, limit: int) -> list[int]:
    return list(s.scalars(select(Ticket.id).where(Ticket.run_id == run_id).order_by(Ticket.id).limit(limit)))


def backdate_ticket(s: Session, ticket_id: int, when: datetime) -> None:
    """Demo data only: make a ticket look as old as its simulated calls."""
    s.execute(update(Ticket).where(Ticket.id == ticket_id).values(created_at=when))


def finish_run(s: Session, run_id: int, status: str, message: str | None = None) -> None:
    run = s.get(Run, run_id)
    run.status, run.message, run.finished_at = status, message, datetime.now(UTC)


def recent_runs(s: Session, limit: int = 20) -> list[dict]:
    """The latest runs with who started them, from where, when, and their tickets' states now."""
    runs = s.scalars(select(Run).order_by(Run.id.desc()).limit(limit)).all()
    counts: dict[int, dict[str, int]] = {}
    if runs:
        rows = s.execute(select(Ticket.run_id, Ticket.status, func.count())
                         .where(Ticket.run_id.in_([r.id for r in runs])).group_by(Ticket.run_id, Ticket.status))
        for run_id, status, n in rows:
            counts.setdefault(run_id, {})[status] = n
    return [{"run": r.id, "started_by": r.started_by, "source": r.source, "mode": r.mode, "status": r.status,
             "tickets": r.n_tickets, "new": r.n_new, **counts.get(r.id, {}), "started_at": r.started_at,
             "finished_at": r.finished_at, "message": r.message} for r in runs]


def run_state_counts(s: Session, run_id: int) -> dict[str, int]:
    rows = s.execute(select(Ticket.status, func.count()).where(Ticket.run_id == run_id).group_by(Ticket.status))
    return {k: v for k, v in rows}


def tickets_fingerprint(s: Session, ticket_ids: Sequence[int]) -> tuple[int, int, int]:
    """(sum of versions, how many pending, latest call id) of these tickets, in two indexed look-ups.

    It changes whenever what a page shows of them can change: an outcome, an escalation request or a correction
    bumps `version`, a requeue makes a ticket pending, every model call gets a higher id. A page polling a run
    compares it with the one it drew from and redraws only when it differs."""
    if not ticket_ids:
        return (0, 0, 0)
    ids = list(ticket_ids)
    is_pending = case((Ticket.status == PENDING, 1), else_=0)
    versions, pending = s.execute(select(func.coalesce(func.sum(Ticket.version), 0),
                                         func.coalesce(func.sum(is_pending), 0)).where(Ticket.id.in_(ids))).one()
    last_call = s.scalar(select(func.max(ModelCall.id)).where(ModelCall.ticket_id.in_(ids))) or 0
    return (int(versions), int(pending), int(last_call))
