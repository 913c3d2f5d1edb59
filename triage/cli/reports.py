"""The commands that only read: spend, runs, eval (eval may call the API, but never writes the database)."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

from triage import taxonomy as taxonomy_mod
from triage.cli.common import EXIT_OK, actor, env_settings, exit_code, open_db, say, settings_in_force
from triage.domain import CLASSIFIED, ESCALATED, FAILED, LOCAL, NEEDS_REVIEW, PENDING, money_text
from triage.spend import reports as reporting
from triage.work import runs


def cmd_spend(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    rows = reporting.spend(db, args.since, args.until)
    total = sum((r["cost_usd"] for r in rows), Decimal(0))
    extra = reporting.estimates(db, args.since, args.until)
    if args.json:
        out = [{"day": r["period"], "model": r["model"], "tier": r["tier"], "calls": r["calls"],
                "requests": r["requests"], "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
                "cost_usd": money_text(r["cost_usd"])} for r in rows]
        print(json.dumps({"rows": out, "total_usd": money_text(total),
                          "interrupted_calls": extra.interrupted_calls,
                          "interrupted_estimate_usd": money_text(extra.interrupted_usd),
                          "unknown_cost_calls": extra.unknown_cost_calls, "pilot_usd": money_text(extra.pilot_usd)}))
        return EXIT_OK
    if not rows and not extra.lines:
        print("no model calls recorded yet")
        return EXIT_OK
    print(f"{'day':<10}  {'model':<22} {'tier':>4} {'calls':>7} {'in tok':>10} {'out tok':>9} {'cost USD':>12}")
    for r in rows:
        print(f"{r['period']:<10}  {r['model']:<22} {r['tier']:>4} {r['calls']:>7} {r['input_tokens']:>10} "
              f"{r['output_tokens']:>9} {r['cost_usd']:>12.6f}")
    print(f"{'total':<10}  {'':<22} {'':>4} {sum(r['calls'] for r in rows):>7} {'':>10} {'':>9} {total:>12.6f}")
    requests, calls = sum(r["requests"] for r in rows), sum(r["calls"] for r in rows)
    if requests != calls:  # several tickets per request (--per-call): a call here is one ticket's share
        print(f"{requests} API requests carried those {calls} ticket calls ({calls / requests:.1f} tickets a request)")
    for line in extra.lines:
        print(line)
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    rows = runs.recent_runs(open_db(env_settings(args)), args.limit)
    if args.json:
        print(json.dumps(rows, default=str))
        return EXIT_OK
    states = [str(x) for x in (CLASSIFIED, ESCALATED, NEEDS_REVIEW, FAILED, PENDING)]
    print(f"{'run':>4}  {'started (UTC)':<16}  {'by':<12} {'status':<9} {'tickets':>7}  " +
          "  ".join(f"{x[:9]:>9}" for x in states) + "  source")
    for r in rows:
        print(f"{r['run']:>4}  {r['started_at']:%Y-%m-%d %H:%M}  {r['started_by'][:12]:<12} {r['status']:<9} "
              f"{r['tickets']:>7}  " + "  ".join(f"{r.get(x, 0):>9}" for x in states) + f"  {r['source']}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from triage import evaluation

    settings = env_settings(args)
    taxonomy = taxonomy_mod.load(settings.taxonomy_path)
    db = None
    if args.route != LOCAL or args.use_db:
        db = open_db(settings)
        settings, taxonomy = settings_in_force(db, args)
    done = evaluation.evaluate(db, settings, taxonomy, args.gold, route=args.route, actor=actor(args),
                               text_column=args.text_column, label_column=args.label_column)
    paid = done.paid
    if paid is not None and paid.unanswered:
        say(f"error: {paid.report.stopped or 'the run stopped'}. {paid.unanswered} of {len(paid.predicted)} gold "
            "tickets unanswered, so no score (`triage retry` or `triage worker` finishes them)")
    if paid is not None:
        say(f"run {paid.run_id}: {len(paid.predicted)} gold tickets, cost ${money_text(done.cost)} (on the "
            "books like any run)")
    if done.scores is None:
        assert paid is not None  # only a paid run leaves tickets unanswered
        return exit_code(paid.report, pending=paid.unanswered)
    print(json.dumps(done.scores) if args.json else evaluation.format_report(done.scores, args.route))
    return EXIT_OK
