"""`triage report`: the routing story (the Routing page's figures) written as one HTML, PDF or JSON file."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

from triage import report
from triage import story as story_mod
from triage.cli.common import EXIT_OK, env_settings, open_db, settings_in_force
from triage.domain import money_text
from triage.spend.pricing import PriceTable


def cmd_report(args: argparse.Namespace) -> int:
    until = args.until or date.today()
    since = args.since or until - timedelta(days=29)
    db = open_db(env_settings(args))
    settings, _ = settings_in_force(db, args)
    st = story_mod.story(db, since, until, minutes_per_review=settings.minutes_per_review,
                         tier2_model=settings.tier2_model, prices=PriceTable.load(settings.prices_path))
    try:
        out = report.write(st, Path(args.out))
    except report.NoRenderer as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {out} ({since} to {until}, {st.current.tickets:,} tickets, spend "
          f"${money_text(st.current.total)} USD)")
    for line in st.headline:
        print(f"  {line}")
    return EXIT_OK
