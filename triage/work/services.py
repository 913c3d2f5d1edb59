"""The service layer: every use case that may spend money, as the CLI, the dashboard's worker and scripts call it.

The rules live here, once: which router a run gets (its models must be priced, tier 0 only when a lead turned it
on and it earned it), the spending caps (a guard asked before every paid call), and how runs start and end.
Entry points parse input and print; they hold no rules, SQL or HTTP of their own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from db import ledger, queue
from db import runs as db_runs
from db.engine import Database
from triage.access import Action, Actor, require
from triage.alerts import service as alerts
from triage.errors import BudgetReached, InputError, NoApiKey
from triage.providers.anthropic_provider import AnthropicProvider, Client, new_client
from triage.quality import calibrate
from triage.routing.router import Router
from triage.settings import Settings, effective
from triage.spend import budget
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy
from triage.work import backfill, batches, pipeline, runs
from triage.work.host import hostname, pid_alive
from triage.work.pipeline import OnTicket, RunReport

T = TypeVar("T")
log = logging.getLogger(__name__)

NO_KEY_MESSAGE = (
    "No ANTHROPIC_API_KEY is set, so Claude Haiku and Sonnet cannot be called. "
    "Set it in the environment (export ANTHROPIC_API_KEY=sk-ant-...) and run again."
)


def build_router(settings: Settings, taxonomy: Taxonomy, *, mode: str = "auto", threshold: float | None = None,
                 client: Client | None = None, prices: PriceTable | None = None,
                 db: Database | None = None) -> Router:
    """A router for Claude. Refuses models the price table cannot price (their calls could not be put on the
    books) and a masking policy that cannot be built (fails closed). With `db`, the spending caps guard every paid
    call, the calibrations in force are applied to every answer, and tier 0 is attached when it has earned it."""
    prices = prices or PriceTable.load(settings.prices_path)
    for model in (settings.tier1_model, settings.tier2_model):
        prices.require(model)
    policy = settings.mask_policy
    guard = budget.BudgetGuard(db, settings.caps) if db is not None else None
    calibrations = calibrate.in_force(db) if db is not None else {}
    if client is None:
        if not settings.has_api_key:
            raise NoApiKey(NO_KEY_MESSAGE)
        client = new_client(settings.api_key, settings.base_url, settings.request_timeout)
    tier1, tier2 = (AnthropicProvider(client, model, tier, prices, max_tokens=settings.max_tokens,
                                      effort=settings.effort, max_attempts=settings.max_attempts)
                    for model, tier in ((settings.tier1_model, 1), (settings.tier2_model, 2)))
    router = Router(tier1, tier2, taxonomy, threshold=settings.threshold if threshold is None else threshold,
                    mode=mode, guard=guard, calibrations=calibrations, policy=policy)
    router.per_call, router.per_call_sonnet = settings.per_call, settings.per_call_sonnet
    if db is not None:
        if mode != "sonnet":
            attach_fewshot(db, router, settings.fewshot_k)
        if mode == "auto":
            attach_tier0(db, router)
    return router


def attach_fewshot(db: Database, router: Router, k: int) -> bool:
    """Give tier 1 its labelled examples when few-shot is on (k > 0) and operator labels exist; True when it did.
    Off, or with no labels yet, tier 1 sends exactly the request it sends without few-shot."""
    from triage.local import retrieval as fewshot_source
    from triage.local.embedder import ModelMissing

    tier1 = router.tier1
    if k <= 0 or not isinstance(tier1, AnthropicProvider):
        return False
    try:
        tier1.fewshot = fewshot_source.load(db, router.taxonomy, k, tier1.model, policy=router.gate.policy)
    except ModelMissing as exc:  # no local model to find the nearest examples with: classify without them
        log.warning("few-shot is on but the local embedding model is missing (%s): requests go without examples",
                    exc)
        return False
    return tier1.fewshot is not None


def run(router: Router, coro: Coroutine[Any, Any, T], halt: pipeline.Halt | None = None) -> T:
    """asyncio.run for entry points: the router's HTTP clients are closed before the loop ends. With `halt`, in the
    main thread, SIGTERM and SIGINT request a clean stop (a second one cuts the calls in flight off)."""
    handle = halt is not None and threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if handle else {}

    async def main() -> T:
        if halt is not None and handle:
            loop = asyncio.get_running_loop()
            for sig in previous:
                loop.add_signal_handler(sig, halt.request, f"stopped by signal {signal.Signals(sig).name}", sig)
        try:
            return await coro
        finally:
            await router.aclose()

    try:
        return asyncio.run(main())
    finally:
        for sig, handler in previous.items():  # the loop's exit resets them to the defaults
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Recovered:
    released: int  # tickets freed from dead workers' claims
    lost: int  # their calls in flight, now on the books as probably billed

    @property
    def notes(self) -> list[str]:
        """What was recovered, in words for the operator."""
        out = []
        if self.released:
            out.append(f"released {self.released} tickets held by a process that is gone; they are classified again")
        if self.lost:
            out.append(f"{self.lost} calls of a process that is gone were in flight: counted as probably billed at "
                       "their worst case (`triage spend`)")
        return out


def recover(db: Database) -> Recovered:
    """Before work starts: free the tickets of dead workers on this host, and put their calls in flight on the
    books as probably billed (answer lost), at their reserved worst case."""
    host = hostname()
    with db.read() as s:  # idle workers look often: write only when there is something to do
        if not queue.dead_claimers(s, host, pid_alive) and not ledger.needs_recovery(s, host, pid_alive):
            return Recovered(0, 0)
    with db.transaction() as s:
        released = queue.release_dead_claims(s, host, pid_alive)
        lost = ledger.mark_dead_lost(s, host, pid_alive)
    return Recovered(released, lost)


def has_work(db: Database) -> bool:
    """Whether a worker's pass would find anything to do: tickets to take, a run to finish, or a dead worker's
    claims or calls in flight to recover (see `recover`). One read: the dashboard's worker asks this every poll
    and makes its full pass (settings, budget, router, claims) only when the answer is yes."""
    host = hostname()
    with db.read() as s:
        return (queue.work_waiting(s) or bool(queue.dead_claimers(s, host, pid_alive))
                or ledger.needs_recovery(s, host, pid_alive))


def classify_run(db: Database, router: Router, run_id: int, *, actor: Actor, concurrency: int = 8,
                 on_ticket: OnTicket | None = None) -> RunReport:
    """Classify one run's pending tickets live, then mark the run finished or stopped."""
    require(actor, Action.CLASSIFY)
    halt = pipeline.Halt()
    report = run(router, pipeline.process_queue(db, router, run_id=run_id, concurrency=concurrency,
                                                on_ticket=on_ticket, halt=halt), halt)
    runs.finish_run(db, report)
    return report


def escalate(db: Database, router: Router, ticket_ids: Sequence[int], *, actor: Actor, concurrency: int = 8,
             on_ticket: OnTicket | None = None, again: bool = False) -> RunReport:
    """Ask tier 2 about these tickets now (as a run of their own, started by `actor`), whatever tier 1 said.
    Tickets tier 2 has already decided are left alone (`report.skipped`) unless `again`; tickets an open Message
    Batch holds are always left alone (`report.held`: ticket -> the batch), never billed twice."""
    require(actor, Action.ESCALATE)
    from triage.privacy import erased_among

    pilot = sorted(runs.pilots_among(db, ticket_ids))
    if pilot:  # a pilot's tickets are measured by the pilot alone, under its own cap
        raise InputError(f"ticket{'s' if len(pilot) > 1 else ''} {', '.join(map(str, pilot[:10]))} belong"
                         f"{'' if len(pilot) > 1 else 's'} to a pilot (kept apart from production): not escalated")

    erased = erased_among(db, ticket_ids)  # their text is gone: nothing to ask tier 2 about
    ids = [i for i in dict.fromkeys(ticket_ids) if i not in erased]
    skipped = len(erased)
    held = batches.held_by_batches(db, ids)  # their batch answer is on its way: asked live, billed twice
    ids = [i for i in ids if i not in held]
    if not again:
        decided = runs.decided_by_tier2(db, ids)
        ids, skipped = [i for i in ids if i not in decided], skipped + len(decided)
    run_id = runs.create_run(db, started_by=actor.identity, source="escalate", mode="sonnet",
                             threshold=router.threshold)
    halt = pipeline.Halt()
    report = run(router, pipeline.escalate_tickets(db, router, ids, run_id=run_id, concurrency=concurrency,
                                                   on_ticket=on_ticket, halt=halt), halt)
    report.skipped, report.held = skipped, held
    runs.finish_run(db, report)
    return report


def retry_failed(db: Database, router: Router, *, actor: Actor, concurrency: int = 8,
                 on_ticket: OnTicket | None = None) -> RunReport | None:
    """Queue every failed ticket again and classify them (answers already paid for are reused). Each keeps the
    mode and threshold of the run that queued it: one retry run per routing. None when nothing had failed."""
    queued = runs.requeue_failed(db, actor=actor, threshold=router.threshold)
    if not queued:
        return None
    total = RunReport(queued[0].run_id if len(queued) == 1 else None, run_ids=[q.run_id for q in queued])
    for q in queued:
        if total.stopped:  # the budget, the key or a signal stopped an earlier one: this one waits too
            runs.finish_run(db, RunReport(q.run_id, stopped=total.stopped))
            continue
        if q.mode == "local":
            classify_locally(db, run_id=q.run_id, on_ticket=on_ticket)
            report = RunReport(q.run_id)
        else:
            report = classify_run(db, router, q.run_id, actor=actor, concurrency=concurrency, on_ticket=on_ticket)
        total.add(report)
    total.states = runs.state_counts(db, total.run_ids)
    return total


def _local_runs_pass(db: Database, settings: Settings) -> int:
    """Tickets of runs that asked for the local tier are classified locally, whoever picks them up."""
    return classify_locally(db, settings, local_runs_only=True) if runs.has_pending(db, local=True) else 0


def run_worker(db: Database, router: Router, settings: Settings, *, actor: Actor, once: bool = False,
               poll_seconds: float = 2.0, stop: asyncio.Event | None = None) -> RunReport:
    """Drain the queue (every run's pending tickets), polling for more unless `once`."""
    require(actor, Action.CLASSIFY)
    local_done = 0

    async def before_pass() -> None:
        nonlocal local_done
        local_done += await asyncio.to_thread(_local_runs_pass, db, settings)
        await asyncio.to_thread(budget.check, db, settings.caps)
        router.calibrations = await asyncio.to_thread(calibrate.in_force, db)  # a long-lived worker follows refits
        if not await asyncio.to_thread(has_work, db):  # idle: fill in old tickets' masked counts and languages
            await asyncio.to_thread(backfill.when_idle, db, settings)

    recover(db)
    halt = pipeline.Halt()
    with alerts.watching(db, settings):  # the lead's alerts, checked and sent beside the queue work
        report = run(router, pipeline.drain(db, router, concurrency=settings.concurrency, once=once,
                                            poll_seconds=poll_seconds, stop=stop, before_pass=before_pass,
                                            halt=halt), halt)
    report.processed += local_done
    _settle_runs(db, report)
    return report


async def work_once(db: Database, base: Settings | None = None, *, concurrency: int | None = None,
                    client: Client | None = None, halt: pipeline.Halt | None = None) -> RunReport:
    """One pass of the dashboard's background worker with the settings in force now (a lead may have edited the
    taxonomy, models, threshold or budget since the last pass). It takes no actor: it only works what people
    allowed to queue work put on the queue (start_run, request_escalation check who they are). `halt`: the server
    is stopping (no more claims; the calls in flight get `halt.grace` seconds, then are booked as lost)."""
    settings, tax = effective(db, base)

    def before_pass() -> RunReport:
        """Recover after a crash, classify local-tier runs, and stop here when a cap is reached."""
        recover(db)
        local_done = _local_runs_pass(db, settings)
        try:
            budget.check(db, settings.caps)
        except BudgetReached as exc:
            blocked = RunReport(None, processed=local_done, stopped=str(exc), stop_kind="budget")
            _settle_runs(db, blocked)
            return blocked
        return RunReport(None, processed=local_done)

    first = await asyncio.to_thread(before_pass)  # one thread hop: the server may be shutting down around us
    if first.stopped or (halt is not None and halt.requested):
        return first
    local_done = first.processed
    router = build_router(settings, tax, client=client, db=db)
    try:
        report = await pipeline.process_queue(db, router, concurrency=concurrency or settings.concurrency, halt=halt)
    finally:
        await router.aclose()
    report.processed += local_done
    _settle_runs(db, report)
    return report


def _settle_runs(db: Database, report: RunReport) -> None:
    """Runs drained by a worker end too: stopped (with why) when the key was rejected, finished when nothing of
    theirs is left pending. A worker stopped by the budget or a signal leaves them running: their tickets wait,
    pending, for the next worker (after a budget stop, saying why)."""
    with db.transaction() as s:
        if report.stopped and report.stop_kind == "key":
            db_runs.stop_running_runs(s, report.stopped)
        if report.stopped and report.stop_kind == "budget":
            queue.explain_pending(s, None, report.stopped)
        db_runs.finish_idle_runs(s)


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
                     on_ticket: OnTicket | None = None, local_runs_only: bool = False) -> int:
    """No API key (or runs that asked for the local tier): the local tier classifies; unsure tickets go to the
    review queue."""
    from triage.local import tier as local
    from triage.local.embedder import shared

    settings, tax = effective(db, base)
    embedder = shared()
    local.maybe_retrain(db, tax, embedder)
    n = local.classify_queue_locally(db, tax, embedder, threshold=settings.threshold, run_id=run_id,
                                     worker=pipeline.worker_name(), on_ticket=on_ticket,
                                     local_runs_only=local_runs_only)
    with db.transaction() as s:
        db_runs.finish_idle_runs(s)
    return n
