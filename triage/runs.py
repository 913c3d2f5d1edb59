"""Run bookkeeping for entry points: import tickets as a run, report its progress and rows, queue work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from db import queue, reports
from db.engine import Database
from triage.pricing import from_pico
from triage.router import FAILED


@dataclass
class RunReport:
    run_id: int | None
    processed: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # why the run stopped early, None when it finished
    stop_kind: str | None = None  # "key" (rejected API key) or "budget" (monthly budget reached)


def request_escalation(db: Database, ticket_ids: Sequence[int]) -> int:
    with db.transaction() as s:
        return queue.request_escalation(s, list(ticket_ids))


def requeue_failed(db: Database, *, started_by: str = "cli") -> tuple[int, int]:
    """Queue every failed ticket again under a new run; returns (run id, how many)."""
    with db.transaction() as s:
        ids = queue.ticket_ids_in_state(s, FAILED)
        run_id = queue.create_run(s, started_by=started_by, source="retry", mode="auto", threshold=0.7)
        n = queue.requeue_tickets(s, ids, run_id) if ids else 0
    return run_id, n


def start_run(db: Database, items: Sequence[tuple[str | None, str]], *, source: str, started_by: str = "cli",
              mode: str = "auto", threshold: float = 0.7, reclassify: bool = False) -> queue.Imported:
    with db.transaction() as s:
        run_id = queue.create_run(s, started_by=started_by, source=source, mode=mode, threshold=threshold)
        return queue.import_tickets(s, items, source=source, run_id=run_id, reclassify=reclassify)


def finish_run(db: Database, report: RunReport) -> None:
    if report.run_id is None:
        return
    with db.transaction() as s:
        queue.finish_run(s, report.run_id, "stopped" if report.stopped else "finished", report.stopped)


def run_rows(db: Database, run_id: int, ticket_ids: Sequence[int], with_text: bool = False) -> list[dict]:
    """One output row per input ticket: the current label and what this run spent on it."""
    with db.read() as s:
        costs = queue.run_cost_by_ticket(s, run_id)
        unique = list(dict.fromkeys(ticket_ids))
        tickets = queue.tickets_by_id(s, unique)
        latest = queue.last_answered_calls(s, unique)
        rows = []
        for tid in ticket_ids:
            t = tickets[tid]
            last = latest.get(tid)
            rows.append({
                "id": t.external_id or str(t.id), "ticket_id": t.id, "category": t.category,
                "confidence": t.confidence, "tier": t.label_source,
                "model": (last.model_returned or last.model) if last else None,
                "escalated": t.escalated, "cost_usd": str(from_pico(costs.get(tid, 0))),
                "status": t.status, "reason": t.status_reason or (last.reason if last else None),
            })
            if with_text:
                rows[-1].update(text=t.text, latency_ms=last.latency_ms if last else None,
                                model_reason=last.reason if last else None)
    return rows


@dataclass
class Progress:
    run_id: int
    status: str
    message: str | None
    total: int
    states: dict[str, int]

    @property
    def done(self) -> int:
        return self.total - self.states.get("pending", 0)


def run_progress(db: Database, run_id: int) -> Progress | None:
    with db.read() as s:
        run = queue.run_info(s, run_id)
        if run is None:
            return None
        states = queue.run_state_counts(s, run_id)
        return Progress(run_id, run.status, run.message, run.n_tickets, states)


@dataclass(frozen=True)
class RunVersion:
    """What a page watching a run reads on every poll, from a few small indexed queries: the run's progress and a
    fingerprint of the tickets on screen (see db.queue.tickets_fingerprint)."""

    progress: Progress
    shown: tuple[int, int, int]

    @property
    def waiting(self) -> bool:
        """Something can still change without anyone acting: a ticket of the run (or one on screen, e.g. escalated
        from there) is pending or claimed, and the run was not stopped (a rejected key stops it for good)."""
        return self.progress.status != "stopped" and (self.progress.states.get("pending", 0) > 0 or self.shown[1] > 0)


def run_version(db: Database, run_id: int, shown_ids: Sequence[int]) -> RunVersion | None:
    """The run's progress and the fingerprint of `shown_ids`, in one read; None when there is no such run."""
    with db.read() as s:
        run = queue.run_info(s, run_id)
        if run is None:
            return None
        progress = Progress(run_id, run.status, run.message, run.n_tickets, queue.run_state_counts(s, run_id))
        return RunVersion(progress, queue.tickets_fingerprint(s, shown_ids))


def run_ticket_ids(db: Database, run_id: int, limit: int = 50) -> list[int]:
    with db.read() as s:
        return queue.ticket_ids_of_run(s, run_id, limit)


def ticket_count(db: Database) -> int:
    with db.read() as s:
        return reports.status_counts(s).get("total", 0)


def count_known(db: Database, items: Sequence[tuple[str | None, str]]) -> int:
    with db.read() as s:
        return queue.count_known(s, items)


def spend(db: Database, start=None, end=None) -> list[dict]:
    with db.read() as s:
        return reports.spend_by_day(s, start, end)


def recent_runs(db: Database, limit: int = 20) -> list[dict]:
    with db.read() as s:
        return queue.recent_runs(s, limit)


def create_run(db: Database, *, started_by: str, source: str, mode: str, threshold: float) -> int:
    with db.transaction() as s:
        return queue.create_run(s, started_by=started_by, source=source, mode=mode, threshold=threshold)


def ticket_ids_below(db: Database, confidence: float) -> list[int]:
    """Uncorrected tickets whose label confidence is under `confidence` (or that have none)."""
    with db.read() as s:
        return queue.ticket_ids_below(s, confidence)


def open_batches(db: Database) -> list[tuple[int, str]]:
    """(run id, batch id) of runs whose Message Batch has not been collected yet."""
    with db.read() as s:
        return queue.open_batches(s)


def budget_block(db: Database, monthly_budget_usd: float, today=None) -> str | None:
    """Why API calls must wait, when this month's exact spend has reached the budget; None otherwise."""
    if not monthly_budget_usd:
        return None
    from datetime import date

    today = today or date.today()
    with db.read() as s:
        spent = from_pico(reports.total_cost_pico(s, today.replace(day=1), today))
    if spent >= Decimal(str(monthly_budget_usd)):
        return (f"this month's spend ${spent:.4f} has reached the monthly budget of ${monthly_budget_usd:.2f}: "
                "API calls are paused (raise the budget in Settings or TRIAGE_MONTHLY_BUDGET_USD)")
    return None
