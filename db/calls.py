"""Model calls: record each one (with its rollups and its reservation settled in the same transaction), read
them back, and apply a ticket's outcome.

Callers hold the transaction; nothing here calls an API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import audit_sample, ledger, paths, rollups, teams
from db.models import ModelCall, Ticket
from triage.domain import CallResult, Outcome, Usage, from_pico, to_pico
from triage.errors import NotFound


def record_call(s: Session, ticket_id: int, run_id: int | None, c: CallResult) -> int:
    u = c.usage
    row = ModelCall(
        ticket_id=ticket_id, run_id=run_id, tier=c.tier, model=c.model, model_returned=c.model_returned,
        outcome=c.outcome, category=c.category, confidence=c.confidence, reason=c.reason, problem=c.problem,
        stop_reason=c.stop_reason, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
        cache_write_5m_tokens=u.cache_write_5m_tokens, cache_write_1h_tokens=u.cache_write_1h_tokens,
        cache_read_tokens=u.cache_read_tokens, service_tier=u.service_tier, inference_geo=u.inference_geo,
        cost_pico=to_pico(c.cost_usd), cost_known=c.cost_known, cost_note=c.cost_note,
        latency_ms=c.latency_ms, request_id=c.request_id, error=c.error,
        error_kind=c.error_kind, attempts=c.attempts, created_at=rollups.as_utc(c.created_at),
        calibration_id=c.calibration_id, calibrated_confidence=c.calibrated_confidence,
        examples=c.examples, group_size=c.group_size, group_position=c.group_position,
        priority=c.priority, priority_confidence=c.priority_confidence,
    )
    s.add(row)
    s.flush()
    rollups.add_call(s, row)  # the per-day rollups, in this same transaction
    estimate = to_pico(c.estimated_usd) if c.estimated_usd is not None else 0
    if c.reservation_id is not None:  # the same transaction: a call is on the books or reserved, never neither
        ledger.settle(s, c.reservation_id, row.id, priced=c.cost_known, answered=c.answered, note=c.cost_note,
                      estimated_pico=estimate)
    elif not c.cost_known:  # billed, but not priceable, and nothing reserved for it: at its estimate, never $0
        ledger.book_unpriced(s, row.id, estimated_pico=estimate, tier=c.tier, model=c.model, note=c.cost_note,
                             ticket_id=ticket_id, run_id=run_id, at=rollups.as_utc(c.created_at))
    if c.vector is not None:
        from db import vectors

        vectors.store(s, {ticket_id: c.vector}, c.model)
    return row.id


def record_calls(s: Session, calls: Sequence[tuple[int, int | None, CallResult]]) -> list[int]:
    """The calls of one request about several tickets (ticket id, run id, that ticket's share), in the caller's
    transaction: they are on the books together or not at all."""
    return [record_call(s, ticket_id, run_id, c) for ticket_id, run_id, c in calls]


def call_from_row(r: ModelCall) -> CallResult:
    return CallResult(
        tier=r.tier, model=r.model, outcome=r.outcome, category=r.category, confidence=r.confidence,
        reason=r.reason or "", problem=r.problem, model_returned=r.model_returned,
        usage=Usage(r.input_tokens, r.output_tokens, r.cache_write_5m_tokens, r.cache_write_1h_tokens,
                    r.cache_read_tokens, r.service_tier, r.inference_geo),
        cost_usd=from_pico(r.cost_pico), cost_known=r.cost_known, cost_note=r.cost_note,
        latency_ms=r.latency_ms, request_id=r.request_id,
        stop_reason=r.stop_reason, error=r.error, error_kind=r.error_kind, attempts=r.attempts,
        created_at=r.created_at, calibration_id=r.calibration_id, calibrated_confidence=r.calibrated_confidence,
        examples=r.examples, group_size=r.group_size, group_position=r.group_position,
        priority=r.priority, priority_confidence=r.priority_confidence,
    )


def _ticket(s: Session, ticket_id: int, *, lock: bool = False) -> Ticket:
    t = s.get(Ticket, ticket_id, with_for_update=lock)
    if t is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    return t


def current_calls(s: Session, ticket_id: int) -> list[CallResult]:
    """The calls that count toward the ticket's machine label (oldest first)."""
    t = _ticket(s, ticket_id)
    rows = s.scalars(select(ModelCall).where(ModelCall.ticket_id == ticket_id,
                                             ModelCall.id >= t.first_call_id).order_by(ModelCall.id))
    return [call_from_row(r) for r in rows]


def apply_outcome(s: Session, ticket_id: int, o: Outcome) -> None:
    t = _ticket(s, ticket_id, lock=True)  # row lock on PostgreSQL; SQLite has BEGIN IMMEDIATE
    t.status, t.status_reason = o.status, o.reason
    t.escalated = o.escalated
    tier1 = [c for c in o.calls if c.tier == 1 and c.answered]
    tier2 = [c for c in o.calls if c.tier == 2 and c.answered]
    t.tier1_category = tier1[-1].category if tier1 else t.tier1_category
    t.tier2_category = tier2[-1].category if tier2 else t.tier2_category
    t.disagree = bool(t.tier1_category and t.tier2_category and t.tier1_category != t.tier2_category)
    if not t.corrected and o.tier is not None:
        t.category, t.confidence, t.label_source = o.category, o.confidence, f"tier{o.tier}"
    if t.priority_source != "operator" and o.tier is not None:  # an operator's priority is never overwritten
        # the deciding call's priority; the local tier (and an answer without a usable one) leaves it unknown
        t.priority, t.priority_confidence = o.priority, o.priority_confidence
        t.priority_source = f"tier{o.tier}" if o.priority is not None else None
    teams.assign(s, t)
    t.claimed_by, t.claimed_at = None, None
    t.escalation_requested = False
    t.updated_at = datetime.now(UTC)
    t.version += 1
    audit_sample.consider(s, t, o)  # settled without review: drawn for the blind audit at the rate in force
    paths.sync(s, [ticket_id])  # the routing story's per-day path counts (db/paths.py)


def last_answered_calls(s: Session, ticket_ids: Sequence[int]) -> dict[int, ModelCall]:
    """Each ticket's latest answered call, in one query per 500 tickets."""
    out: dict[int, ModelCall] = {}
    for i in range(0, len(ticket_ids), 500):
        rows = s.scalars(select(ModelCall).where(ModelCall.ticket_id.in_(ticket_ids[i:i + 500]),
                                                 ModelCall.outcome != "error").order_by(ModelCall.id))
        out.update({c.ticket_id: c for c in rows})  # later calls overwrite earlier ones
    return out


def decided_by_tier2(s: Session, ticket_ids: Sequence[int]) -> set[int]:
    """Those of these tickets that tier 2 has already answered (among the calls that count for their label)."""
    out: set[int] = set()
    for i in range(0, len(ticket_ids), 500):
        out.update(s.scalars(select(ModelCall.ticket_id).join(Ticket, Ticket.id == ModelCall.ticket_id).where(
            ModelCall.ticket_id.in_(ticket_ids[i:i + 500]), ModelCall.tier == 2, ModelCall.outcome != "error",
            ModelCall.id >= Ticket.first_call_id).distinct()))
    return out
