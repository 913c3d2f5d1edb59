"""The commands that work the queue and may spend money: classify, collect, escalate, retry, worker."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal

from db.engine import Database
from triage import export, ingest
from triage.access import Actor
from triage.cli.common import (
    EXIT_BUDGET,
    EXIT_INPUT,
    EXIT_OK,
    actor,
    env_settings,
    exit_code,
    open_db,
    progress_bar,
    settings_in_force,
)
from triage.domain import PENDING
from triage.errors import ApiUnreachable, BudgetReached, InputError, NoApiKey
from triage.settings import Settings
from triage.spend import budget
from triage.taxonomy import Taxonomy
from triage.work import runs, services
from triage.work.host import worker_name
from triage.work.pipeline import OnTicket, RunReport

MAX_ID = 2**63 - 1  # the largest id a database integer holds


def _check_flags(args: argparse.Namespace) -> None:
    """Reject bad arguments before anything is read, stored or billed."""
    bad_ids = [i for i in getattr(args, "id", None) or [] if not 1 <= i <= MAX_ID]
    if bad_ids:
        raise InputError(f"no ticket with id {bad_ids[0]} (ticket ids are whole numbers from 1 to {MAX_ID})")
    if getattr(args, "concurrency", None) is not None and args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if getattr(args, "threshold", None) is not None and not 0 <= args.threshold <= 1:
        raise InputError("--threshold is a confidence between 0 and 1")
    if getattr(args, "out", None):
        export.check_destination(args.out)


def _budget_notice(db: Database, settings: Settings) -> None:
    warning = budget.standing(db, settings.caps).warning if settings.caps.any else None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _recover(db: Database) -> None:
    """Free what dead processes of this host held before starting, and say so."""
    done = services.recover(db)
    if done.released:
        print(f"released {done.released} tickets held by a process that is gone; they are classified again",
              file=sys.stderr)
    if done.lost:
        print(f"{done.lost} calls of a process that is gone were in flight: counted as probably billed at their "
              "worst case (`triage spend`)", file=sys.stderr)


def _held_elsewhere(db: Database, ticket_ids: list[int]) -> int:
    held = runs.held_by_others(db, ticket_ids, worker_name())
    for worker, n in held.items():
        if worker.startswith("batch:"):
            batch = worker.removeprefix("batch:")
            which = f"the Message Batch of run {batch[4:]}" if batch.startswith("run-") else f"Message Batch {batch}"
            print(f"{n} of these tickets wait for {which}: `triage collect` records them once it has ended",
                  file=sys.stderr)
        else:
            print(f"{n} of these tickets are being classified by another process ({worker}): their results are "
                  "not in this output; `triage runs` shows when that run is done", file=sys.stderr)
    return sum(held.values())


HELD_WAIT_S = 120.0  # how long classify waits for its tickets another live process is classifying


def _wait_for_others(db: Database, ticket_ids: list[int]) -> bool:
    """Wait (up to HELD_WAIT_S) while other live processes (not Message Batches) classify some of these tickets,
    so that their results are in this run's output. True when none is held elsewhere any more."""
    limit = HELD_WAIT_S
    deadline, told = time.monotonic() + limit, False
    while True:
        held = sum(n for w, n in runs.held_by_others(db, ticket_ids, worker_name()).items()
                   if not w.startswith("batch:"))
        if not held:
            return True
        if time.monotonic() >= deadline:
            return False
        if not told:
            print(f"waiting for {held} of these tickets that another process is classifying (up to {limit:.0f} s)",
                  file=sys.stderr)
            told = True
        time.sleep(0.5)


def cmd_classify(args: argparse.Namespace) -> int:
    _check_flags(args)
    settings = env_settings(args)
    batch = ingest.read_path(args.path, args.format, text_column=args.text_column, id_column=args.id_column,
                             requester_column=args.requester_column)
    for line in batch.report:
        print(line, file=sys.stderr)
    if not batch.items:
        print("no tickets to classify", file=sys.stderr)
        return EXIT_INPUT
    db = open_db(settings)
    settings, taxonomy = settings_in_force(db, args)
    local = args.tier == "local" or not settings.has_api_key
    if local and args.tier in ("haiku", "sonnet"):
        raise NoApiKey(services.NO_KEY_MESSAGE)
    if local and args.tier != "local":
        print("No ANTHROPIC_API_KEY: classifying with the local model; unsure tickets go to the review queue.",
              file=sys.stderr)
    if args.batch and (local or args.tier == "sonnet"):
        raise InputError("--batch sends tier 1 (Haiku) through the Message Batches API: it needs an API key "
                         "and --tier auto or haiku")
    router = None if local else services.build_router(settings, taxonomy, mode=args.tier,
                                                      threshold=settings.threshold, db=db)
    _recover(db)
    source = "stdin" if args.path == "-" else args.path
    imported = runs.start_run(db, batch.items, source=source, actor=actor(args),
                              mode="local" if local else args.tier, threshold=settings.threshold,
                              reclassify=args.reclassify, per_call=None if local else settings.per_call,
                              requesters=batch.requesters if batch.has_requesters else None)
    run_id = imported.run_id
    assert run_id is not None  # start_run always makes a run; the assert tells the type checker
    print(f"{len(imported.new_ids)} new tickets, {len(imported.known_ids)} already known (run {run_id})",
          file=sys.stderr)
    progress = progress_bar(args, len(set(imported.ticket_ids)))
    if router is None:
        services.classify_locally(db, settings, run_id=run_id, on_ticket=progress)
        progress_now = runs.run_progress(db, run_id)
        report = RunReport(run_id, states=progress_now.states if progress_now else {})
    else:
        _budget_notice(db, settings)
        try:
            budget.check(db, settings.caps)
            if args.batch:
                from triage.work import batches

                batch_id = services.run(router, batches.submit(db, router, run_id, actor=actor(args)))
                print(f"submitted batch {batch_id} (half price; results within 24 h)", file=sys.stderr)
                if args.no_wait:
                    print("collect the results later with: triage collect", file=sys.stderr)
                    return EXIT_OK
                report = _collect_run(db, settings, taxonomy, run_id, batch_id, args.poll, actor(args),
                                      progress)
            else:
                report = services.classify_run(db, router, run_id, actor=actor(args),
                                               concurrency=settings.concurrency, on_ticket=progress)
                if not report.stopped and _wait_for_others(db, imported.ticket_ids) \
                        and runs.take_back(db, imported.ticket_ids, run_id):  # another process gave some back
                    router = services.build_router(settings, taxonomy, mode=args.tier, threshold=settings.threshold,
                                                   db=db)  # the first pass closed its HTTP client
                    report = services.classify_run(db, router, run_id, actor=actor(args),
                                                   concurrency=settings.concurrency, on_ticket=progress)
        except BudgetReached as exc:
            runs.stop_run(db, run_id, str(exc))
            print(f"error: {exc}. The tickets are saved as pending; `triage worker` classifies them once the "
                  "budget allows.", file=sys.stderr)
            return EXIT_BUDGET
    progress.close()
    runs.finish_run(db, report)
    rows = runs.run_rows(db, run_id, imported.ticket_ids, actor=actor(args))
    if args.out:
        export.write(rows, args.out)
    else:
        sys.stdout.write(export.to_jsonl(rows))
    states: dict[str, int] = {}
    for r in {r["ticket_id"]: r for r in rows}.values():
        states[r["status"]] = states.get(r["status"], 0) + 1
    cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    summary = ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
    pending = states.get(PENDING, 0)
    print(f"{'unfinished' if pending or report.stopped else 'done'}: {summary}; cost ${cost:.6f}", file=sys.stderr)
    _held_elsewhere(db, imported.ticket_ids)
    return exit_code(report, pending=pending)


def _collect_run(db: Database, settings: Settings, taxonomy: Taxonomy, run_id: int, batch_id: str | None,
                 poll: float, who: Actor, on_ticket: OnTicket | None = None) -> RunReport:
    """Wait for a run's batch, record it, then classify live what is left: tier 2 for the unsure tickets, and
    any ticket the batch gave back (expired, or the batch gone). Raises ApiUnreachable when the API stays away."""
    from triage.work import batches

    last = None
    while True:
        router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
        news = services.run(router, batches.check(db, router, run_id, actor=who))
        if news.message != last:
            print(f"run {run_id}: {news.message}", file=sys.stderr)
            last = news.message
        if not news.open:
            break
        time.sleep(poll)
    return _live_pass(db, settings, taxonomy, run_id, who, on_ticket)


def _live_pass(db: Database, settings: Settings, taxonomy: Taxonomy, run_id: int, who: Actor,
               on_ticket: OnTicket | None = None) -> RunReport:
    router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
    report = services.classify_run(db, router, run_id, actor=who, concurrency=settings.concurrency,
                                   on_ticket=on_ticket)
    progress_now = runs.run_progress(db, run_id)
    report.states = progress_now.states if progress_now else report.states
    return report


def cmd_collect(args: argparse.Namespace) -> int:
    """Check every open batch (one failing never stops the others), record the ended ones, and wait for the rest
    unless --no-wait; then classify live what the collected batches left (tier 2, expired tickets)."""
    from triage.work import batches

    _check_flags(args)
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    waiting = [r.run_id for r in batches.open_batch_runs(db)]
    if not waiting:
        print("no batches waiting", file=sys.stderr)
        return EXIT_OK
    code, done = EXIT_OK, []
    while waiting:
        router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
        still = []
        for news in services.run(router, batches.check_open(db, router, waiting, actor=actor(args))):
            print(f"run {news.run_id}: {news.message}", file=sys.stderr)
            if news.state == "unreachable":
                code = max(code, ApiUnreachable.exit_code)
            elif news.open:
                still.append(news.run_id)
            elif news.state in ("collected", "gone"):
                done.append(news.run_id)
        waiting = still
        if waiting and getattr(args, "no_wait", False):
            print(f"{len(waiting)} batches still running: `triage collect` again later", file=sys.stderr)
            break
        if waiting:
            time.sleep(args.poll)
    for run_id in done:
        try:
            report = _live_pass(db, settings, taxonomy, run_id, actor(args))
        except BudgetReached as exc:
            report = RunReport(run_id, stopped=str(exc), stop_kind="budget")
        runs.finish_run(db, report)
        print(f"run {run_id}: " + ", ".join(f"{v} {k}" for k, v in sorted(report.states.items())), file=sys.stderr)
        code = max(code, exit_code(report))
    return code


def cmd_escalate(args: argparse.Namespace) -> int:
    _check_flags(args)
    if not args.id and args.below is None:
        print("say which tickets: --id N [N ...] or --below CONFIDENCE", file=sys.stderr)
        return EXIT_INPUT
    db = open_db(env_settings(args))
    ids = list(args.id or [])
    if args.below is not None:
        ids += runs.ticket_ids_below(db, args.below)
    ids = list(dict.fromkeys(ids))
    if not ids:
        print("no tickets match", file=sys.stderr)
        return EXIT_OK
    settings, taxonomy = settings_in_force(db, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
    _recover(db)
    _budget_notice(db, settings)
    progress = progress_bar(args, len(ids))
    report = services.escalate(db, router, ids, actor=actor(args), concurrency=settings.concurrency,
                               on_ticket=progress, again=args.again)
    progress.close()
    if report.skipped:
        print(f"left {report.skipped} tickets alone: Sonnet already decided them (--again to ask it again)",
              file=sys.stderr)
    for batch in dict.fromkeys(report.held.values()):
        held = [t for t, b in report.held.items() if b == batch]
        print(f"left {len(held)} tickets alone ({', '.join(map(str, held[:10]))}): {batch} holds them and brings "
              "their answer; escalate them once `triage collect` has recorded it", file=sys.stderr)
    sys.stdout.write(export.to_jsonl(runs.run_rows(db, report.run_id or 0, ids, actor=actor(args))))
    return exit_code(report, pending=0)


def cmd_retry(args: argparse.Namespace) -> int:
    _check_flags(args)
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
    _recover(db)
    _budget_notice(db, settings)
    progress = progress_bar(args, 0)
    report = services.retry_failed(db, router, actor=actor(args), concurrency=settings.concurrency,
                                   on_ticket=progress)
    progress.close()
    if report is None:
        print("no failed tickets to retry", file=sys.stderr)
        return EXIT_OK
    print(f"retried the failed tickets (run {', '.join(map(str, report.run_ids))}): {json.dumps(report.states)}",
          file=sys.stderr)
    return exit_code(report)


def cmd_worker(args: argparse.Namespace) -> int:
    _check_flags(args)
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    if not settings.has_api_key:
        print("no API key: the local model classifies; unsure tickets go to the review queue", file=sys.stderr)
        total = 0
        while True:
            total += services.classify_locally(db, settings)
            if args.once:
                print(f"the local model classified {total} tickets", file=sys.stderr)
                return EXIT_OK
            time.sleep(args.poll)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold, db=db)
    _recover(db)
    _budget_notice(db, settings)
    report = services.run_worker(db, router, settings, actor=actor(args), once=args.once, poll_seconds=args.poll)
    print(f"worker processed {report.processed} tickets", file=sys.stderr)
    return exit_code(report, pending=0)
