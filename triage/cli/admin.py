"""The commands that maintain: train the local tier, fill a demo database, migrate the schema, fill in what old
tickets lack."""

from __future__ import annotations

import argparse
import json

from triage.cli.common import EXIT_OK, actor, env_settings, open_db, settings_in_force


def cmd_train(args: argparse.Namespace) -> int:
    from triage.local import tier as local
    from triage.local.embedder import shared

    db = open_db(env_settings(args))
    _, taxonomy = settings_in_force(db, args)
    head = local.retrain(db, taxonomy, shared(), actor=actor(args))
    m = head.metrics
    print(json.dumps(m, indent=2) if args.json else
          f"trained on {m['n_train']} examples ({m.get('labels') or 'no labels yet'}); out-of-fold accuracy "
          f"{m['oof_accuracy']:.3f}, ECE {m['oof_ece']:.3f}" +
          (f"; on operator labels {m['human_accuracy']:.3f} (n={m['human_n']})" if m.get("human_n") else ""))
    silent = m.get("never_predicted") or []
    if silent and not args.json:
        shown = taxonomy.shown
        print(f"never predicted out of fold ({len(silent)} of {len(taxonomy.names)} categories; more labels or a "
              f"clearer description help): " + ", ".join(shown.get(c, c) for c in silent))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from triage import demo

    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    summary = demo.fill(db, taxonomy, actor=actor(args), settings=settings)
    print(f"demo data: {summary['tickets']} sample tickets; {summary['api_simulated']} with simulated "
          f"Haiku/Sonnet calls (marked demo_), {summary['local']} classified by the local model, "
          f"{summary['corrected']} operator corrections. Open the dashboard: bash scripts/dashboard")
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    if args.action == "backfill":  # old tickets' masked counts and languages, in short batches (triage/work/backfill)
        from triage.work import backfill

        settings = env_settings(args)
        print(backfill.run(open_db(settings), base=settings).describe())
        return EXIT_OK
    upgrade(env_settings(args).database_url)
    print("database is at the latest schema")
    return EXIT_OK
