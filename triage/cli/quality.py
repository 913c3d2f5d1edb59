"""`triage quality` and `triage calibrate`: the Quality page's figures (per model and tier, the confusion matrices,
the what-if) and the calibration refit."""

from __future__ import annotations

import argparse
import json

from triage.cli.common import EXIT_OK, actor, env_settings, open_db, settings_in_force
from triage.quality import calibrate, measure
from triage.quality import report as quality_report


def cmd_quality(args: argparse.Namespace) -> int:
    quality_report.check(target=args.target, apply=args.apply, since=args.since,
                         max_reviews_per_day=args.max_reviews_per_day)
    db = open_db(env_settings(args))
    settings, taxonomy = settings_in_force(db, args)
    done = quality_report.report(db, taxonomy, threshold_now=settings.threshold, since=args.since,
                                 target=args.target, apply=args.apply, actor=actor(args),
                                 max_reviews_per_day=args.max_reviews_per_day)
    print(json.dumps(done.to_dict(), default=str) if args.json else done.text())
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    fitted = calibrate.calibrate(db, actor=actor(args))
    result = measure.measure(db)
    if args.json:
        print(json.dumps({"fitted": [c.id for c in fitted], "calibrations": result.calibrations}, default=str))
        return EXIT_OK
    print(f"refitted {len(fitted)} model{'s' if len(fitted) != 1 else ''}" +
          (f": {', '.join(f'{c.model} (#{c.id}, {c.n} labels)' for c in fitted)}" if fitted else ""))
    print(quality_report.calibrations_text(result.calibrations))
    return EXIT_OK
