"""The `triage` subcommands that drive the queue and report on it (the parser lives in triage.cli)."""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

from triage import export, ingest, runs, services
from triage.router import FAILED
from triage.settings import Settings

EXIT_INPUT, EXIT_KEY, EXIT_FAILED, EXIT_BUDGET = 2, 3, 4, 5


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.counts: dict[str, int] = {}

    def __call__(self, _tid, outcome) -> None:
        self.done += 1
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            states = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  {states} ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _exit_code(report) -> int:
    if report.stopped:
        print(f"stopped: {report.stopped}", file=sys.stderr)
        return EXIT_BUDGET if report.stop_kind == "budget" else EXIT_KEY
    return EXIT_FAILED if report.states.get(FAILED) else 0


def _open_db(settings: Settings):
    from db.migrate import open_database
    return open_database(settings.database_url)


def _settings(args) -> Settings:
    s = Settings.from_env()
    _apply_args(s, args)
    return s


def _apply_args(s: Settings, args) -> Settings:
    if getattr(args, "threshold", None) is not None:
        s.threshold = args.threshold
    if getattr(args, "concurrency", None) is not None:
        s.concurrency = args.concurrency
    return s


def _effective(db, settings: Settings, args):
    """Settings saved from the dashboard over the environment, and the command line over both."""
    from triage.config_service import effective

    merged, taxonomy = effective(db, settings)
    return _apply_args(merged, args), taxonomy


def cmd_classify(args) -> int:
    settings = _settings(args)
    batch = ingest.read_path(args.path, args.format, text_column=args.text_column, id_column=args.id_column)
    for line in batch.skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not batch.items:
        print("no tickets to classify", file=sys.stderr)
        return EXIT_INPUT
    db = _open_db(settings)
    settings, taxonomy = _effective(db, settings, args)
    local = args.tier == "local" or not settings.has_api_key
    if local and args.tier in ("haiku", "sonnet"):
        raise services.NoApiKey(services.NO_KEY_MESSAGE)
    if local and args.tier != "local":
        print("No ANTHROPIC_API_KEY: classifying with the local model; unsure tickets go to the review queue.",
              file=sys.stderr)
    if args.batch and (local or args.tier == "sonnet"):
        raise ValueError("--batch sends tier 1 (Haiku) through the Message Batches API: it needs an API key "
                         "and --tier auto or haiku")
    router = None if local else services.build_router(settings, taxonomy, mode=args.tier,
                                                      threshold=settings.threshold)
    source = "stdin" if args.path == "-" else args.path
    imported = runs.start_run(db, batch.items, source=source, started_by=args.operator,
                                  mode="local" if local else args.tier, threshold=settings.threshold,
                                  reclassify=args.reclassify)
    print(f"{len(imported.new_ids)} new tickets, {len(imported.known_ids)} already known (run {imported.run_id})",
          file=sys.stderr)
    blocked = None if local else runs.budget_block(db, settings.monthly_budget_usd)
    if blocked:
        print(f"error: {blocked}. The tickets are saved as pending; `triage worker` classifies them once the "
              "budget allows.", file=sys.stderr)
        return EXIT_BUDGET
    progress = Progress(len(set(imported.ticket_ids)), args.progress or sys.stderr.isatty())
    if local:
        services.classify_locally(db, settings, run_id=imported.run_id, on_ticket=progress)
        report = runs.RunReport(imported.run_id, states=runs.run_progress(db, imported.run_id).states)
    elif args.batch:
        from triage import batches

        batch_id = services.run(router, batches.submit(db, router, imported.run_id))
        print(f"submitted batch {batch_id} (half price; results within 24 h)", file=sys.stderr)
        if args.no_wait:
            print("collect the results later with: triage collect", file=sys.stderr)
            return 0
        report = _collect_run(db, settings, taxonomy, imported.run_id, batch_id, args.poll, progress)
    else:
        if args.tier == "auto":
            services.attach_tier0(db, router)
        report = services.run(router, services.process_queue(db, router, run_id=imported.run_id,
                                                    concurrency=settings.concurrency, on_ticket=progress))
    progress.close()
    runs.finish_run(db, report)
    rows = runs.run_rows(db, imported.run_id, imported.ticket_ids)
    if args.out:
        export.write(rows, args.out)
    else:
        sys.stdout.write(export.to_jsonl(rows))
    states = ", ".join(f"{v} {k}" for k, v in sorted(report.states.items()))
    cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    print(f"done: {states}; cost ${cost:.6f}", file=sys.stderr)
    return _exit_code(report)


def _collect_run(db, settings, taxonomy, run_id: int, batch_id: str | None, poll: float, on_ticket=None):
    """Wait for a run's batch, record it, then send the unsure tickets to tier 2 (live)."""
    from triage import batches

    while batch_id:
        router = services.build_router(settings, taxonomy, threshold=settings.threshold)
        counts = services.run(router, batches.collect(db, router, run_id, batch_id))
        if counts is not None:
            print(f"batch {batch_id}: {counts['answered']} answered, {counts['failed']} failed, "
                  f"{counts['escalating']} going to tier 2", file=sys.stderr)
            break
        time.sleep(poll)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold)
    report = services.run(router, services.process_queue(db, router, run_id=run_id,
                                                         concurrency=settings.concurrency, on_ticket=on_ticket))
    report.states = runs.run_progress(db, run_id).states
    return report


def cmd_collect(args) -> int:
    settings = _settings(args)
    db = _open_db(settings)
    settings, taxonomy = _effective(db, settings, args)
    open_batches = runs.open_batches(db)
    if not open_batches:
        print("no batches waiting", file=sys.stderr)
        return 0
    code = 0
    for run_id, batch_id in open_batches:
        report = _collect_run(db, settings, taxonomy, run_id, batch_id, args.poll)
        runs.finish_run(db, report)
        print(f"run {run_id}: " + ", ".join(f"{v} {k}" for k, v in sorted(report.states.items())), file=sys.stderr)
        code = max(code, _exit_code(report))
    return code


def cmd_escalate(args) -> int:
    settings = _settings(args)
    if not args.id and args.below is None:
        print("say which tickets: --id N [N ...] or --below CONFIDENCE", file=sys.stderr)
        return EXIT_INPUT
    db = _open_db(settings)
    ids = list(args.id or [])
    if args.below is not None:
        ids += runs.ticket_ids_below(db, args.below)
    ids = list(dict.fromkeys(ids))
    if not ids:
        print("no tickets match", file=sys.stderr)
        return 0
    settings, taxonomy = _effective(db, settings, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold)
    run_id = runs.create_run(db, started_by=args.operator, source="escalate", mode="sonnet",
                             threshold=settings.threshold)
    progress = Progress(len(ids), args.progress or sys.stderr.isatty())
    report = services.run(router, services.escalate_tickets(db, router, ids, run_id=run_id,
                                                            concurrency=settings.concurrency, on_ticket=progress))
    progress.close()
    runs.finish_run(db, report)
    sys.stdout.write(export.to_jsonl(runs.run_rows(db, run_id, ids)))
    return EXIT_KEY if _exit_code(report) == EXIT_KEY else 0


def cmd_retry(args) -> int:
    settings = _settings(args)
    db = _open_db(settings)
    settings, taxonomy = _effective(db, settings, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold)
    run_id, n = runs.requeue_failed(db, started_by=args.operator)
    if not n:
        print("no failed tickets to retry", file=sys.stderr)
        return 0
    print(f"retrying {n} failed tickets (run {run_id})", file=sys.stderr)
    progress = Progress(n, args.progress or sys.stderr.isatty())
    report = services.run(router, services.process_queue(db, router, run_id=run_id, concurrency=settings.concurrency,
                                                on_ticket=progress))
    progress.close()
    runs.finish_run(db, report)
    print(json.dumps(report.states), file=sys.stderr)
    return _exit_code(report)


def cmd_worker(args) -> int:
    settings = _settings(args)
    db = _open_db(settings)
    if not settings.has_api_key:
        print("no API key: the local model classifies; unsure tickets go to the review queue", file=sys.stderr)
        total = 0
        while True:
            total += services.classify_locally(db, settings)
            if args.once:
                print(f"the local model classified {total} tickets", file=sys.stderr)
                return 0
            time.sleep(args.poll)
    settings, taxonomy = _effective(db, settings, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold)
    services.attach_tier0(db, router)
    report = services.run(router, services.run_worker(db, router, concurrency=settings.concurrency, once=args.once,
                                                      poll_seconds=args.poll,
                                                      monthly_budget_usd=settings.monthly_budget_usd))
    if report.stopped:
        return _exit_code(report)
    print(f"worker processed {report.processed} tickets", file=sys.stderr)
    return 0


def cmd_spend(args) -> int:
    db = _open_db(Settings.from_env())
    rows = runs.spend(db, args.since, args.until)
    if args.json:
        total = sum((r["cost_usd"] for r in rows), Decimal(0))
        print(json.dumps({"rows": rows, "total_usd": str(total)}, default=str))
        return 0
    if not rows:
        print("no model calls recorded yet")
        return 0
    print(f"{'day':<10}  {'model':<22} {'tier':>4} {'calls':>7} {'in tok':>10} {'out tok':>9} {'cost USD':>12}")
    for r in rows:
        print(f"{r['day']:<10}  {r['model']:<22} {r['tier']:>4} {r['calls']:>7} {r['input_tokens']:>10} "
              f"{r['output_tokens']:>9} {r['cost_usd']:>12.6f}")
    total = sum((r["cost_usd"] for r in rows), Decimal(0))
    print(f"{'total':<10}  {'':<22} {'':>4} {sum(r['calls'] for r in rows):>7} {'':>10} {'':>9} {total:>12.6f}")
    return 0


def cmd_runs(args) -> int:
    rows = runs.recent_runs(_open_db(Settings.from_env()), args.limit)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    states = ("classified", "escalated", "needs_review", "failed", "pending")
    print(f"{'run':>4}  {'started (UTC)':<16}  {'by':<12} {'status':<9} {'tickets':>7}  " +
          "  ".join(f"{x[:9]:>9}" for x in states) + "  source")
    for r in rows:
        print(f"{r['run']:>4}  {r['started_at']:%Y-%m-%d %H:%M}  {r['started_by'][:12]:<12} {r['status']:<9} "
              f"{r['tickets']:>7}  " + "  ".join(f"{r.get(x, 0):>9}" for x in states) + f"  {r['source']}")
    return 0


def cmd_db(args) -> int:
    from db.migrate import upgrade
    settings = Settings.from_env()
    upgrade(settings.database_url)
    print("database is at the latest schema")
    return 0
