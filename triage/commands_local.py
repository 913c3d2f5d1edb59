"""The `triage` subcommands of the local tier: train, eval, demo."""

from __future__ import annotations

import json

from triage import services
from triage.commands import _effective, _open_db
from triage.settings import Settings


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
