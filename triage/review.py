"""Operator use cases: the review queue, ticket detail, corrections (optimistic), bulk corrections."""

from __future__ import annotations

from dataclasses import dataclass, field

from db import review as q
from db.engine import Database
from db.review import Conflict, ReviewFilter
from triage.pricing import from_pico
from triage.taxonomy import Taxonomy

__all__ = ["Conflict", "ReviewFilter", "correct", "correct_many", "detail", "page"]


@dataclass
class Page:
    rows: list[q.Row]
    total: int
    page: int
    size: int
    machine: dict[int, tuple[str | None, int]] = field(default_factory=dict)  # ticket -> (label, tier)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def page(db: Database, f: ReviewFilter, number: int = 0, size: int = q.PAGE_SIZE) -> Page:
    with db.read() as s:
        rows = q.review_page(s, f, number, size)
        return Page(rows, q.review_count(s, f), number, size, q.machine_labels(s, [r.id for r in rows]))


def correct(db: Database, ticket_id: int, label: str, *, operator: str, expected_version: int,
            taxonomy: Taxonomy, note: str | None = None) -> int:
    if label not in taxonomy:
        raise ValueError(f"{label!r} is not a category; pick one of {', '.join(taxonomy.names)}")
    if not operator.strip():
        raise ValueError("say who you are (operator name) before correcting labels")
    with db.transaction() as s:
        return q.correct(s, ticket_id, label, operator=operator.strip(), expected_version=expected_version,
                         note=note)


@dataclass
class BulkResult:
    saved: list[int]
    conflicts: list[str]


def correct_many(db: Database, changes: list[tuple[int, str, int]], *, operator: str, taxonomy: Taxonomy,
                 note: str | None = None) -> BulkResult:
    """(ticket id, new label, version seen) each; each ticket saved on its own, conflicts reported."""
    result = BulkResult([], [])
    for tid, label, version in changes:
        try:
            correct(db, tid, label, operator=operator, expected_version=version, taxonomy=taxonomy, note=note)
            result.saved.append(tid)
        except Conflict as exc:
            result.conflicts.append(str(exc))
    return result


@dataclass
class Detail:
    ticket: object
    calls: list[dict]
    history: list[dict]


def detail(db: Database, ticket_id: int) -> Detail | None:
    with db.read() as s:
        t = q.ticket(s, ticket_id)
        if t is None:
            return None
        calls = [{
            "time": c.created_at, "tier": c.tier, "model": c.model_returned or c.model, "outcome": c.outcome,
            "label": c.category, "confidence": c.confidence, "reason": c.reason or c.problem or c.error,
            "input_tokens": c.input_tokens, "output_tokens": c.output_tokens,
            "cache_tokens": c.cache_read_tokens + c.cache_write_5m_tokens + c.cache_write_1h_tokens,
            "cost_usd": from_pico(c.cost_pico), "latency_ms": c.latency_ms, "request_id": c.request_id,
        } for c in q.calls_of(s, ticket_id)]
        history = [{"time": h.created_at, "operator": h.operator, "from": h.previous_label, "to": h.new_label,
                    "note": h.note} for h in q.history_of(s, ticket_id)]
        return Detail(t, calls, history)
