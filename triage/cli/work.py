"""The commands that work the queue and may spend money: classify, collect, escalate, retry, worker."""

from __future__ import annotations

import argparse
import json
import sys
import time

from db.engine import Database
from triage import export, ingest
from triage.alerts import service as alerts
from triage.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    actor,
    env_settings,
    exit_code,
    open_db,
    open_in_force,
    progress_bar,
    say,
    say_all,
    settings_in_force,
)
from triage.errors import ApiUnreachable, InputError
from triage.settings import Settings
from triage.spend import budget
from triage.work import backfill, classify, runs, services

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
    say_all(services.recover(db).notes)


def cmd_classify(args: argparse.Namespace) -> int:
    _check_flags(args)
    batch = ingest.read_path(args.path, args.format, text_column=args.text_column, id_column=args.id_column,
                             requester_column=args.requester_column)
    say_all(batch.report)
    if not batch.items:
        say("no tickets to classify")
        return EXIT_INPUT
    progress = progress_bar(args, 0)  # its total once the run is started
    at = open_in_force(args)
    started = classify.start(at.db, at.settings, at.taxonomy, batch.items, actor=at.actor, route=args.route,
                             batch=args.batch, reclassify=args.reclassify, requesters=batch.requesters,
                             source="stdin" if args.path == "-" else args.path)
    say_all(started.notices)
    say(f"{started.new} new tickets, {started.known} already known (run {started.run_id})")
    progress.total = started.tickets
    summary = classify.finish(at.db, at.settings, at.taxonomy, started, actor=at.actor, on_ticket=progress,
                              wait=not args.no_wait, poll=args.poll, say=say)
    if summary.waiting:
        progress.close()
        return EXIT_OK
    if args.out:
        export.write(summary.rows, args.out)
    else:
        sys.stdout.write(export.to_jsonl(summary.rows))
    progress.close()
    say_all([summary.line, *summary.notes])
    return exit_code(summary.report, pending=summary.pending)


def cmd_collect(args: argparse.Namespace) -> int:
    """Check every open batch, record the ended ones, wait for the rest unless --no-wait; then classify live what
    the collected batches left (tier 2, expired tickets)."""
    _check_flags(args)
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    done = classify.collect(db, settings, taxonomy, actor=actor(args), wait=not args.no_wait, poll=args.poll,
                            say=say)
    if not done.news:
        say("no batches waiting")
    if done.still_open and args.no_wait:
        say(f"{done.still_open} batches still running: `triage collect` again later")
    code = ApiUnreachable.exit_code if done.unreachable else EXIT_OK
    for report in done.finished:
        say(f"run {report.run_id}: " + ", ".join(f"{v} {k}" for k, v in sorted(report.states.items())))
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
        with alerts.watching(db, settings):
            while True:
                total += (done := services.classify_locally(db, settings))
                if not done:  # idle: old tickets' masked counts and languages, a batch at a time
                    backfill.when_idle(db, settings)
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
