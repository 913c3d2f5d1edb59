"""Tier 1 through the Message Batches API: half price, results within 24 hours.

`submit` claims a run's pending tickets, sends one batch request per ticket (the same body as a live call)
and holds the tickets until the batch ends; `collect` reads the results, records each call (the API reports
`service_tier: batch`, which the price table halves), and queues the unsure ones for Sonnet like any other
escalation. Nothing is lost if the process stops in between: the batch id is stored on the run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from db import queue
from db.engine import Database
from triage.budget import BudgetGuard, check
from triage.domain import ERROR, TRANSIENT, CallResult
from triage.router import Router, decide, should_escalate

HOLD = timedelta(hours=25)  # a batch expires after 24 h; its tickets stay claimed until then


def _id(ticket_id: int) -> str:
    return f"ticket-{ticket_id}"


async def submit(db: Database, router: Router, run_id: int, worker: str = "batch") -> str | None:
    """Send the run's pending tickets as one batch; returns the batch id (None when nothing was pending).
    Refused (errors.BudgetReached) when a spending cap is reached."""
    guard = router.guard
    if isinstance(guard, BudgetGuard):
        check(db, guard.caps)
    with db.transaction() as s:
        claimed = queue.claim_pending(s, worker, 100_000, run_id)
    if not claimed:
        return None
    provider = router.tier1
    requests = [{"custom_id": _id(c.ticket_id), "params": provider.request_body(c.text, router.taxonomy)}
                for c in claimed]
    try:
        batch = await provider.client.messages.batches.create(requests=requests)
    except Exception:
        with db.transaction() as s:
            queue.release_claims(s, worker)
        raise
    with db.transaction() as s:
        queue.hold_for_batch(s, [c.ticket_id for c in claimed], batch.id, datetime.now(UTC) + HOLD)
        queue.set_run_batch(s, run_id, batch.id)
    return batch.id


async def collect(db: Database, router: Router, run_id: int, batch_id: str) -> dict | None:
    """Record a finished batch's results; None while it is still running. Returns counts."""
    provider = router.tier1
    batch = await provider.client.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        return None
    started = time.perf_counter()
    counts = {"answered": 0, "failed": 0, "escalating": 0}
    escalate: list[int] = []
    results = await provider.client.messages.batches.results(batch_id)
    async for item in results:
        ticket_id = int(item.custom_id.removeprefix("ticket-"))
        result = item.result
        if result.type == "succeeded":
            call = provider._answer_result(result.message, f"{batch_id}/{item.custom_id}", router.taxonomy, 1,
                                           started)
            call.latency_ms = 0  # batch calls have no per-request latency; the latency charts leave them out
        else:
            message = getattr(getattr(getattr(result, "error", None), "error", None), "message", None)
            call = CallResult(provider.tier, provider.model, ERROR, error_kind=TRANSIENT,
                              error=f"batch request {result.type}" + (f": {message}" if message else ""))
        wants_tier2 = router.mode == "auto" and router.tier2 is not None and should_escalate(call,
                                                                                             router.threshold)
        with db.transaction() as s:
            queue.record_call(s, ticket_id, run_id, call)
            queue.apply_outcome(s, ticket_id, decide([call], router.threshold))
        if wants_tier2:
            escalate.append(ticket_id)
        counts["answered" if call.answered else "failed"] += 1
    with db.transaction() as s:
        if escalate:
            queue.request_escalation(s, escalate)
        queue.set_run_batch(s, run_id, None)
    counts["escalating"] = len(escalate)
    return counts
