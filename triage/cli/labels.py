"""`triage label FILE --operator NAME`: bring in labelled history as operator labels, then retrain the local tier."""

from __future__ import annotations

import argparse
import json

from triage import labels
from triage.access import cli_actor
from triage.cli.common import EXIT_INPUT, EXIT_OK, env_settings, open_db, settings_in_force


def cmd_label(args: argparse.Namespace) -> int:
    batch = labels.read_file(args.path, text_column=args.text_column, id_column=args.id_column,
                             label_column=args.label_column)
    db = open_db(env_settings(args))
    _, taxonomy = settings_in_force(db, args)
    plan = labels.plan(db, batch, taxonomy, labels.file_name(args.path))
    if args.dry_run or not plan.writes:
        if args.json:
            print(json.dumps({**plan.to_dict(), "dry_run": args.dry_run}))
        else:
            print("\n".join([plan.summary(), *plan.left_out(), *plan.merged_lines()]))
            print("dry run: nothing was written" if args.dry_run else
                  "nothing changed: every label is already there" if plan.unchanged else "nothing to import")
        return EXIT_INPUT if not plan.writes and not plan.unchanged else EXIT_OK
    result = labels.apply(db, plan, actor=cli_actor(args.operator))
    if not args.no_retrain and result.labelled + result.created:
        result.learned = labels.learn(db, taxonomy)
    if args.json:
        print(json.dumps(result.to_dict()))
        return EXIT_OK
    print("\n".join([plan.summary(), *plan.left_out(), *plan.merged_lines(), result.summary()]))
    for line in result.conflicts[:5]:
        print(f"not written: {line}")
    if result.learned:
        print(result.learned.text())
    return EXIT_OK
