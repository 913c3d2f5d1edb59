"""The service layer: every use case that may spend money, as the CLI, the dashboard's worker and scripts call it.

The rules live here, once: which router a run gets (its models must be priced, tier 0 only when a lead turned it
on and it earned it), the spending caps (a guard asked before every paid call), and how runs start and end.
Entry points parse input and print; they hold no rules, SQL or HTTP of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import anthropic

from db import queue
from db.engine import Database
from triage import budget, pipeline, runs
from triage.access import Action, Actor, require
from triage.errors import BudgetReached, NoApiKey
from triage.pipeline import OnTicket, RunReport
from triage.pricing import PriceTable
from triage.providers.anthropic_provider import AnthropicProvider
from triage.router import Router
from triage.settings import Settings, effective
from triage.taxonomy import Taxonomy

T = TypeVar("T")

NO_KEY_MESSAGE = (
    "No ANTHROPIC_API_KEY is set, so Claude Haiku and Sonnet cannot be called. "
    "Set it in the environment (export ANTHROPIC_API_KEY=sk-ant-...) and run again."
)


def make_client(settings: Settings) -> anthropic.AsyncAnthropic:
    if not settings.has_api_key:
        raise NoApiKey(NO_KEY_MESSAGE)
    return anthropic.AsyncAnthropic(
        api_key=settings.api_key, base_url=settings.base_url, max_retries=0, timeout=settings.request_timeout,
    )


def build_router(settings: Settings, taxonomy: Taxonomy, *, mode: str = "auto", threshold: float | None = None,
                 client: anthropic.AsyncAnthropic | None = None, prices: PriceTable | None = None,
                 db: Database | None = None) -> Router:
    """A router for Claude. Refuses models the price table cannot price (their calls could not be put on the
    books). With `db`, the spending caps guard every paid call and tier 0 is attached when it has earned it."""
    prices = prices or PriceTable.load(settings.prices_path)
    for model in (settings.tier1_model, settings.tier2_model):
        prices.require(model)
    client = client or make_client(settings)

    def provider(model: str, tier: int) -> AnthropicProvider:
        return AnthropicProvider(client, model, tier, prices, max_tokens=settings.max_tokens,
                                 effort=settings.effort, max_attempts=settings.max_attempts)

    router = Router(provider(settings.tier1_model, 1), provider(settings.tier2_model, 2), taxonomy,
                    threshold=settings.threshold if threshold is None else threshold, mode=mode)
    if db is not None:
        router.guard = budget.BudgetGuard(db, settings.caps)
        if mode == "auto":
            attach_tier0(db, router)
    return router


def run(router: Router, coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run for entry points: the router's HTTP clients are closed before the loop ends."""
    async def main() -> T:
        try:
            return await coro
        finally:
            await router.aclose()
    return asyncio.run(main())


def classify_run(db: Database, router: Router, run_id: int, *, actor: Actor, concurrency: int = 8,
                 on_ticket: OnTicket | None = None) -> RunReport:
    """Classify one run's pending tickets live, then mark the run finished or stopped."""
    require(actor, Action.CLASSIFY)
    report = run(router, pipeline.process_queue(db, router, run_id=run_id, concurrency=concurrency,
                                                on_ticket=on_ticket))
    runs.finish_run(db, report)
    return report


def escalate(db: Database, router: Router, ticket_ids: Sequence[int], *, actor: Actor, concurrency: int = 8,
             on_ticket: OnTicket | None = None) -> RunReport:
    """Ask tier 2 about these tickets now (as a run of their own, started by `actor`), whatever tier 1 said."""
    require(actor, Action.ESCALATE)
    run_id = runs.create_run(db, started_by=actor.identity, source="escalate", mode="sonnet",
                             threshold=router.threshold)
    report = run(router, pipeline.escalate_tickets(db, router, ticket_ids, run_id=run_id, concurrency=concurrency,
                                                   on_ticket=on_ticket))
    runs.finish_run(db, report)
    return report


def retry_failed(db: Database, router: Router, *, actor: Actor, concurrency: int = 8,
                 on_ticket: OnTicket | None = None) -> RunReport | None:
    """Queue every failed ticket again under a new run and classify them (answers already paid for are reused).
    None when nothing had failed."""
    run_id, n = runs.requeue_failed(db, actor=actor, threshold=router.threshold)
    if not n:
        return None
    return classify_run(db, router, run_id, actor=actor, concurrency=concurrency, on_ticket=on_ticket)


def run_worker(db: Database, router: Router, settings: Settings, *, actor: Actor, once: bool = False,
               poll_seconds: float = 2.0, stop: asyncio.Event | None = None) -> RunReport:
    """Drain the queue (every run's pending tickets), polling for more unless `once`."""
    require(actor, Action.CLASSIFY)
    async def before_pass() -> None:
        await asyncio.to_thread(budget.check, db, settings.caps)

    report = run(router, pipeline.drain(db, router, concurrency=settings.concurrency, once=once,
                                        poll_seconds=poll_seconds, stop=stop, before_pass=before_pass))
    _settle_runs(db, report)
    return report


async def work_once(db: Database, base: Settings | None = None, *, concurrency: int | None = None,
                    client: anthropic.AsyncAnthropic | None = None) -> RunReport:
    """One pass of the dashboard's background worker with the settings in force now (a lead may have edited the
    taxonomy, models, threshold or budget since the last pass). It takes no actor: it only works what people
    allowed to queue work put on the queue (start_run, request_escalation check who they are)."""
    settings, tax = effective(db, base)
    try:
        await asyncio.to_thread(budget.check, db, settings.caps)
    except BudgetReached as exc:
        return RunReport(None, stopped=str(exc), stop_kind="budget")
    router = build_router(settings, tax, client=client, db=db)
    try:
        report = await pipeline.process_queue(db, router, concurrency=concurrency or settings.concurrency)
    finally:
        await router.aclose()
    _settle_runs(db, report)
    return report


def _settle_runs(db: Database, report: RunReport) -> None:
    """Runs drained by a worker end too: stopped (with why) when the pass stopped, finished when nothing of
    theirs is left pending."""
    with db.transaction() as s:
        if report.stopped and report.stop_kind == "key":
            queue.stop_running_runs(s, report.stopped)
        queue.finish_idle_runs(s)


def attach_tier0(db: Database, router: Router) -> str:
    """Put the free local tier in front of tier 1 when a lead enabled it and it has earned it."""
    from triage.local import tier as local
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
                     on_ticket: OnTicket | None = None) -> int:
    """No API key: the local tier classifies; unsure tickets go to the review queue."""
    from triage.local import tier as local
    from triage.local.embedder import shared

    settings, tax = effective(db, base)
    embedder = shared()
    local.maybe_retrain(db, tax, embedder)
    n = local.classify_queue_locally(db, tax, embedder, threshold=settings.threshold, run_id=run_id,
                                     worker=pipeline.worker_name(), on_ticket=on_ticket)
    with db.transaction() as s:
        queue.finish_idle_runs(s)
    return n
