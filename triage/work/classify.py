"""Starting and finishing a classification: the one service `triage classify` and the dashboard's Classify page
call, and the Message Batch collection `triage collect` and the dashboard's worker call.

A run's **route** (stored as `runs.mode`) is how its tickets are classified: `auto` (Haiku, then Sonnet when
unsure), `haiku` or `sonnet` (that model only), or `local` (the offline model, $0). It is chosen here and nowhere
else: without an API key every run is local, and a paid route asked for without a key is refused. `batch` is not a
route but how tier 1 is sent (the Message Batches API, half price, within 24 h): only on `auto` and `haiku`.

`start` checks the actor may classify before anything is read, recovers what dead processes of this host held,
builds the router (a model the price table cannot price, or a masking policy that cannot be built, refuses the run
before any ticket is imported), imports the tickets as a run and, for a caller that pays now, checks the budget.
A batch run started for the background worker (the dashboard) has its tickets held for the batch in the same
transaction, so no worker sends them live meanwhile; the worker submits it (`collect_open`).
`finish` classifies the run in this process and sums it up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NoReturn

from db.engine import Database
from triage import teams
from triage.access import Action, Actor, Role, require
from triage.domain import LOCAL, MODES, PENDING, ROUTES
from triage.errors import BudgetReached, InputError, NoApiKey
from triage.routing.router import Router
from triage.settings import Settings, effective
from triage.spend import budget
from triage.taxonomy import Taxonomy
from triage.work import batches, runs, services
from triage.work.host import worker_name
from triage.work.pipeline import OnTicket, RunReport

TEAMS_FILE = Actor("environment:TRIAGE_TEAMS", Role.LEAD)  # who the audit trail names for the file's table

Say = Callable[[str], None]  # where the service's words for the operator go (the CLI: stderr)
HELD_WAIT_S = 120.0  # how long `finish` waits for its tickets another live process is classifying
BATCH_ROUTES = ("auto", "haiku")  # the routes whose tier 1 may go through the Message Batches API


def _quiet(_message: str) -> None:
    """Say nothing (the default listener)."""


def routes(settings: Settings) -> tuple[str, ...]:
    """The routes a run may take with these settings: the paid ones need an API key, else only the local model."""
    return (*MODES, LOCAL) if settings.has_api_key else (LOCAL,)


def choose_route(settings: Settings, route: str | None, *, batch: bool = False) -> str:
    """The route a run takes: the one asked for (default `auto`), or `local` when there is no API key and no paid
    route was named. Raises NoApiKey for a paid route without a key, InputError for a batch off `auto`/`haiku`."""
    if route is not None and route not in ROUTES:
        raise InputError(f"the route is one of {', '.join(ROUTES)}, not {route!r}")
    if not settings.has_api_key and route in MODES and route != "auto":
        raise NoApiKey(services.NO_KEY_MESSAGE)
    chosen = route or "auto"
    if not settings.has_api_key:
        chosen = LOCAL
    if batch and chosen not in BATCH_ROUTES:
        raise InputError("a Message Batch sends tier 1 (Haiku) through the Message Batches API: it needs an API key "
                         "and the route auto or haiku")
    return chosen


@dataclass
class Started:
    """A run started by `start`: what `finish` needs, and what to tell the operator."""

    run_id: int
    route: str
    batch: bool
    ticket_ids: list[int]  # the input's tickets, in input order (repeats included)
    new: int
    known: int
    notices: list[str] = field(default_factory=list)
    router: Router | None = field(default=None, repr=False)  # built by `start` for a caller that pays now

    @property
    def tickets(self) -> int:
        return len(set(self.ticket_ids))


def start(db: Database, settings: Settings, taxonomy: Taxonomy, items: Sequence[tuple[str | None, str]], *,
          actor: Actor, source: str, route: str | None = None, batch: bool = False, reclassify: bool = False,
          per_call: int | None = None, background: bool = False,
          requesters: Sequence[str | None] | None = None) -> Started:
    """Import `items` as a run on its route, started by `actor` (see the module's docstring). `background`: the
    caller leaves the run to the background worker (the dashboard): no router is built and no budget checked
    here (the worker checks before each pass); a batch run is held for the worker to submit. Otherwise the caller
    pays now: a reached cap stops the run (its tickets saved as pending) and raises BudgetReached."""
    require(actor, Action.CLASSIFY)
    chosen = choose_route(settings, route, batch=batch)
    teams.load_environment(db, taxonomy, actor=TEAMS_FILE)  # a TRIAGE_TEAMS table no lead replaced: in force now
    notices = [] if chosen != LOCAL or route == LOCAL else [
        "No ANTHROPIC_API_KEY: classifying with the local model; unsure tickets go to the review queue."]
    router = None
    if not background:  # what dead processes of this host held is freed first (no ticket is imported yet)
        notices += services.recover(db).notes
    if chosen != LOCAL and not background:
        router = services.build_router(settings, taxonomy, mode=chosen, threshold=settings.threshold, db=db)
    imported = runs.start_run(db, items, source=source, actor=actor, mode=chosen, threshold=settings.threshold,
                              reclassify=reclassify, batch_queued=batch and background, requesters=requesters,
                              per_call=None if chosen == LOCAL else (per_call or settings.per_call))
    run_id = imported.run_id
    assert run_id is not None  # start_run always makes a run; the assert tells the type checker
    started = Started(run_id, chosen, batch, imported.ticket_ids, len(imported.new_ids), len(imported.known_ids),
                      notices, router)
    if router is not None:  # the caller pays now: a reached cap stops the run before anything is sent
        warning = budget.standing(db, settings.caps).warning if settings.caps.any else None
        if warning:
            notices.append(f"warning: {warning}")
        try:
            budget.check(db, settings.caps)
        except BudgetReached as exc:
            _stop_for_budget(db, run_id, exc)
    return started


def _stop_for_budget(db: Database, run_id: int, exc: BudgetReached) -> NoReturn:
    """A cap is reached before the run could be worked: it stops, its tickets saved as pending, and says so."""
    runs.stop_run(db, run_id, str(exc))
    raise BudgetReached(f"{exc}. The tickets are saved as pending (run {run_id}); `triage worker` classifies them "
                        "once the budget allows.") from None


@dataclass
class Summary:
    """How a run `finish`ed: its report, one result row per input ticket, their states and what the run cost."""

    run_id: int
    report: RunReport
    rows: list[runs.ResultRow]
    states: dict[str, int]
    cost: Decimal
    batch_id: str | None = None
    waiting: bool = False  # a batch submitted and not waited for: `collect` records it later
    notes: list[str] = field(default_factory=list)  # tickets of the input another process or batch still holds
    pending: int = field(init=False)  # the input's tickets still pending
    line: str = field(init=False)  # the one-line summary for the operator

    def __post_init__(self) -> None:
        self.pending = self.states.get(PENDING, 0)
        summary = ", ".join(f"{v} {k}" for k, v in sorted(self.states.items()))
        done = "unfinished" if self.pending or self.report.stopped else "done"
        self.line = f"{done}: {summary}; cost ${self.cost:.6f}"


def finish(db: Database, settings: Settings, taxonomy: Taxonomy, started: Started, *, actor: Actor,
           on_ticket: OnTicket | None = None, wait: bool = True, poll: float = 30.0, say: Say = _quiet) -> Summary:
    """Classify a started run in this process: locally, live (waiting for tickets another process holds and taking
    back what it gave up), or through a Message Batch (submitted, then, when `wait`, collected and its unsure
    tickets sent to tier 2 live). Ends the run and sums it up."""
    require(actor, Action.CLASSIFY)
    run_id, batch_id = started.run_id, None
    if started.router is None:
        services.classify_locally(db, settings, run_id=run_id, on_ticket=on_ticket)
        report = RunReport(run_id, states=runs.state_counts(db, [run_id]))
    else:
        try:
            if started.batch:
                batch_id = services.run(started.router, batches.submit(db, started.router, run_id, actor=actor))
                say(f"submitted batch {batch_id} (half price; results within 24 h)")
                if not wait:
                    say("collect the results later with: triage collect")
                    return Summary(run_id, RunReport(run_id), [], {}, Decimal(0), batch_id, waiting=True)
                report = _wait_for_batch(db, settings, taxonomy, run_id, actor, poll, say, on_ticket)
            else:
                report = _live(db, settings, taxonomy, started, actor, on_ticket, say)
        except BudgetReached as exc:
            _stop_for_budget(db, run_id, exc)
    runs.finish_run(db, report)
    rows = runs.run_rows(db, run_id, started.ticket_ids, actor=actor)
    states: dict[str, int] = {}
    unique = {r["ticket_id"]: r for r in rows}.values()  # a ticket repeated in the input counts once
    for r in unique:
        states[r["status"]] = states.get(r["status"], 0) + 1
    cost = sum((Decimal(r["cost_usd"]) for r in unique), Decimal(0))
    return Summary(run_id, report, rows, states, cost, batch_id, notes=held_elsewhere(db, started.ticket_ids))


def _live(db: Database, settings: Settings, taxonomy: Taxonomy, started: Started, actor: Actor,
          on_ticket: OnTicket | None, say: Say) -> RunReport:
    """The live pass, and a second one for tickets another process held and gave back meanwhile: first it waits
    (up to HELD_WAIT_S) while other live processes (not Message Batches) classify some of the input's tickets, so
    that their results are in this run's output."""
    assert started.router is not None  # the caller's branch; the assert tells the type checker
    report = services.classify_run(db, started.router, started.run_id, actor=actor,
                                   concurrency=settings.concurrency, on_ticket=on_ticket)
    if report.stopped:
        return report
    deadline, told = time.monotonic() + HELD_WAIT_S, False
    while held := sum(n for w, n in runs.held_by_others(db, started.ticket_ids, worker_name()).items()
                      if not w.startswith("batch:")):
        if time.monotonic() >= deadline:
            return report  # still held elsewhere: `finish` says so
        if not told:
            say(f"waiting for {held} of these tickets that another process is classifying (up to "
                f"{HELD_WAIT_S:.0f} s)")
            told = True
        time.sleep(0.5)
    if runs.take_back(db, started.ticket_ids, started.run_id):
        router = services.build_router(settings, taxonomy, mode=started.route, threshold=settings.threshold,
                                       db=db)  # the first pass closed its HTTP client
        report = services.classify_run(db, router, started.run_id, actor=actor, concurrency=settings.concurrency,
                                       on_ticket=on_ticket)
    return report


def held_elsewhere(db: Database, ticket_ids: Sequence[int]) -> list[str]:
    """Words for the tickets among these another process or an open Message Batch still holds."""
    out = []
    for worker, n in runs.held_by_others(db, ticket_ids, worker_name()).items():
        if worker.startswith("batch:"):
            batch = worker.removeprefix("batch:")
            which = f"the Message Batch of run {batch[4:]}" if batch.startswith("run-") else f"Message Batch {batch}"
            out.append(f"{n} of these tickets wait for {which}: `triage collect` records them once it has ended")
        else:
            out.append(f"{n} of these tickets are being classified by another process ({worker}): their results "
                       "are not in this output; `triage runs` shows when that run is done")
    return out


def _wait_for_batch(db: Database, settings: Settings, taxonomy: Taxonomy, run_id: int, actor: Actor, poll: float,
                    say: Say, on_ticket: OnTicket | None = None) -> RunReport:
    """Wait for a run's batch, record it, then classify live what is left: tier 2 for the unsure tickets, and any
    ticket the batch gave back (expired, or the batch gone). Raises ApiUnreachable when the API stays away."""
    last = None
    while True:
        router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
        news = services.run(router, batches.check(db, router, run_id, actor=actor))
        if news.message != last:
            say(f"run {run_id}: {news.message}")
            last = news.message
        if not news.open:
            break
        time.sleep(poll)
    return _live_rest(db, settings, taxonomy, run_id, actor, on_ticket)


def _live_rest(db: Database, settings: Settings, taxonomy: Taxonomy, run_id: int, actor: Actor,
               on_ticket: OnTicket | None = None) -> RunReport:
    """What a collected batch left, classified live (tier 2 for the unsure, the tickets it gave back)."""
    router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
    report = services.classify_run(db, router, run_id, actor=actor, concurrency=settings.concurrency,
                                   on_ticket=on_ticket)
    report.states = runs.state_counts(db, [run_id]) or report.states
    return report


@dataclass
class Collected:
    """What `collect` did: per run checked, its last news; per batch collected, how its run ended."""

    news: list[batches.BatchNews] = field(default_factory=list)
    finished: list[RunReport] = field(default_factory=list)
    still_open: int = 0
    unreachable: bool = False


def collect(db: Database, settings: Settings, taxonomy: Taxonomy, *, actor: Actor, wait: bool = True,
            poll: float = 30.0, say: Say = _quiet) -> Collected:
    """`triage collect`: check every open batch (one failing never stops the others), record the ended ones, and
    wait for the rest when `wait`; then classify live what the collected batches left (tier 2, expired tickets)."""
    require(actor, Action.CLASSIFY)
    out = Collected()
    waiting = [r.run_id for r in batches.open_batch_runs(db)]
    done = []
    while waiting:
        router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
        still = []
        for news in services.run(router, batches.check_open(db, router, waiting, actor=actor)):
            say(f"run {news.run_id}: {news.message}")
            out.news.append(news)
            out.unreachable |= news.state == "unreachable"
            if news.open:
                still.append(news.run_id)
            elif news.state in ("collected", "gone"):
                done.append(news.run_id)
        waiting, out.still_open = still, len(still)
        if not waiting or not wait:
            break
        time.sleep(poll)
    for run_id in done:
        try:
            report = _live_rest(db, settings, taxonomy, run_id, actor)
        except BudgetReached as exc:
            report = RunReport(run_id, stopped=str(exc), stop_kind="budget")
        runs.finish_run(db, report)
        out.finished.append(report)
    return out


def collect_open(db: Database, settings: Settings | None, *, actor: Actor) -> list[batches.BatchNews]:
    """For the dashboard's background worker: one check of every open batch with the settings in force (a queued
    economy run is submitted). Each run is recorded with its own route and threshold; `actor` is who the server's
    worker acts as."""
    require(actor, Action.CLASSIFY)
    if not batches.open_batch_runs(db):
        return []
    merged, taxonomy = effective(db, settings)
    router = services.build_router(merged, taxonomy, threshold=merged.threshold, db=db)
    return services.run(router, batches.check_open(db, router, actor=actor))
