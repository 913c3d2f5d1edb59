"""Runs: import tickets as a run, queue work, and report a run's progress and result rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from db import queue, reports
from db.engine import Database
from triage.domain import FAILED, from_pico, money_text

if TYPE_CHECKING:
    from triage.pipeline import RunReport


def request_escalation(db: Database, ticket_ids: Sequence[int]) -> int:
    with db.transaction() as s:
        return queue.request_escalation(s, list(ticket_ids))


def requeue_failed(db: Database, *, started_by: str = "cli", threshold: float = 0.7) -> tuple[int, int]:
    """Queue every failed ticket again under a new run; returns (run id, how many)."""
    with db.transaction() as s:
        ids = queue.ticket_ids_in_state(s, FAILED)
        run_id = queue.create_run(s, started_by=started_by, source="retry", mode="auto", threshold=threshold)
        n = queue.requeue_tickets(s, ids, run_id) if ids else 0
    return run_id, n


def start_run(db: Database, items: Sequence[tuple[str | None, str]], *, source: str, started_by: str = "cli",
              mode: str = "auto", threshold: float = 0.7, reclassify: bool = False) -> queue.Imported:
    with db.transaction() as s:
        run_id = queue.create_run(s, started_by=started_by, source=source, mode=mode, threshold=threshold)
        return queue.import_tickets(s, items, source=source, run_id=run_id, reclassify=reclassify)


def finish_run(db: Database, report: RunReport) -> None:
    """A run ends stopped (with why) or finished."""
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
                "escalated": t.escalated, "cost_usd": money_text(from_pico(costs.get(tid, 0))),
                "status": t.status, "reason": t.status_reason or (last.reason if last else None),
            })
            if with_text:
                rows[-1].update(text=t.text, latency_ms=last.latency_ms if last else None,
                                model_reason=last.reason if last else None)
    return rows


@dataclass
class RunProgress:
    run_id: int
    status: str
    message: str | None
    total: int
    states: dict[str, int]

    @property
    def done(self) -> int:
        return self.total - self.states.get("pending", 0)


def run_progress(db: Database, run_id: int) -> RunProgress | None:
    with db.read() as s:
        run = queue.run_info(s, run_id)
        if run is None:
            return None
        states = queue.run_state_counts(s, run_id)
        return RunProgress(run_id, run.status, run.message, run.n_tickets, states)


def run_ticket_ids(db: Database, run_id: int, limit: int = 50) -> list[int]:
    with db.read() as s:
        return queue.ticket_ids_of_run(s, run_id, limit)


def ticket_count(db: Database) -> int:
    with db.read() as s:
        return reports.status_counts(s).get("total", 0)


def count_known(db: Database, items: Sequence[tuple[str | None, str]]) -> int:
    with db.read() as s:
        return queue.count_known(s, items)


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
