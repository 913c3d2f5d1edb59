"""Runs: import tickets as a run, queue work, and report a run's progress and result rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from db import batches as db_batches
from db import calls, queue, reports, review
from db import runs as db_runs
from db.engine import Database
from triage import audit, privacy
from triage.access import Action, Actor, require
from triage.domain import PENDING, PRODUCTION, Outcome, from_pico, money_text
from triage.errors import InputError
from triage.routing import grouping

if TYPE_CHECKING:
    from triage.work.pipeline import RunReport


class AlreadyDecided(InputError):
    """Sonnet already decided these tickets: asking it again is billed again, so it takes `again=True` (the CLI's
    `--again`, a confirmation on the pages). `prices`: ticket -> what its latest Sonnet answer cost, about what
    asking again costs."""

    def __init__(self, prices: dict[int, Decimal]) -> None:
        self.prices = prices
        ids = ", ".join(map(str, list(prices)[:10])) + (" ..." if len(prices) > 10 else "")
        one = len(prices) == 1
        super().__init__(f"Sonnet already decided ticket{'' if one else 's'} {ids}; asking again bills about "
                         f"${money_text(self.total)} more{'' if one else ' in all'}. Nothing was queued: confirm "
                         "to ask again (--again on the command line)")

    @property
    def total(self) -> Decimal:
        return sum(self.prices.values(), Decimal(0))


def sonnet_decided(db: Database, ticket_ids: Sequence[int]) -> dict[int, Decimal]:
    """Those of these tickets Sonnet already decided, each with what its latest Sonnet answer cost (what asking
    again costs, about): what a page names before it asks again."""
    with db.read() as s:
        return {t: from_pico(c) for t, c in review.sonnet_decided(s, list(dict.fromkeys(ticket_ids))).items()}


def request_escalation(db: Database, ticket_ids: Sequence[int], *, actor: Actor, again: bool = False) -> int:
    """Queue these tickets for tier 2 (the worker asks Sonnet); recorded with who asked. A ticket Sonnet already
    decided is asked again only with `again=True`; without it, AlreadyDecided is raised (naming the price) and
    nothing is queued, so no page can bill twice by accident."""
    require(actor, Action.ESCALATE)
    ids = list(dict.fromkeys(ticket_ids))
    with db.transaction() as s:
        decided = {} if again else review.sonnet_decided(s, ids)
        if decided:
            raise AlreadyDecided({t: from_pico(c) for t, c in decided.items()})
        n = queue.request_escalation(s, ids)
        extra = {"again": True} if again else {}
        audit.record(s, actor, audit.ESCALATION, tickets=len(ids), ids=ids[:50], **extra)
        return n


@dataclass(frozen=True)
class Requeued:
    run_id: int
    mode: str
    tickets: int


def requeue_failed(db: Database, *, actor: Actor, threshold: float = 0.7) -> list[Requeued]:
    """Queue every failed ticket again: one new run per mode and threshold of the runs that queued them, so a
    retry routes each ticket the way its run asked. Empty when nothing had failed."""
    require(actor, Action.RETRY)
    out = []
    with db.transaction() as s:
        for (mode, thr), ids in db_runs.failed_by_routing(s, threshold).items():
            run_id = db_runs.create_run(s, started_by=actor.identity, source="retry", mode=mode, threshold=thr)
            out.append(Requeued(run_id, mode, queue.requeue_tickets(s, ids, run_id)))
            run = db_runs.run_info(s, run_id)
            if run is not None:
                run.n_tickets = len(ids)
    return out


def decided_by_tier2(db: Database, ticket_ids: Sequence[int]) -> set[int]:
    with db.read() as s:
        return calls.decided_by_tier2(s, list(ticket_ids))


def pilots_among(db: Database, ticket_ids: Sequence[int]) -> set[int]:
    with db.read() as s:
        return queue.pilots_among(s, list(ticket_ids))


def has_pending(db: Database, *, local: bool) -> bool:
    with db.read() as s:
        return queue.has_pending(s, local=local)


def held_by_others(db: Database, ticket_ids: Sequence[int], me: str) -> dict[str, int]:
    """Pending tickets among these that another live worker holds: worker -> how many."""
    with db.read() as s:
        return queue.held_by_others(s, list(dict.fromkeys(ticket_ids)), me)


def state_counts(db: Database, run_ids: Sequence[int]) -> dict[str, int]:
    """Tickets by state over these runs."""
    total: dict[str, int] = {}
    with db.read() as s:
        for run_id in run_ids:
            for k, v in db_runs.run_state_counts(s, run_id).items():
                total[k] = total.get(k, 0) + v
    return total


def start_run(db: Database, items: Sequence[tuple[str | None, str]], *, source: str, actor: Actor,
              mode: str = "auto", threshold: float = 0.7, reclassify: bool = False,
              per_call: int | None = None, requesters: Sequence[str | None] | None = None,
              batch_queued: bool = False, purpose: str = PRODUCTION) -> queue.Imported:
    """Import tickets as a run started by `actor` (the run records who); the worker or the caller classifies.
    `per_call`: tickets per tier-1 request for this run, whoever works it (None: the worker's setting).
    `requesters`: each ticket's requester (parallel to `items`), stored as a keyed hash (triage/privacy.py); the
    text is stored masked when a lead chose `mask_store`.
    `batch_queued`: the run's tickets are held for a Message Batch in the same transaction (no worker sends them
    live meanwhile), which the background worker submits.
    `purpose`: what the run and its new tickets are for (triage.domain.PURPOSES: a pilot's are kept apart)."""
    require(actor, Action.CLASSIFY)
    grouping.check_size(per_call)
    prepared = privacy.prepare_import(db, items, requesters)
    with db.transaction() as s:
        run_id = db_runs.create_run(s, started_by=actor.identity, source=source, mode=mode, threshold=threshold,
                                  per_call=per_call, purpose=purpose)
        imported = queue.import_tickets(s, prepared.items, source=source, run_id=run_id, reclassify=reclassify,
                                        languages=prepared.languages, privacy=prepared.privacy, purpose=purpose)
        if batch_queued:
            db_batches.hold(s, run_id, "queued")
        return imported


def finish_run(db: Database, report: RunReport) -> None:
    """A run ends stopped (with why) or finished."""
    if report.run_id is None:
        return
    with db.transaction() as s:
        db_runs.finish_run(s, report.run_id, "stopped" if report.stopped else "finished", report.stopped)


def stop_run(db: Database, run_id: int, reason: str) -> None:
    """A run that could not start (a cap is reached): stopped, and its pending tickets say why they wait."""
    with db.transaction() as s:
        db_runs.finish_run(s, run_id, "stopped", reason)
        queue.explain_pending(s, run_id, reason)


class ResultRow(TypedDict):
    """One output row per input ticket of a run (a JSON line of `triage classify`, a card on the Classify page)."""

    id: str  # the input's id, else ours
    ticket_id: int
    category: str | None
    confidence: float | None
    priority: str | None
    language: str | None
    team: str | None
    tier: str | None  # who set the label
    model: str | None
    escalated: bool
    cost_usd: str  # what this run spent on it, exact
    status: str
    reason: str | None
    text: NotRequired[str]  # these four only `with_text`
    masked_count: NotRequired[int | None]
    latency_ms: NotRequired[int | None]
    model_reason: NotRequired[str | None]


def run_rows(db: Database, run_id: int, ticket_ids: Sequence[int], *, actor: Actor,
             with_text: bool = False) -> list[ResultRow]:
    """One output row per input ticket: the current label and what this run spent on it (and its text)."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        costs = db_runs.run_cost_by_ticket(s, run_id)
        unique = list(dict.fromkeys(ticket_ids))
        tickets = queue.tickets_by_id(s, unique)
        latest = calls.last_answered_calls(s, unique)
        rows: list[ResultRow] = []
        for tid in ticket_ids:
            t = tickets[tid]
            last = latest.get(tid)
            rows.append({
                "id": t.external_id or str(t.id), "ticket_id": t.id, "category": t.category,
                "confidence": t.confidence, "priority": t.priority, "language": t.language, "team": t.team,
                "tier": t.label_source,
                "model": (last.model_returned or last.model) if last else None,
                "escalated": t.escalated, "cost_usd": money_text(from_pico(costs.get(tid, 0))),
                "status": t.status, "reason": t.status_reason or (last.reason if last else None),
            })
            if with_text:
                row = rows[-1]
                row["text"], row["masked_count"] = t.text, t.masked_count
                row["latency_ms"], row["model_reason"] = (last.latency_ms, last.reason) if last else (None, None)
    return rows


def take_back(db: Database, ticket_ids: Sequence[int], run_id: int) -> int:
    """Put these tickets under this run when they wait with nobody holding them (another process held them and
    gave them back); returns how many."""
    with db.transaction() as s:
        free = [t.id for t in queue.tickets_by_id(s, list(dict.fromkeys(ticket_ids))).values()
                if t.status == PENDING and t.claimed_by is None]
        return queue.requeue_tickets(s, free, run_id) if free else 0


def run_cost(db: Database, run_id: int) -> Decimal:
    """What a run's calls cost (exact, from the recorded calls)."""
    with db.read() as s:
        return from_pico(sum(db_runs.run_cost_by_ticket(s, run_id).values()))


def machine_outcomes(db: Database, ticket_ids: Sequence[int], threshold: float) -> dict[int, Outcome]:
    """What the models decided for each ticket from the calls that count (an operator's correction aside)."""
    from triage.routing.router import decide

    with db.read() as s:
        return {tid: decide(calls.current_calls(s, tid), threshold) for tid in dict.fromkeys(ticket_ids)}


@dataclass
class RunProgress:
    run_id: int
    status: str
    message: str | None
    total: int
    states: dict[str, int]

    @property
    def done(self) -> int:
        return self.total - self.states.get(PENDING, 0)


def run_progress(db: Database, run_id: int) -> RunProgress | None:
    with db.read() as s:
        run = db_runs.run_info(s, run_id)
        if run is None:
            return None
        states = db_runs.run_state_counts(s, run_id)
        return RunProgress(run_id, run.status, run.message, run.n_tickets, states)


@dataclass(frozen=True)
class RunVersion:
    """What a page watching a run reads on every poll, from a few small indexed queries: the run's progress and a
    fingerprint of the tickets on screen (see db.queue.tickets_fingerprint)."""

    progress: RunProgress
    shown: tuple[int, int, int]

    @property
    def waiting(self) -> bool:
        """Something can still change without anyone acting: a ticket of the run (or one on screen, e.g. escalated
        from there) is pending or claimed, and the run was not stopped (a rejected key stops it for good)."""
        return self.progress.status != "stopped" and (self.progress.states.get(PENDING, 0) > 0 or self.shown[1] > 0)


def run_version(db: Database, run_id: int, shown_ids: Sequence[int]) -> RunVersion | None:
    """The run's progress and the fingerprint of `shown_ids`, in one read; None when there is no such run."""
    with db.read() as s:
        run = db_runs.run_info(s, run_id)
        if run is None:
            return None
        progress = RunProgress(run_id, run.status, run.message, run.n_tickets, db_runs.run_state_counts(s, run_id))
        return RunVersion(progress, queue.tickets_fingerprint(s, shown_ids))


def run_ticket_ids(db: Database, run_id: int, limit: int = 50) -> list[int]:
    with db.read() as s:
        return db_runs.ticket_ids_of_run(s, run_id, limit)


def has_tickets(db: Database) -> bool:
    with db.read() as s:
        return reports.has_tickets(s)


def count_known(db: Database, items: Sequence[tuple[str | None, str]]) -> int:
    stored = privacy.as_stored(db, items)
    with db.read() as s:
        return queue.count_known(s, stored)


def recent_runs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    with db.read() as s:
        return db_runs.recent_runs(s, limit)


def create_run(db: Database, *, started_by: str, source: str, mode: str, threshold: float) -> int:
    with db.transaction() as s:
        return db_runs.create_run(s, started_by=started_by, source=source, mode=mode, threshold=threshold)


def ticket_ids_below(db: Database, confidence: float) -> list[int]:
    """Uncorrected tickets whose label confidence is under `confidence` (or that have none)."""
    with db.read() as s:
        return queue.ticket_ids_below(s, confidence)
