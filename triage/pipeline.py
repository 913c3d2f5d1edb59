"""The async pipeline: claim tickets from the durable queue, route each through the tiers, record every call as
it returns, and apply the outcome. No rules of its own beyond "never lose a ticket": the service layer
(triage.services) decides what runs, with which router, under which budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.orm import Session

from db import queue
from db.engine import Database
from triage.domain import FAILED, CallResult, Outcome
from triage.errors import BudgetReached, KeyRejected
from triage.router import OnCall, Router

log = logging.getLogger(__name__)

T = TypeVar("T")
OnTicket = Callable[[int, Outcome], None]
Step = Callable[[list[CallResult], OnCall], Awaitable[Outcome]]


@dataclass
class RunReport:
    """What one pass over the queue did."""

    run_id: int | None
    processed: int = 0
    states: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None  # why the run stopped early, None when it finished
    stop_kind: str | None = None  # "key" (rejected API key) or "budget" (a spending cap reached)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def in_transaction(db: Database, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with db.transaction() as s:
            return fn(s)
    return await asyncio.to_thread(work)


async def read(db: Database, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with db.read() as s:
            return fn(s)
    return await asyncio.to_thread(work)


async def _handle(db: Database, run_id: int | None, ticket_id: int, step: Step) -> Outcome:
    """Run one ticket through `step` (classify or escalate), storing each call as it returns."""
    prior = await read(db, lambda s: queue.current_calls(s, ticket_id))

    async def on_call(c: CallResult) -> None:
        await in_transaction(db, lambda s: queue.record_call(s, ticket_id, run_id, c))

    try:
        outcome = await step([c for c in prior if c.answered], on_call)
    except (KeyRejected, BudgetReached):
        raise
    except Exception as exc:  # a bug or a database fault must not strand the ticket
        log.exception("ticket %s failed unexpectedly", ticket_id)
        outcome = Outcome(status=FAILED, reason=f"internal error: {type(exc).__name__}: {exc}")
    await in_transaction(db, lambda s: queue.apply_outcome(s, ticket_id, outcome))
    return outcome


async def _process_one(db: Database, run_id: int | None, ticket_id: int, step: Step, report: RunReport,
                       stop: asyncio.Event, on_ticket: OnTicket | None) -> None:
    """One ticket through `step`. A rejected key or a reached budget stops the whole run; the ticket stays
    pending (with the reason) and its calls so far are kept."""
    try:
        outcome = await _handle(db, run_id, ticket_id, step)
    except (KeyRejected, BudgetReached) as exc:
        why = str(exc)
        if not report.stopped:
            report.stopped, report.stop_kind = why, "key" if isinstance(exc, KeyRejected) else "budget"
        stop.set()
        await in_transaction(db, lambda s: queue.leave_pending(s, ticket_id, why))
        return
    report.processed += 1
    if on_ticket:
        on_ticket(ticket_id, outcome)


def _step_for(router: Router, item: queue.Claimed) -> Step:
    """Escalate when an operator asked for tier 2, else classify with the run's own mode and threshold."""
    mode = item.mode if item.mode in ("auto", "haiku", "sonnet") else None
    if item.wants_tier2 and router.tier2 is not None:
        return lambda prior, cb: router.escalate(item.text, prior, cb, threshold=item.threshold)
    return lambda prior, cb: router.classify(item.text, prior=prior, on_call=cb, mode=mode,
                                             threshold=item.threshold)


async def process_queue(db: Database, router: Router, *, run_id: int | None = None, concurrency: int = 8,
                        worker: str | None = None, on_ticket: OnTicket | None = None) -> RunReport:
    """Classify pending tickets (of one run, or all) until none are left. Durable: claims first."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    name = worker or worker_name()
    report = RunReport(run_id)
    inbox: asyncio.Queue[queue.Claimed | None] = asyncio.Queue(maxsize=concurrency * 2)
    stop = asyncio.Event()

    async def producer() -> None:
        try:
            while not stop.is_set():
                batch = await in_transaction(db, lambda s: queue.claim_pending(s, name, concurrency, run_id))
                if not batch:
                    break
                for item in batch:
                    await inbox.put(item)
        finally:
            for _ in range(concurrency):
                await inbox.put(None)

    async def consumer() -> None:
        while (item := await inbox.get()) is not None:
            if stop.is_set():
                continue
            await _process_one(db, item.run_id, item.ticket_id, _step_for(router, item), report, stop, on_ticket)

    await _gather_or_release(db, name, [producer()] + [consumer() for _ in range(concurrency)])
    if run_id is not None:
        report.states = await read(db, lambda s: queue.run_state_counts(s, run_id))
    return report


async def _gather_or_release(db: Database, worker: str, coros: Sequence[Awaitable[None]]) -> None:
    try:
        await asyncio.gather(*coros)
    finally:
        await in_transaction(db, lambda s: queue.release_claims(s, worker))


async def escalate_tickets(db: Database, router: Router, ticket_ids: Sequence[int], *, run_id: int | None = None,
                           concurrency: int = 8, on_ticket: OnTicket | None = None) -> RunReport:
    """Ask tier 2 about these tickets, whatever tier 1 said."""
    report = RunReport(run_id)
    texts = await read(db, lambda s: {t.id: t.text for t in queue.tickets_by_id(s, list(ticket_ids)).values()})
    missing = [i for i in ticket_ids if i not in texts]
    if missing:
        from triage.errors import NotFound

        raise NotFound(f"no ticket with id {', '.join(map(str, missing[:10]))}")
    sem = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()

    async def one(tid: int) -> None:
        async with sem:
            if stop.is_set():
                return
            await _process_one(db, run_id, tid, lambda prior, cb: router.escalate(texts[tid], prior, cb), report,
                               stop, on_ticket)

    await asyncio.gather(*(one(t) for t in ticket_ids))
    return report


async def drain(db: Database, router: Router, *, concurrency: int = 8, once: bool = False,
                poll_seconds: float = 2.0, stop: asyncio.Event | None = None,
                before_pass: Callable[[], Awaitable[None]] | None = None) -> RunReport:
    """Process every pending ticket, whichever run queued it; poll for more unless `once`.

    `before_pass` may raise BudgetReached to stop before claiming anything."""
    total = RunReport(None)
    await in_transaction(db, lambda s: queue.release_dead_claims(s, socket.gethostname(), pid_alive))
    while True:
        if before_pass is not None:
            try:
                await before_pass()
            except BudgetReached as exc:
                total.stopped, total.stop_kind = str(exc), "budget"
                return total
        report = await process_queue(db, router, concurrency=concurrency)
        total.processed += report.processed
        if report.stopped:
            total.stopped, total.stop_kind = report.stopped, report.stop_kind
            return total
        if once or (stop is not None and stop.is_set()):
            return total
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop or asyncio.Event()).wait(), timeout=poll_seconds)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
