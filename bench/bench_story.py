"""The routing story at a million calls: the service behind the Routing page and `triage report`.

    .venv/bin/python -m bench.bench_story [--calls 1000000] [--dir DIR] [--repeat 3]

Seeds a database with `bench.bench_db.seed` (tickets = 0.3 x calls over 120 days, every 20th ticket labelled,
demo, error and batch calls; bulk inserts, then the rollups rebuilt the way the migration builds them), kept in
--dir as story_<calls>.db and reused. Then times, over the last 30 days: `triage.story.story` (the page's
figures, uncached: what the first visit costs; a rerun with nothing new reads only the data version, timed
too), the JSON and the HTML report. The baseline, in the same run, is the Spend page's own service
(`triage.spend.reports.spend_page`, per-day rollups) over the same days: the ratio says what the story costs
beyond it. Targets on the 2-core box: <= 1.0 s first, <= 0.3 s rerun. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.bench_db import seed
from db.migrate import open_database
from db.models import ModelCall
from triage import report
from triage import story as story_mod
from triage.spend import reports as reporting

SONNET = "claude-sonnet-5-5"


def timed(fn: Callable[[], object], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench_story_"))
    folder.mkdir(parents=True, exist_ok=True)
    db = open_database(f"sqlite:///{folder / f'story_{args.calls}.db'}")
    with db.read() as s:
        have = s.scalar(select(func.count()).select_from(ModelCall)) or 0
    if have != args.calls:
        t = time.perf_counter()
        seed(db, int(args.calls * 0.3), args.calls)
        print(f"seeded {args.calls:,} calls in {time.perf_counter() - t:.1f} s")
    end = date.today()
    start = end - timedelta(days=29)
    base = timed(lambda: reporting.spend_page(db, start, end, tier2_model=SONNET, today=end), args.repeat)
    first = timed(lambda: story_mod.story(db, start, end, minutes_per_review=2, tier2_model=SONNET, today=end),
                  args.repeat)
    rerun = timed(lambda: story_mod.data_version(db), args.repeat)
    st = story_mod.story(db, start, end, minutes_per_review=2, tier2_model=SONNET, today=end)
    as_json = timed(lambda: story_mod.as_json(st), args.repeat)
    as_html = timed(lambda: report.html_page(st), args.repeat)
    print(f"{args.calls:,} calls, {st.current.tickets:,} tickets in the last 30 days")
    print(f"baseline spend_page (same days): {base:.3f} s")
    print(f"story first (uncached): {first:.3f} s = {first / base:.2f}x baseline (target <= 1.0 s)")
    print(f"story rerun (data version only, the page's cache): {rerun:.3f} s (target <= 0.3 s)")
    print(f"report JSON: {as_json:.3f} s; HTML (plotly.js inline): {as_html:.3f} s")


if __name__ == "__main__":
    main()
