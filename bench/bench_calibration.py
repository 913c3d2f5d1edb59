"""What calibrated escalation costs the people who wait: a review save (which now checks whether the maps are due for
a refit), a refit, and the Quality page's figures with a map in force. SQLite, a database of answered tickets.

    .venv/bin/python -m bench.bench_calibration [--tickets 20000] [--labels 5000]

Baselines in the same run: the same save through `review.correct` one ticket at a time (what `correct_many` did
before the check), and `quality.measure` before any map exists. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from db import calls
from db import labels as db_labels
from db.migrate import open_database
from db.models import Ticket
from tests.support.actors import LEAD, op
from triage import review, taxonomy
from triage.domain import OK, CallResult
from triage.quality import calibrate
from triage.quality import measure as quality
from triage.work import runs

TAX = taxonomy.default()


def build(url: str, n: int, n_labels: int) -> None:
    db = open_database(url)
    imp = runs.start_run(db, [(None, f"ticket {i}: text") for i in range(n)], source="seed", actor=LEAD)
    rnd = random.Random(1)
    truth = {}
    with db.transaction() as s:
        for tid in imp.ticket_ids:
            conf = round(rnd.uniform(0.8, 0.99), 3)
            truth[tid] = "billing" if rnd.random() < conf - 0.25 else "account"  # over-confident
            calls.record_call(s, tid, imp.run_id, CallResult(1, "claude-haiku-5-5", OK, category="billing",
                                                             confidence=conf))
    with db.transaction() as s:
        rows = {t.id: t.version for t in s.scalars(select(Ticket))}
        db_labels.set_operator_labels(s, [(tid, rows[tid], truth[tid]) for tid in imp.ticket_ids[:n_labels]],
                                        operator="seed", file="seed.csv")
    db.dispose()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=20_000)
    ap.add_argument("--labels", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'b.db'}"
        build(url, args.tickets, args.labels)
        db = open_database(url)
        print(f"{args.tickets} answered tickets, {args.labels} of them operator-labelled (SQLite)")
        base_q = min(timed(lambda: quality.measure(db)) for _ in range(3))
        fit = timed(lambda: calibrate.calibrate(db, actor=LEAD))
        print(f"refit (read the labelled answers, fit, 5-fold check, store): {fit * 1000:.0f} ms")
        with_q = min(timed(lambda: quality.measure(db)) for _ in range(3))
        print(f"quality.measure with a map in force: {with_q * 1000:.0f} ms, before any map {base_q * 1000:.0f} ms "
              f"(x{with_q / base_q:.2f})")
        with db.read() as s:
            unlabelled = [(t.id, t.version) for t in s.scalars(select(Ticket).where(Ticket.label_source.is_(None))
                                                                  .limit(40))]
        first, second = unlabelled[:20], unlabelled[20:]

        def one_by_one() -> None:
            for tid, version in first:
                review.correct(db, tid, "billing", actor=op("o"), expected_version=version, taxonomy=TAX)

        base = timed(one_by_one)
        save = timed(lambda: review.correct_many(db, [(t, "billing", v) for t, v in second], actor=op("o"),
                                                 taxonomy=TAX))
        check = timed(lambda: calibrate.refresh(db, trigger="bench", by="bench"))
        assert len(second) == 20
        print(f"a review save of 20 labels: {save * 1000:.0f} ms with the refit check (nothing due), "
              f"{base * 1000:.0f} ms without (x{save / base:.2f}); the check alone {check * 1000:.1f} ms")
        db.dispose()


if __name__ == "__main__":
    main()
