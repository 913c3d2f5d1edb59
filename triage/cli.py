"""`triage ...`: classify, escalate, retry, spend, worker, db. Usable from a shell script or a cron job."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from decimal import Decimal

from triage import export, ingest, runs, services
from triage.router import FAILED, MODES
from triage.settings import Settings
from triage.taxonomy import TaxonomyError

EXIT_INPUT, EXIT_KEY, EXIT_FAILED = 2, 3, 4


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
        return EXIT_KEY
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
    router = None if local else services.build_router(settings, taxonomy, mode=args.tier,
                                                      threshold=settings.threshold)
    source = "stdin" if args.path == "-" else args.path
    imported = runs.start_run(db, batch.items, source=source, started_by=args.operator,
                                  mode="local" if local else args.tier, threshold=settings.threshold,
                                  reclassify=args.reclassify)
    print(f"{len(imported.new_ids)} new tickets, {len(imported.known_ids)} already known (run {imported.run_id})",
          file=sys.stderr)
    progress = Progress(len(set(imported.ticket_ids)), args.progress or sys.stderr.isatty())
    if local:
        services.classify_locally(db, settings, run_id=imported.run_id, on_ticket=progress)
        report = runs.RunReport(imported.run_id, states=runs.run_progress(db, imported.run_id).states)
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


def cmd_escalate(args) -> int:
    settings = _settings(args)
    if not args.id and args.below is None:
        print("say which tickets: --id N [N ...] or --below CONFIDENCE", file=sys.stderr)
        return EXIT_INPUT
    db = _open_db(settings)
    ids = list(args.id or [])
    if args.below is not None:
        from db import queue
        with db.read() as s:
            ids += queue.ticket_ids_below(s, args.below)
    ids = list(dict.fromkeys(ids))
    if not ids:
        print("no tickets match", file=sys.stderr)
        return 0
    settings, taxonomy = _effective(db, settings, args)
    router = services.build_router(settings, taxonomy, threshold=settings.threshold)
    with db.transaction() as s:
        from db import queue
        run_id = queue.create_run(s, started_by=args.operator, source="escalate", mode="sonnet",
                                    threshold=settings.threshold)
    progress = Progress(len(ids), args.progress or sys.stderr.isatty())
    report = services.run(router, services.escalate_tickets(db, router, ids, run_id=run_id,
                                                   concurrency=settings.concurrency, on_ticket=progress))
    progress.close()
    runs.finish_run(db, report)
    rows = runs.run_rows(db, run_id, ids)
    sys.stdout.write(export.to_jsonl(rows))
    if report.stopped:
        print(f"stopped: {report.stopped}", file=sys.stderr)
        return EXIT_KEY
    return 0


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
                                             poll_seconds=args.poll))
    if report.stopped:
        print(f"stopped: {report.stopped}", file=sys.stderr)
        return EXIT_KEY
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


def cmd_train(args) -> int:
    from triage.local import service as local
    from triage.local.embedder import shared

    db = _open_db(Settings.from_env())
    _, taxonomy = _effective(db, Settings.from_env(), args)
    head = local.retrain(db, taxonomy, shared())
    m = head.metrics
    print(json.dumps(m, indent=2) if args.json else
          f"trained on {m['n_train']} examples ({m.get('labels') or 'no labels yet'}); out-of-fold accuracy "
          f"{m['oof_accuracy']:.3f}, ECE {m['oof_ece']:.3f}" +
          (f"; on operator labels {m['human_accuracy']:.3f} (n={m['human_n']})" if m.get("human_n") else ""))
    return 0


def cmd_eval(args) -> int:
    from triage import evaluation

    settings = Settings.from_env()
    taxonomy = services.load_taxonomy(settings)
    if args.tier == "local" and args.use_db:
        db = _open_db(settings)
        settings, taxonomy = _effective(db, settings, args)
    gold = evaluation.read_gold(args.gold, taxonomy)
    if args.tier == "local":
        predicted, conf = evaluation.predict_local(gold, taxonomy, db if args.use_db else None)
    else:
        router = services.build_router(settings, taxonomy, mode=args.tier, threshold=settings.threshold)
        predicted, conf = evaluation.predict_router(gold, router, settings.concurrency)
    result = evaluation.score(gold.labels, predicted, conf, taxonomy.names)
    if args.json:
        print(json.dumps(result))
    else:
        print(evaluation.format_report(result, args.tier))
    return 0


def cmd_demo(args) -> int:
    from triage import demo

    settings = Settings.from_env()
    db = _open_db(settings)
    settings, taxonomy = _effective(db, settings, args)
    summary = demo.fill(db, taxonomy, settings=settings)
    print(f"demo data: {summary['tickets']} sample tickets; {summary['api_simulated']} with simulated "
          f"Haiku/Sonnet calls (marked demo_), {summary['local']} classified by the local model, "
          f"{summary['corrected']} operator corrections. Open the dashboard: bash scripts/dashboard")
    return 0


def cmd_runs(args) -> int:
    from triage import runs

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="triage", description="Classify support tickets with Claude Haiku, escalate "
                                "uncertain ones to Claude Sonnet, and track exact spend. Reads ANTHROPIC_API_KEY, "
                                "ANTHROPIC_BASE_URL and TRIAGE_DATABASE_URL (default sqlite:///data/triage.db).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, concurrency=True):
        sp.add_argument("--operator", default="cli", help="name recorded as who started the run")
        sp.add_argument("--threshold", type=float, help="escalate when tier-1 confidence is under this (default 0.7)")
        if concurrency:
            sp.add_argument("--concurrency", type=int, help="parallel API requests (default 8)")
        sp.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")

    c = sub.add_parser("classify", help="classify tickets from a file or stdin",
                       description="Classify tickets from CSV, JSON, JSONL or plain text (one per line). "
                       "Re-importing a file does not duplicate tickets; known tickets keep their labels.")
    c.add_argument("path", help="file to read, or - for stdin")
    c.add_argument("--format", choices=ingest.FORMATS, help="input format (default: from the file extension)")
    c.add_argument("--text-column", help="CSV column / JSON field with the ticket text (default: guessed)")
    c.add_argument("--id-column", help="CSV column / JSON field with your ticket id (default: guessed)")
    c.add_argument("--tier", choices=[*MODES, "local"], default="auto",
                   help="auto: Haiku, then Sonnet when unsure (default); haiku / sonnet: that model only; "
                   "local: the offline model only (the default when no API key is set)")
    c.add_argument("--out", help="write results to FILE.jsonl or FILE.csv (default: JSONL on stdout)")
    c.add_argument("--reclassify", action="store_true", help="classify known tickets again (new calls, new cost)")
    common(c)
    c.set_defaults(func=cmd_classify)

    e = sub.add_parser("escalate", help="ask Sonnet about tickets on demand",
                       description="Send tickets to tier 2 (Sonnet) whatever tier 1 said.")
    e.add_argument("--id", type=int, nargs="+", help="ticket ids (the ticket_id column of classify's output)")
    e.add_argument("--below", type=float, help="every uncorrected ticket whose confidence is under this")
    common(e)
    e.set_defaults(func=cmd_escalate)

    r = sub.add_parser("retry", help="classify failed tickets again")
    common(r)
    r.set_defaults(func=cmd_retry)

    w = sub.add_parser("worker", help="process the pending queue (several workers may share it)")
    w.add_argument("--once", action="store_true", help="exit when the queue is empty instead of polling")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between polls of an empty queue")
    common(w)
    w.set_defaults(func=cmd_worker)

    s = sub.add_parser("spend", help="spend by day and model, exact to the API's usage")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    s.add_argument("--until", type=date.fromisoformat, help="last day, YYYY-MM-DD (UTC)")
    s.set_defaults(func=cmd_spend)

    t = sub.add_parser("train", help="retrain the local model on the labels in the database")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="score a tier on a labelled file (the working database is not changed)",
                        description="Read CSV/JSON/JSONL with `text` and `label`, classify with the chosen tier, "
                        "print accuracy, macro-F1, per-category precision/recall, expected calibration error and "
                        "a coverage table (thresholds 0.50-0.95: share kept and accuracy on it).")
    ev.add_argument("--gold", required=True, help="labelled file with text and label columns")
    ev.add_argument("--tier", choices=["local", *MODES], default="local",
                    help="local (default), haiku, sonnet, or auto (the two-tier pipeline)")
    ev.add_argument("--use-db", action="store_true",
                    help="local tier: use the head trained on the working database (read only) instead of "
                    "the zero-shot one")
    ev.add_argument("--json", action="store_true", help="one JSON object: n, accuracy, macro_f1, ece, coverage, ...")
    ev.set_defaults(func=cmd_eval)

    dm = sub.add_parser("demo", help="fill an empty database with sample data for a demo")
    dm.set_defaults(func=cmd_demo)

    rn = sub.add_parser("runs", help="recent runs: who started them, from where, and their tickets' states")
    rn.add_argument("--limit", type=int, default=20)
    rn.add_argument("--json", action="store_true")
    rn.set_defaults(func=cmd_runs)

    d = sub.add_parser("db", help="database maintenance")
    d.add_argument("action", choices=["upgrade"], help="upgrade: apply migrations up to the latest schema")
    d.set_defaults(func=cmd_db)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError:
        raise
    except (ingest.IngestError, TaxonomyError, ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except services.NoApiKey as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_KEY
    except KeyboardInterrupt:
        print("interrupted: unfinished tickets stay pending; run `triage worker --once` to finish them",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
