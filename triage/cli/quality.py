"""`triage quality`: the Quality page's figures (per model and tier, the confusion matrices, the what-if)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from triage.cli.common import EXIT_OK, actor, env_settings, open_db, settings_in_force
from triage.errors import InputError
from triage.quality import calibrate, metrics, threshold
from triage.quality import fewshot as quality_fewshot
from triage.quality import groups as quality_groups
from triage.quality import measure as quality


def cmd_quality(args: argparse.Namespace) -> int:
    if args.apply and args.target is None:
        raise InputError("--apply needs --target: the accuracy the threshold must reach")
    if args.target is not None:
        threshold.check_target(args.target)
        if args.since is not None:
            raise InputError("--target replays every stored answer; leave out --since")
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    result = quality.measure(db, since=args.since, classes=taxonomy.names)
    by_size = quality_groups.by_group_size(db, since=args.since)
    rec, applied_from = None, None
    if args.target is not None:
        if args.apply:
            applied_from = settings.threshold
            rec = threshold.apply_recommended(db, args.target, actor=actor(args))
        else:
            rec = threshold.recommend_stored(db, args.target)
    if args.json:
        out = {**result.to_dict(), "by_group_size": [x.to_dict() for x in by_size]}
        if rec is not None:
            out["recommendation"] = {**rec.to_dict(), "applied": args.apply, "threshold_before": applied_from}
        print(json.dumps(out, default=str))
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
        if len(t["confusion"]["labels"]) <= FULL_MATRIX_UP_TO:
            print(format_confusion(t["confusion"], f"{t['name']} ({t['model']})"))
        print(format_confused(t["confusion"], f"{t['name']} ({t['model']})"))
    print()
    print(format_calibrations(result.calibrations))
    if result.whatif:
        print()
        print(f"what-if (Haiku's threshold on its {result.whatif_on}, replayed on stored answers):")
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
    for c in result.fewshot:
        print("\nfew-shot: " + quality_fewshot.describe(c))
    if rec is not None:
        print()
        print(f"target accuracy {threshold.percent(args.target)} (threshold on the {rec.on}): {rec.message}")
        if args.apply:
            print(f"applied: the threshold is now {rec.threshold:.2f} (was {applied_from:.2f}), recorded in the "
                  f"audit trail as {actor(args).identity}")
        elif rec.threshold is not None:
            print(f"to apply it: triage quality --target {args.target} --apply")
    return EXIT_OK


def format_calibrations(rows: list[dict[str, Any]]) -> str:
    """Per model: the calibration in force (and what it makes of each confidence level) or why there is none."""
    lines = ["calibration (stated confidence -> observed chance of being right, fitted on operator labels):"]
    for c in rows:
        m = c["in_force"]
        if m is None:
            why = c["missing"] or "enough labels; fitted at the next label change or by `triage calibrate`"
            lines.append(f"  {c['model']}: {why}")
            continue
        after = "" if m["ece_after"] is None else f" -> {m['ece_after']:.3f} on answers it did not see"
        lines.append(f"  {c['model']}: calibration #{m['id']} in force, fitted on {m['n']} labels "
                     f"({m['trigger']}, by {m['fitted_by']}, {m['fitted_at'][:16].replace('T', ' ')} UTC); "
                     f"calibration error {m['ece_before']:.3f}{after}; refits at {c['refit_at']} labels")
        lines += [f"    {lv['text']}" for lv in c["levels"]]
    return "\n".join(lines)


def cmd_calibrate(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    fitted = calibrate.calibrate(db, actor=actor(args))
    result = quality.measure(db)
    if args.json:
        print(json.dumps({"fitted": [c.id for c in fitted], "calibrations": result.calibrations}, default=str))
        return EXIT_OK
    print(f"refitted {len(fitted)} model{'s' if len(fitted) != 1 else ''}" +
          (f": {', '.join(f'{c.model} (#{c.id}, {c.n} labels)' for c in fitted)}" if fitted else ""))
    print(format_calibrations(result.calibrations))
    return EXIT_OK


FULL_MATRIX_UP_TO = 10  # categories; past that the matrix is in --json only, the pairs and recalls are printed
TOP_PAIRS = 10


def format_confused(c: dict[str, Any], title: str) -> str:
    """The most confused pairs and every category's recall (worst first): readable at 77 categories."""
    pairs = metrics.confused_pairs(c, TOP_PAIRS)
    lines = [f"{title}: most confused (operator's label -> the model's, tickets, share of the label)"]
    lines += [f"  {p['truth']} -> {p['said']}: {p['n']} ({p['share']:.0%})" for p in pairs] or ["  none"]
    recalls = metrics.recall_by_category(c)
    lines.append(f"{title}: recall per category, worst first (n = the operator's tickets)")
    width = max([8, *(len(r["category"]) for r in recalls)])
    lines += [f"  {r['category']:<{width}} {r['recall']:>6.1%}  n={r['support']}" for r in recalls]
    if len(c["labels"]) > FULL_MATRIX_UP_TO:
        lines.append(f"  (the full {len(c['labels'])}x{len(c['labels'])} matrix: triage quality --json)")
    return "\n".join(lines)


def format_confusion(c: dict[str, Any], title: str) -> str:
    labels, matrix = c["labels"], c["matrix"]
    width = max(8, *(len(x) for x in labels)) + 1
    lines = [f"{title}: rows are the operator's label, columns the model's",
             " " * width + "".join(f"{x[:width - 1]:>{width}}" for x in labels)]
    lines += [f"{label:<{width}}" + "".join(f"{n:>{width}}" for n in row) for label, row in zip(labels, matrix,
                                                                                                   strict=True)]
    return "\n".join(lines)
