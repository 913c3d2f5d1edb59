"""The async engine: build the router, drain the durable queue, escalate on demand, run the local tier.

Entry points (CLI, dashboard worker) call these; they hold no SQL and no HTTP of their own. Run bookkeeping
(importing a run, its rows and progress) lives in triage.runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence

import anthropic

from db import queue
from db.engine import Database
from triage import taxonomy as taxonomy_mod
from triage.pricing import PriceTable
from triage.providers.anthropic_provider import AnthropicProvider
from triage.providers.base import CallResult
from triage.router import FAILED, KeyRejected, Outcome, Router
from triage.runs import RunReport
from triage.settings import Settings
from triage.taxonomy import Taxonomy

log = logging.getLogger(__name__)

NO_KEY_MESSAGE = (
    "No ANTHROPIC_API_KEY is set, so Claude Haiku and Sonnet cannot be called. "
    "Set it in the environment (export ANTHROPIC_API_KEY=sk-ant-...) and run again."
)


class NoApiKey(RuntimeError):
    pass


def load_taxonomy(settings: Settings) -> Taxonomy:
    return taxonomy_mod.load(settings.taxonomy_path)


def make_client(settings: Settings) -> anthropic.AsyncAnthropic:
    if not settings.has_api_key:
        raise NoApiKey(NO_KEY_MESSAGE)
    return anthropic.AsyncAnthropic(
        api_key=settings.api_key, base_url=settings.base_url, max_retries=0, timeout=settings.request_timeout,
    )


def build_router(settings: Settings, taxonomy: Taxonomy, *, mode: str = "auto", threshold: float | None = None,
                 client: anthropic.AsyncAnthropic | None = None, prices: PriceTable | None = None) -> Router:
    client = client or make_client(settings)
    prices = prices or PriceTable.load(settings.prices_path)

    def provider(model: str, tier: int) -> AnthropicProvider:
        return AnthropicProvider(client, model, tier, prices, max_tokens=settings.max_tokens,
                                 effort=settings.effort, max_attempts=settings.max_attempts)

    return Router(provider(settings.tier1_model, 1), provider(settings.tier2_model, 2), taxonomy,
                  threshold=settings.threshold if threshold is None else threshold, mode=mode)


def run(router: Router, coro):
    """asyncio.run for entry points: the router's HTTP clients are closed before the loop ends."""
    async def main():
        try:
            return await coro
        finally:
            await router.aclose()
    return asyncio.run(main())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _in_tx(db: Database, fn):
    def work():
        with db.transaction() as s:
            return fn(s)
    return await asyncio.to_thread(work)


async def _read(db: Database, fn):
    def work():
        with db.read() as s:
            return fn(s)
    return await asyncio.to_thread(work)


OnTicket = Callable[[int, Outcome], None]


async def _handle(db: Database, run_id: int | None, ticket_id: int, step) -> Outcome:
    """Run one ticket through `step` (classify or escalate), storing each call as it returns."""
    prior = await _read(db, lambda s: queue.current_calls(s, ticket_id))

    async def on_call(c: CallResult) -> None:
        await _in_tx(db, lambda s: queue.record_call(s, ticket_id, run_id, c))

    try:
        outcome = await step([c for c in prior if c.answered], on_call)
    except KeyRejected:
        raise
    except Exception as exc:  # a bug or a database fault must not strand the ticket
        log.exception("ticket %s failed unexpectedly", ticket_id)
        outcome = Outcome(status=FAILED, reason=f"internal error: {type(exc).__name__}: {exc}")
    await _in_tx(db, lambda s: queue.apply_outcome(s, ticket_id, outcome))
    return outcome


async def process_queue(db: Database, router: Router, *, run_id: int | None = None, concurrency: int = 8,
                        worker: str | None = None, on_ticket: OnTicket | None = None) -> RunReport:
    """Classify pending tickets (of one run, or all) until none are left. Durable: claims first."""
    worker = worker or worker_name()
    report = RunReport(run_id)
    inbox: asyncio.Queue = asyncio.Queue(maxsize=concurrency * 2)
    stop = asyncio.Event()

    async def producer() -> None:
        try:
            while not stop.is_set():
                batch = await _in_tx(db, lambda s: queue.claim_pending(s, worker, concurrency, run_id))
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
            tid = item.ticket_id

            def step(prior, cb, item=item):
                if item.wants_tier2 and router.tier2 is not None:
                    return router.escalate(item.text, prior, cb)
                return router.classify(item.text, prior=prior, on_call=cb)

            await _process_one(db, item.run_id, tid, step, report, stop, on_ticket)

    await _gather_or_release(db, worker, [producer()] + [consumer() for _ in range(concurrency)])
    if run_id is not None:
        report.states = await _read(db, lambda s: queue.run_state_counts(s, run_id))
    return report


async def _process_one(db: Database, run_id: int | None, ticket_id: int, step, report: RunReport,
                       stop: asyncio.Event, on_ticket: OnTicket | None) -> None:
    """One ticket through `step`; a rejected key stops the whole run (the ticket stays pending)."""
    try:
        outcome = await _handle(db, run_id, ticket_id, step)
    except KeyRejected as exc:
        report.stopped, report.stop_kind = str(exc), "key"
        stop.set()
        return
    report.processed += 1
    if on_ticket:
        on_ticket(ticket_id, outcome)


async def _gather_or_release(db: Database, worker: str, coros: Sequence[Awaitable]) -> None:
    try:
        await asyncio.gather(*coros)
    finally:
        await _in_tx(db, lambda s: queue.release_claims(s, worker))


async def escalate_tickets(db: Database, router: Router, ticket_ids: Sequence[int], *, run_id: int | None = None,
                           concurrency: int = 8, on_ticket: OnTicket | None = None) -> RunReport:
    """Ask tier 2 about these tickets, whatever tier 1 said."""
    report = RunReport(run_id)
    texts = await _read(db, lambda s: {t.id: t.text for t in queue.tickets_by_id(s, list(ticket_ids)).values()})
    missing = [i for i in ticket_ids if i not in texts]
    if missing:
        raise LookupError(f"no ticket with id {', '.join(map(str, missing[:10]))}")
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


async def run_worker(db: Database, router: Router, *, concurrency: int = 8, once: bool = False,
                     poll_seconds: float = 2.0, stop: asyncio.Event | None = None,
                     monthly_budget_usd: float = 0.0) -> RunReport:
    """Process every pending ticket, whichever run queued it; poll for more unless `once`. Stops when the
    month's spend reaches the budget."""
    from triage.runs import budget_block

    total = RunReport(None)
    await _in_tx(db, lambda s: queue.release_dead_claims(s, socket.gethostname(), _pid_alive))
    while True:
        blocked = await asyncio.to_thread(budget_block, db, monthly_budget_usd)
        if blocked:
            total.stopped, total.stop_kind = blocked, "budget"
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def work_once(db: Database, base: Settings | None = None, *, concurrency: int | None = None,
                    client: anthropic.AsyncAnthropic | None = None) -> RunReport:
    """Drain the queue once with the settings in force now (taxonomy and threshold may have been edited).

    Used by the dashboard's background worker; a rejected key stops the runs in progress with its message."""
    from triage.config_service import effective

    settings, tax = effective(db, base)
    from triage.runs import budget_block

    blocked = budget_block(db, settings.monthly_budget_usd)
    if blocked:
        return RunReport(None, stopped=blocked, stop_kind="budget")
    router = build_router(settings, tax, threshold=settings.threshold, client=client)
    attach_tier0(db, router)
    try:
        report = await process_queue(db, router, concurrency=concurrency or settings.concurrency)
    finally:
        await router.aclose()
    with db.transaction() as s:
        if report.stopped:
            queue.stop_running_runs(s, report.stopped)
        queue.finish_idle_runs(s)
    return report


def attach_tier0(db: Database, router: Router) -> str:
    """Put the free local tier in front of tier 1 when a lead enabled it and it has earned it."""
    from triage.local import service as local
    from triage.local.embedder import shared

    cfg = local.tier0_config(db)
    if not cfg["enabled"]:
        return "off"
    embedder = shared()
    local.maybe_retrain(db, router.taxonomy, embedder)
    head = local.current_head(db, router.taxonomy, embedder)
    active, why = local.tier0_active(db, head.metrics)
    if active:
        router.tier0, router.tier0_threshold = local.LocalProvider(embedder, head), float(cfg["threshold"])
    return why


def classify_locally(db: Database, base: Settings | None = None, *, run_id: int | None = None,
                     on_ticket=None) -> int:
    """No API key: the local tier classifies; unsure tickets go to the review queue."""
    from triage.config_service import effective
    from triage.local import service as local
    from triage.local.embedder import shared

    settings, tax = effective(db, base)
    embedder = shared()
    local.maybe_retrain(db, tax, embedder)
    n = local.classify_queue_locally(db, tax, embedder, threshold=settings.threshold, run_id=run_id,
                                     worker=worker_name(), on_ticket=on_ticket)
    with db.transaction() as s:
        queue.finish_idle_runs(s)
    return n
