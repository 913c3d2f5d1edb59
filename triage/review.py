"""Operator use cases: the review queue, ticket detail, corrections (optimistic), confirmations, bulk labels.

A confirmation is a correction whose label is the one the ticket already has: it records that an operator
checked it, so it counts as ground truth. Both go through `correct`, which holds the rules. Reading the queue or a
ticket and labelling take the acting identity (`actor`); labels are stamped with it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from db import queue
from db import review as db_review
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.domain import UNKNOWN, ReviewFilter, ReviewRow, TicketView, from_pico
from triage.errors import Conflict, InputError
from triage.quality import calibrate
from triage.taxonomy import Taxonomy


@dataclass
class Page:
    rows: list[ReviewRow]
    total: int
    page: int
    size: int
    machine: dict[int, tuple[str | None, int]] = field(default_factory=dict)  # ticket -> (label, tier)
    more: bool = False  # `total` is a lower bound: matches were counted only COUNT_AHEAD past this page

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


COUNT_AHEAD = 10_000  # a page counts matches this far past itself, so it costs the same on any history


def page(db: Database, f: ReviewFilter, number: int = 0, size: int = db_review.PAGE_SIZE, *, actor: Actor) -> Page:
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        rows = db_review.review_page(s, f, number, size)
        cap = number * size + COUNT_AHEAD
        total = db_review.review_count(s, f, cap + 1)
        return Page(rows, min(total, cap), number, size, db_review.machine_labels(s, [r.id for r in rows]), total > cap)


def fingerprint(db: Database, ticket_ids: list[int]) -> tuple[int, int, int]:
    """What a page watching these tickets polls (see db.queue.tickets_fingerprint): it changes when any of them
    gets an answer, a label or a new state."""
    with db.read() as s:
        return queue.tickets_fingerprint(s, ticket_ids)


def refresh(db: Database, current: Page, ticket_ids: list[int], *, actor: Actor) -> Page:
    """`current` with these rows read again (escalated tickets whose answers arrived), the others as they were:
    the table keeps its rows, so an operator's unsaved edits stay, and rows not re-read keep the version the
    operator saw (a save over someone else's change is still refused)."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        fresh = {r.id: r for r in db_review.rows_by_id(s, ticket_ids)}
        machine = db_review.machine_labels(s, ticket_ids)
    return replace(current, rows=[fresh.get(r.id, r) for r in current.rows], machine={**current.machine, **machine})


def correct(db: Database, ticket_id: int, label: str, *, actor: Actor, expected_version: int,
            taxonomy: Taxonomy, note: str | None = None) -> int:
    """Set an operator label (stamped with the actor's identity) if nobody changed the ticket since
    `expected_version`; returns the new version."""
    require(actor, Action.LABEL)
    if label not in taxonomy:
        raise InputError(f"{label!r} is not a category; pick one of {', '.join(taxonomy.names)}")
    with db.transaction() as s:
        return db_review.correct(s, ticket_id, label, operator=actor.identity, expected_version=expected_version,
                         note=note)


def correct_priority(db: Database, ticket_id: int, priority: str, *, actor: Actor, expected_version: int,
                     taxonomy: Taxonomy, note: str | None = None) -> int:
    """Set an operator priority (a level of the taxonomy's scale, stamped with the actor) if nobody changed the
    ticket since `expected_version`; recorded in `priority_corrections` and the audit trail in the same transaction.
    The category alone still drives escalation. Returns the new version."""
    require(actor, Action.LABEL)
    if priority not in taxonomy.priority_names:
        raise InputError(f"{priority!r} is not a priority; pick one of {', '.join(taxonomy.priority_names)}")
    with db.transaction() as s:
        version = db_review.correct_priority(s, ticket_id, priority, operator=actor.identity,
                                             expected_version=expected_version, note=note)
        audit.record(s, actor, audit.PRIORITY_CORRECTION, ticket=ticket_id, priority=priority)
        return version


def queue_filter(taxonomy: Taxonomy, **kw: Any) -> ReviewFilter:
    """A review filter that sorts urgent first by this taxonomy's scale (the other filters as given, including
    `priorities`, `languages` and `teams`)."""
    return ReviewFilter(priority_order=tuple(taxonomy.priority_names), **kw)


def languages(db: Database, *, actor: Actor) -> list[str]:
    """Languages detected on tickets so far: the queue's language filter offers these."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        return [x for x in db_review.languages(s) if x]


def teams_in_use(db: Database, *, actor: Actor) -> list[str]:
    """Teams tickets have been routed to so far: the queue's team filter offers these."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        return [x for x in db_review.teams_in_use(s) if x]


@dataclass
class BulkResult:
    saved: list[int]
    conflicts: list[str]
    before: list[db_review.LabelState] = field(default_factory=list)  # what `undo` needs to take the save back


def correct_many(db: Database, changes: list[tuple[int, str, int]], *, actor: Actor, taxonomy: Taxonomy,
                 note: str | None = None) -> BulkResult:
    """(ticket id, new label, version seen) each; each ticket saved on its own, conflicts reported."""
    require(actor, Action.LABEL)
    result = BulkResult([], [])
    for tid, label, version in changes:
        if label not in taxonomy:
            raise InputError(f"{label!r} is not a category; pick one of {', '.join(taxonomy.names)}")
        try:
            with db.transaction() as s:
                before = db_review.label_state(s, tid)
                after = db_review.correct(s, tid, label, operator=actor.identity, expected_version=version,
                                          note=note)
            result.saved.append(tid)
            if before is not None:
                result.before.append(replace(before, version=after))
        except Conflict as exc:
            result.conflicts.append(str(exc))
    if result.saved:  # the confidence calibration follows the labels (cheap unless enough new ones arrived)
        calibrate.refresh(db, trigger=calibrate.CORRECTIONS, by=actor.identity)
    return result


def confirm_many(db: Database, tickets: list[tuple[int, str | None, int]], *, actor: Actor, taxonomy: Taxonomy,
                 note: str | None = None) -> BulkResult:
    """(ticket id, label seen, version seen) each: the operator checked the label and it is right. Tickets without
    a label from the taxonomy cannot be confirmed (correct them instead) and are reported as such."""
    result = correct_many(db, [(t, label, v) for t, label, v in tickets if label is not None and label in taxonomy],
                          actor=actor,
                          taxonomy=taxonomy, note=note or "confirmed")
    result.conflicts += [f"ticket {t} has no label to confirm; pick one instead" for t, label, _ in tickets
                         if label not in taxonomy]
    return result


def undo(db: Database, before: list[db_review.LabelState], *, actor: Actor) -> BulkResult:
    """Take back a save (`BulkResult.before` of it): each ticket's label as it was, if nobody changed the ticket
    since the save (else a conflict is reported and it stays). The corrections trail and the audit trail say so."""
    require(actor, Action.LABEL)
    result = BulkResult([], [])
    for b in before:
        try:
            with db.transaction() as s:
                db_review.undo(s, b, operator=actor.identity)
            result.saved.append(b.ticket_id)
        except Conflict as exc:
            result.conflicts.append(str(exc))
    if result.saved:
        with db.transaction() as s:
            audit.record(s, actor, audit.LABELS_UNDONE, tickets=result.saved[:50], count=len(result.saved))
        calibrate.refresh(db, trigger=calibrate.CORRECTIONS, by=actor.identity)
    return result


MATCHING_LIMIT = 10_000  # "all matching" acts on at most this many tickets at once (least confident first)


def matching(db: Database, f: ReviewFilter, *, actor: Actor,
             limit: int = MATCHING_LIMIT) -> list[tuple[int, str | None, int]]:
    """(ticket id, label, version) of every ticket matching the filter (up to `limit`): what "all N matching"
    acts on. The versions are those read now, so a ticket someone changes meanwhile is reported, not overwritten."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        return db_review.matching(s, f, limit)


def correct_matching(db: Database, f: ReviewFilter, label: str, *, actor: Actor, taxonomy: Taxonomy,
                     note: str | None = None, confirm: bool = False) -> BulkResult:
    """Label (or, with `confirm`, confirm the label of) every ticket matching the filter; audited with the filter."""
    require(actor, Action.LABEL)
    found = matching(db, f, actor=actor)
    result = (confirm_many(db, found, actor=actor, taxonomy=taxonomy, note=note) if confirm else
              correct_many(db, [(t, label, v) for t, _, v in found], actor=actor, taxonomy=taxonomy, note=note))
    with db.transaction() as s:
        audit.record(s, actor, audit.LABELS_BY_FILTER, filter=describe(f), label="(confirmed)" if confirm else label,
                     matched=len(found), saved=len(result.saved))
    return result


def describe(f: ReviewFilter) -> str:
    """The filter in one line for the audit trail (only what is set)."""
    parts = [f"{name}={value!r}" for name, value in vars(f).items()
             if value not in (None, "", ()) and name != "threshold"]
    return ", ".join(parts) or "every ticket"


def next_after(rows: list[ReviewRow], current: int | None, done: set[int]) -> int | None:
    """The ticket the keyboard loop opens after `current`: the next row of the page not saved yet (wrapping to
    the top for rows skipped earlier), None when every row on the page is done."""
    ids = [r.id for r in rows]
    start = ids.index(current) + 1 if current in ids else 0
    for tid in ids[start:] + ids[:start]:
        if tid not in done and tid != current:
            return tid
    return None


class CallRow(TypedDict):
    """One model call about a ticket, as the Review page's table shows it."""

    time: datetime
    tier: int
    model: str  # the model that answered (as the API named it), else the one asked
    outcome: str
    label: str | None
    confidence: float | None
    priority: str | None
    priority_confidence: float | None
    calibrated: float | None  # what routing compared with the threshold (through the calibration in force)
    examples: int | None
    tickets_in_request: int
    reason: str | None  # the model's reason, else what was wrong with the answer, else the error
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    cost_usd: Decimal
    cost_known: bool
    latency_ms: int
    request_id: str | None


# "from" is a keyword, hence the functional form: a label (or priority) an operator set, oldest first
HistoryRow = TypedDict("HistoryRow", {"time": datetime, "operator": str, "from": str | None, "to": str | None,
                                      "note": str | None})


@dataclass
class Detail:
    ticket: TicketView
    calls: list[CallRow]
    history: list[HistoryRow]


def detail(db: Database, ticket_id: int, *, actor: Actor) -> Detail | None:
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        t = db_review.ticket(s, ticket_id)
        if t is None:
            return None
        calls: list[CallRow] = [{
            "time": c.created_at, "tier": c.tier, "model": c.model_returned or c.model, "outcome": c.outcome,
            "label": c.category, "confidence": c.confidence,
            "priority": c.priority, "priority_confidence": c.priority_confidence,
            # what routing compared with the threshold (the stated confidence through the calibration in force)
            "calibrated": c.calibrated_confidence, "examples": c.examples, "tickets_in_request": c.group_size,
            "reason": c.reason or c.problem or c.error,
            "input_tokens": c.input_tokens, "output_tokens": c.output_tokens,
            "cache_tokens": c.cache_read_tokens + c.cache_write_5m_tokens + c.cache_write_1h_tokens,
            "cost_usd": from_pico(c.cost_pico), "cost_known": c.cost_known, "latency_ms": c.latency_ms,
            "request_id": c.request_id,
        } for c in db_review.calls_of(s, ticket_id)]
        history: list[HistoryRow] = [
            {"time": h.created_at, "operator": h.operator, "from": h.previous_label, "to": h.new_label,
             "note": h.note} for h in db_review.history_of(s, ticket_id)]
        history += [{"time": h.created_at, "operator": h.operator, "from": f"priority {h.previous_priority or UNKNOWN}",
                     "to": f"priority {h.new_priority}", "note": h.note}
                    for h in db_review.priority_history_of(s, ticket_id)]
        history.sort(key=lambda h: h["time"])
        return Detail(t, calls, history)
