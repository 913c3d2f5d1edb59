"""`triage pilot`: the routes on a seeded sample of your own labelled history, within a cap (triage/work/pilot.py)."""

from __future__ import annotations

import argparse
import json

from triage.cli.common import EXIT_BUDGET, EXIT_OK, actor, env_settings, open_db, say, settings_in_force


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from triage.work.pilot import DEFAULT_PER_CALL, DEFAULT_SEED, DEFAULT_THRESHOLDS

    pi = sub.add_parser("pilot", help="try the routes on a sample of your labelled history, within a cap",
                        description="Draw a seeded random sample of a file of resolved tickets with their final "
                        "categories (CSV/JSON/JSONL, read like `triage eval --gold`) and run it through the routes "
                        "worth comparing: the local model; Haiku alone; Haiku -> Sonnet at the thresholds that matter "
                        "(Sonnet is asked once, at the highest, and each lower threshold derived from the same "
                        "answers); several tickets a request. Per route: accuracy against the file's labels with a "
                        "90%% Wilson interval and n, share escalated, share sent to review, cost per 1,000 tickets, "
                        "p95 latency, and with --volume the monthly API cost and reviewer hours (minutes_per_review). "
                        "The calls are recorded runs within the budget and the pilot's own --cap (reserved before "
                        "each request is sent: it stops cleanly at the cap and reports what it measured); its "
                        "tickets stay out of the review queue, Quality, the audit, the routing story and exports.")
    pi.add_argument("path", metavar="FILE", help="labelled file with text and label columns")
    pi.add_argument("--sample", type=int, required=True, metavar="N", help="how many rows to draw at random")
    pi.add_argument("--cap", required=True, metavar="USD", help="the most the pilot may spend, in dollars (e.g. 0.50)")
    pi.add_argument("--volume", type=int, metavar="TICKETS_PER_MONTH",
                    help="project each route's monthly API cost and reviewer hours at this many tickets a month")
    pi.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help=f"the sample's seed (default {DEFAULT_SEED}): the same file, N and seed draw the same rows")
    pi.add_argument("--thresholds", metavar="T,T,...",
                    help="thresholds to compare (default " + ",".join(f"{t:g}" for t in DEFAULT_THRESHOLDS) +
                    " and the one in force)")
    pi.add_argument("--per-call", type=int, metavar="N", help="tickets a request on the grouped route (default: the "
                    f"per_call setting when over 1, else {DEFAULT_PER_CALL})")
    pi.add_argument("--text-column", default="text", help="the column holding the ticket text (default: text)")
    pi.add_argument("--label-column", default="label", help="the column holding the final category (default: "
                    "label); a category's key or its name, in any case")
    pi.add_argument("--json", action="store_true", help="print one JSON object (per route: accuracy, low, high, n, "
                    "escalated_share, review_share, cost_per_1000_usd, p95_latency_ms, projected)")
    pi.add_argument("--operator", help="who runs it (default cli:<your OS user>)")
    pi.set_defaults(func=cmd_pilot)


def cmd_pilot(args: argparse.Namespace) -> int:
    from triage.work import pilot

    plan = pilot.Plan(args.sample, pilot.dollars(args.cap), args.volume, args.seed, pilot.thresholds(args.thresholds),
                      args.per_call, args.text_column, args.label_column)
    plan.check()
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    pilot_id = pilot.start(db, settings, taxonomy, args.path, plan, actor=actor(args))
    say(f"pilot {pilot_id}: {args.sample} tickets of {args.path}, cap ${plan.cap_usd}")
    done = pilot.run(db, settings, pilot_id, actor=actor(args))
    assert done is not None  # it was queued just now, by us
    print(json.dumps(done.figures) if args.json else pilot.format_result(done.figures))
    if done.stopped:
        say(f"stopped: {done.stopped}")
        return EXIT_BUDGET
    return EXIT_OK
