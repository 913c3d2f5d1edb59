"""The durable work queue: import tickets, claim them, release them (runs: db.runs; calls: db.calls).

Callers hold the transaction (short, and never around an API call); nothing here calls an API."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db import paths
from db.engine import rows_affected
from db.models import ModelCall, Run, Ticket, normal_text, normalised_text_hash
from triage.domain import FAILED, PENDING, PILOT, PRODUCTION, worker_pid

T = TypeVar("T")


def _lease_from_env(default: timedelta = timedelta(minutes=10)) -> timedelta:
    raw = os.environ.get("TRIAGE_CLAIM_LEASE_S")
    try:
        seconds = float(raw) if raw else 0.0
    except ValueError:
        seconds = 0.0
    return timedelta(seconds=seconds) if seconds > 0 else default


LEASE = _lease_from_env()  # a claim whose holder stopped renewing it (`renew_claims`) this long ago is free again


def content_hash(text: str, external_id: str | None = None) -> str:
    return _hash_of_normal(normal_text(text), external_id)


def _hash_of_normal(normal: str, external_id: str | None) -> str:
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
    mode: str | None = None  # the run's routing (auto, haiku, sonnet, local, ...): it travels with the ticket
    threshold: float | None = None  # the run's escalation threshold
    per_call: int | None = None  # the run's tickets per tier-1 request (None: the worker's setting)


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


IN_CHUNK = 1000  # ids or hashes per IN (...) list, rows per INSERT page: well under SQLite's variable limit


def _chunks(seq: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def import_tickets(
    s: Session, items: Sequence[tuple[str | None, str]], *, source: str, run_id: int | None,
    requeue: Iterable[str] = (PENDING, FAILED), reclassify: bool = False,
    languages: Mapping[str, str | None] | None = None,
    privacy: Sequence[tuple[str | None, int | None]] | None = None, purpose: str = PRODUCTION,
) -> Imported:
    """Insert new tickets as pending. Known tickets (same text and id) are not duplicated; those in a
    `requeue` state (or all of them with `reclassify`) are queued again under this run, unless a worker or a
    batch holds them. Bulk statements: a 100,000-row file is a few hundred statements, not 100,000 flushes.
    `privacy`: per item, its requester's keyed hash and how many values masking replaced (either None); a known
    ticket gets them where it has none yet. `purpose`: what new tickets are for (triage.domain.PURPOSES)."""
    hashes: list[str] = []
    first: dict[str, tuple[str | None, str]] = {}
    text_hash_of: dict[str, str] = {}
    extra: dict[str, tuple[str | None, int | None]] = {}
    for n, (ext, text) in enumerate(items):  # each text normalised once: both of its hashes come from it
        normal = normal_text(text)
        text_hash = normalised_text_hash(normal)
        h = _hash_of_normal(normal, ext)
        hashes.append(h)
        if h not in first:
            first[h], text_hash_of[h] = (ext, text), text_hash
        if privacy is not None and (h not in extra or extra[h][0] is None):
            extra[h] = privacy[n]
    now = datetime.now(UTC)
    known = _known_tickets(s, list(first))
    new = [h for h in first if h not in known]
    ids = {h: row[0] for h, row in known.items()}
    inserted = _insert_new(s, [(h, *first[h], text_hash_of[h], *extra.get(h, (None, None))) for h in new],
                           source=source, run_id=run_id, now=now, languages=languages, purpose=purpose)
    ids.update(inserted)
    raced = [h for h in new if h not in inserted]  # inserted meanwhile by another import (PostgreSQL)
    if raced:
        late = _known_tickets(s, raced)
        known.update(late)
        ids.update({h: row[0] for h, row in late.items()})
    requeue = set(requeue)
    fresh_from = (s.scalar(select(func.max(ModelCall.id))) or 0) + 1 if reclassify else 0  # calls after this count
    again = [row[0] for row in known.values()
             if not _held(row[2], row[3], now) and (reclassify or row[1] in requeue)]
    values: dict[str, Any] = {"status": PENDING, "run_id": run_id, "claimed_by": None, "claimed_at": None}
    if reclassify:
        values["first_call_id"] = fresh_from
    free = or_(Ticket.claimed_by.is_(None), Ticket.claimed_at.is_(None), Ticket.claimed_at <= now - LEASE)
    for chunk in _chunks(again):  # a ticket in flight (claimed since we looked) is left alone
        s.execute(update(Ticket).where(Ticket.id.in_(chunk), free).values(**values)
                  .execution_options(synchronize_session=False))
    _fill_privacy(s, {ids[h]: extra[h] for h in first if h not in inserted and h in extra and h in ids})
    new_ids = [inserted[h] for h in new if h in inserted]
    known_ids = [ids[h] for h in first if h not in inserted]
    paths.sync(s, [*new_ids, *again])  # the routing story's per-day path counts (db/paths.py)
    if run_id is not None:
        s.execute(update(Run).where(Run.id == run_id).values(n_tickets=len(first), n_new=len(new_ids))
                  .execution_options(synchronize_session=False))
    return Imported([ids[h] for h in hashes], new_ids, known_ids, run_id)


def _held(claimed_by: str | None, claimed_at: datetime | None, now: datetime) -> bool:
    return claimed_by is not None and claimed_at is not None and _aware(claimed_at) > now - LEASE


_Known = tuple[int, str, str | None, datetime | None]  # id, status, claimed_by, claimed_at


def _known_tickets(s: Session, hashes: Sequence[str]) -> dict[str, _Known]:
    """hash -> (id, status, claimed_by, claimed_at) of the tickets already stored: four columns, not the text."""
    known: dict[str, _Known] = {}
    for chunk in _chunks(hashes):
        rows = s.execute(select(Ticket.content_hash, Ticket.id, Ticket.status, Ticket.claimed_by, Ticket.claimed_at)
                         .where(Ticket.content_hash.in_(chunk)))
        known.update((r[0], (r[1], r[2], r[3], r[4])) for r in rows)
    return known


def _fill_privacy(s: Session, known: dict[int, tuple[str | None, int | None]]) -> None:
    """Known tickets imported again with a requester or a masked count: each set where the ticket has none (an
    erased ticket gets no requester: its requester went with its text). One executemany per column."""
    table = cast(Table, Ticket.__table__)
    for column, at in (("requester_hash", 0), ("masked_count", 1)):
        params = [{"b_id": tid, "b_value": v[at]} for tid, v in known.items() if v[at] is not None]
        if not params:
            continue
        cond = [table.c.id == bindparam("b_id"), table.c[column].is_(None)]
        if column == "requester_hash":
            cond.append(table.c.text != "")
        for chunk in _chunks(params, 5000):
            s.execute(table.update().where(*cond).values({column: bindparam("b_value")}), list(chunk))


def _insert_new(s: Session, rows: Sequence[tuple[str, str | None, str, str, str | None, int | None]], *,
                source: str, run_id: int | None, now: datetime,
                languages: Mapping[str, str | None] | None = None,
                purpose: str = PRODUCTION) -> dict[str, int]:
    """Insert (hash, external id, text, text hash, requester hash, masked count) rows in pages; returns hash -> id
    of those inserted. A hash
    another import inserted meanwhile is skipped (ON CONFLICT DO NOTHING) rather than failing the whole import."""
    table = cast(Table, Ticket.__table__)
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).on_conflict_do_nothing(index_elements=["content_hash"]) \
        .returning(table.c.content_hash, table.c.id)
    fixed = {"source": source, "run_id": run_id, "created_at": now, "updated_at": now, "status": PENDING,
             "escalated": False, "disagree": False, "corrected": False, "version": 1, "escalation_requested": False,
             "first_call_id": 0, "purpose": purpose}
    out: dict[str, int] = {}
    for chunk in _chunks(rows, 5000):
        params = [{"content_hash": h, "external_id": ext, "text": text, "text_hash": th, "requester_hash": rq,
                   "masked_count": mc, **fixed,
                   "language": languages.get(text) if languages else None}  # detected before the transaction
                  for h, ext, text, th, rq, mc in chunk]
        out.update((h, i) for h, i in s.execute(stmt, params))
    return out


def requeue_tickets(s: Session, ticket_ids: Sequence[int], run_id: int | None) -> int:
    res = s.execute(
        update(Ticket).where(Ticket.id.in_(ticket_ids), Ticket.text != "")  # erased (db/privacy.py): nothing to send
        .values(status=PENDING, run_id=run_id, claimed_by=None, claimed_at=None)
    )
    paths.sync(s, ticket_ids)
    return rows_affected(res)


def _local_runs() -> Select[int]:
    return select(Run.id).where(Run.mode == "local")


def claim_pending(s: Session, worker: str, limit: int, run_id: int | None = None, *,
                  local: bool | None = None) -> list[Claimed]:
    """Claim up to `limit` pending tickets for `worker` (FOR UPDATE SKIP LOCKED on PostgreSQL). `local`: only
    tickets of runs that asked for the local tier (True), none of them (False), or any (None). A pilot's tickets
    are claimed only by the pilot, which names its run (triage/work/pilot.py: under its own cap)."""
    now = datetime.now(UTC)
    cond = and_(Ticket.status == PENDING,
                or_(Ticket.claimed_at.is_(None), Ticket.claimed_at < now - LEASE))
    cond = and_(cond, Ticket.run_id == run_id if run_id is not None else Ticket.purpose != PILOT)
    if local is True:
        cond = and_(cond, Ticket.run_id.in_(_local_runs()))
    elif local is False:
        cond = and_(cond, or_(Ticket.run_id.is_(None), Ticket.run_id.not_in(_local_runs())))
    rows = s.execute(
        select(Ticket.id, Ticket.text, Ticket.escalation_requested, Ticket.run_id).where(cond).order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    s.execute(update(Ticket).where(Ticket.id.in_([r.id for r in rows])).values(claimed_by=worker, claimed_at=now))
    run_ids = {r.run_id for r in rows if r.run_id is not None}
    routing = {rid: (mode, threshold, per_call) for rid, mode, threshold, per_call in
               s.execute(select(Run.id, Run.mode, Run.threshold, Run.per_call).where(Run.id.in_(run_ids)))
               } if run_ids else {}
    return [Claimed(r.id, r.text, bool(r.escalation_requested), r.run_id,
                    *routing.get(r.run_id, (None, None, None))) for r in rows]


def pending_texts(s: Session, run_id: int) -> list[str]:
    """The texts of a run's unclaimed pending tickets (what a batch submission would send)."""
    free = or_(Ticket.claimed_at.is_(None), Ticket.claimed_at < datetime.now(UTC) - LEASE)
    return list(s.scalars(select(Ticket.text).where(Ticket.run_id == run_id, Ticket.status == PENDING, free)
                          .order_by(Ticket.id)))


def leave_pending(s: Session, ticket_id: int, reason: str) -> None:
    """Release a claimed ticket without processing it (budget reached, run stopping), saying why."""
    s.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status == PENDING)
              .values(claimed_by=None, claimed_at=None, status_reason=reason))


def explain_pending(s: Session, run_id: int | None, reason: str) -> int:
    """Say why a run's (or, with None, the queue's) unclaimed pending tickets wait: a cap is reached, the run
    was stopped."""
    cond = and_(Ticket.status == PENDING, Ticket.claimed_by.is_(None),
                or_(Ticket.status_reason.is_(None), Ticket.status_reason != reason))
    if run_id is not None:
        cond = and_(cond, Ticket.run_id == run_id)
    return rows_affected(s.execute(update(Ticket).where(cond).values(status_reason=reason)))


def request_escalation(s: Session, ticket_ids: Sequence[int]) -> int:
    """Queue tickets for tier 2; a worker picks them up like any pending ticket."""
    free = or_(Ticket.claimed_by.is_(None), Ticket.claimed_at < datetime.now(UTC) - LEASE)  # not in flight
    n = rows_affected(s.execute(
        update(Ticket).where(Ticket.id.in_(ticket_ids), free)
        .values(escalation_requested=True, status=PENDING, claimed_by=None, claimed_at=None,
                version=Ticket.version + 1)
    ))
    paths.sync(s, ticket_ids)
    return n


def renew_claims(s: Session, worker: str) -> int:
    """The heartbeat of a live worker: the pending tickets it holds are held afresh for another `LEASE`. Only a
    holder that stopped renewing (dead, or stuck for longer than the lease) loses its claims to another worker."""
    return rows_affected(s.execute(update(Ticket).where(Ticket.claimed_by == worker, Ticket.status == PENDING)
                                   .values(claimed_at=datetime.now(UTC))))


def release_claims(s: Session, worker: str, reason: str | None = None) -> int:
    """Free what `worker` still holds (pending), saying why when there is a reason."""
    values: dict[str, object] = {"claimed_by": None, "claimed_at": None}
    if reason:
        values["status_reason"] = reason
    return rows_affected(s.execute(update(Ticket).where(Ticket.claimed_by == worker, Ticket.status == PENDING)
                                   .values(**values)))


def has_pending(s: Session, *, local: bool) -> bool:
    """Whether tickets of local-tier runs (local=True) or of the others wait, unclaimed."""
    runs = _local_runs()
    cond = Ticket.run_id.in_(runs) if local else or_(Ticket.run_id.is_(None), Ticket.run_id.not_in(runs))
    return free_pending(s, cond, Ticket.purpose != PILOT)


def free_pending_probes(*where: ColumnElement[bool]) -> tuple[Select[int], Select[int]]:
    """A pending ticket nobody claimed; one whose claim's lease ran out (each also meeting `where`): each one
    probe of ix_tickets_status_claimed, however many pending tickets other workers hold."""
    return (select(Ticket.id).where(Ticket.status == PENDING, Ticket.claimed_at.is_(None), *where).limit(1),
            select(Ticket.id).where(Ticket.status == PENDING, Ticket.claimed_at < datetime.now(UTC) - LEASE,
                                    *where).limit(1))


def free_pending(s: Session, *where: ColumnElement[bool]) -> bool:
    """Whether a pending ticket (meeting `where`) is free to take: unclaimed, or its claim's lease ran out."""
    return any(s.scalar(probe) is not None for probe in free_pending_probes(*where))


def work_waiting(s: Session) -> bool:
    """Whether a worker's pass has tickets to take (pending and unclaimed, or their claim's lease ran out: new
    work, a requested escalation, a retry) or a running run to finish (nothing of it left pending). Three
    LIMIT 1 reads at most: an idle worker asks this instead of making a pass."""
    if free_pending(s, Ticket.purpose != PILOT):  # a pilot works its own tickets
        return True
    left = select(Ticket.id).where(Ticket.run_id == Run.id, Ticket.status == PENDING).exists()
    return s.scalar(select(Run.id).where(Run.status == "running", ~left).limit(1)) is not None


def held_by_others(s: Session, ticket_ids: Sequence[int], me: str) -> dict[str, int]:
    """Pending tickets among these that another worker holds (within its lease): worker -> how many."""
    live = datetime.now(UTC) - LEASE
    out: dict[str, int] = {}
    for i in range(0, len(ticket_ids), 500):
        rows = s.execute(select(Ticket.claimed_by, func.count()).where(
            Ticket.id.in_(ticket_ids[i:i + 500]), Ticket.status == PENDING, Ticket.claimed_by.is_not(None),
            Ticket.claimed_by != me, Ticket.claimed_at >= live).group_by(Ticket.claimed_by))
        for worker, n in rows:
            if worker is not None:  # excluded by the query; the column is nullable
                out[worker] = out.get(worker, 0) + n
    return out


def dead_claimers(s: Session, host: str, alive: Callable[[int], bool]) -> list[str]:
    """Workers on this host whose process is gone (killed, crashed) but that still hold pending tickets."""
    claims = s.execute(select(Ticket.claimed_by).where(Ticket.status == PENDING, Ticket.claimed_by.like(f"{host}:%"))
                       .distinct()).scalars().all()
    return [w for w in claims if w is not None and (pid := worker_pid(w, host)) is not None and not alive(pid)]


def release_dead_claims(s: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Free tickets claimed by workers on this host whose process is gone (killed, crashed)."""
    return sum(rows_affected(s.execute(update(Ticket).where(Ticket.claimed_by == worker, Ticket.status == PENDING)
                                       .values(claimed_by=None, claimed_at=None)))
               for worker in dead_claimers(s, host, alive))


def tickets_by_id(s: Session, ids: Sequence[int]) -> dict[int, Ticket]:
    out: dict[int, Ticket] = {}
    for i in range(0, len(ids), 500):
        out.update({t.id: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[i:i + 500])))})
    return out


def pilots_among(s: Session, ticket_ids: Sequence[int]) -> set[int]:
    """Those of these tickets that belong to a pilot (kept apart from production: never escalated by hand)."""
    out: set[int] = set()
    for i in range(0, len(ticket_ids), 5000):
        out.update(s.scalars(select(Ticket.id).where(Ticket.id.in_(ticket_ids[i:i + 5000]), Ticket.purpose == PILOT)))
    return out


def ticket_ids_below(s: Session, confidence: float, include_unlabelled: bool = True) -> list[int]:
    cond = Ticket.confidence < confidence
    if include_unlabelled:
        cond = or_(cond, and_(Ticket.confidence.is_(None), Ticket.status != PENDING))
    return list(s.scalars(select(Ticket.id).where(cond, Ticket.corrected.is_(False), Ticket.status != PENDING,
                                                  Ticket.purpose != PILOT).order_by(Ticket.id)))


def backdate_ticket(s: Session, ticket_id: int, when: datetime) -> None:
    """Demo data only: make a ticket look as old as its simulated calls."""
    s.execute(update(Ticket).where(Ticket.id == ticket_id).values(created_at=when))
    paths.sync(s, [ticket_id])  # it arrived on another day


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
