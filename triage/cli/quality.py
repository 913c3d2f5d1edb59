"""`triage quality`: the Quality page's figures (per model and tier, the confusion matrices, the what-if)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from triage import quality, quality_groups
from triage.cli.common import EXIT_OK, env_settings, open_db, settings_in_force


def cmd_quality(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    _, taxonomy = settings_in_force(db, args)
    result = quality.measure(db, since=args.since, classes=taxonomy.names)
    by_size = quality_groups.by_group_size(db, since=args.since)
    if args.json:
        print(json.dumps({**result.to_dict(), "by_group_size": [x.to_dict() for x in by_size]}))
        return EXIT_OK
    print(result.measured_on())
    if not result.per_tier:
        print("Correct or confirm tickets in the review queue, or import labels (`triage label`), to measure the "
              "models.")
        return EXIT_OK
    print()
    print(f"{'tier':>4}  {'model':<22} {'n':>6} {'accuracy':>9} {'macro-F1':>9} {'ECE':>6} {'says':>6}")
    for t in result.per_tier:
        print(f"{t['tier']:>4}  {t['model']:<22} {t['n']:>6} {t['accuracy']:>9.3f} {t['macro_f1']:>9.3f} "
              f"{t['ece']:>6.3f} {t['mean_confidence']:>6.2f}")
    for t in result.per_tier:
        print()
        print(format_confusion(t["confusion"], f"{t['name']} ({t['model']})"))
    if result.whatif:
        print()
        print("what-if (Haiku's threshold, replayed on stored answers):")
        print(f"{'threshold':>9} {'escalated':>10} {'accuracy':>9} {'replayed':>9} {'cost/ticket':>14}")
        for w in result.whatif:
            acc = "—" if w["accuracy"] is None else f"{w['accuracy']:.3f}"
            cost = "—" if w["cost_per_ticket"] is None else f"${w['cost_per_ticket']:.6f}"
            print(f"{w['threshold']:>9.2f} {w['escalation_rate']:>10.1%} {acc:>9} {w['replayed']:>9} {cost:>14}")
    if quality_groups.grouped_in_use(by_size):
        print()
        print("by tickets per request (each labelled ticket's latest answer from requests of that size):")
        print(f"{'model':<8} {'tickets/request':>15} {'n':>6} {'accuracy':>9} {'ECE':>6} {'says':>6}")
        for x in by_size:
            print(f"{x.name:<8} {x.band:>15} {x.n:>6} {x.accuracy:>9.3f} {x.ece:>6.3f} {x.mean_confidence:>6.2f}")
    f = result.flips
    if f["escalated"]:
        print(f"\nSonnet changed Haiku's label on {f['flipped']} of {f['escalated']} escalated tickets; the operator "
              f"sided with Sonnet on {f['sonnet_right']} and with Haiku on {f['haiku_right']}.")
    return EXIT_OK


def format_confusion(c: dict[str, Any], title: str) -> str:
    labels, matrix = c["labels"], c["matrix"]
    width = max(8, *(len(x) for x in labels)) + 1
    lines = [f"{title}: rows are the operator's label, columns the model's",
             " " * width + "".join(f"{x[:width - 1]:>{width}}" for x in labels)]
    lines += [f"{label:<{width}}" + "".join(f"{n:>{width}}" for n in row) for label, row in zip(labels, matrix,
                                                                                                   strict=True)]
    return "\n".join(lines)
