"""Importing a labelled file: 12,000 labels into a database of 10,000 tickets, SQLite, what a lead waits for.

    .venv/bin/python -m bench.bench_labels [--rows 10000] [--retrain]

The file: half the known tickets by id (text edited in the helpdesk), half by text only, 2,000 new tickets,
plus 200 rows with a label outside the taxonomy and 100 without text. Timed: reading, matching and writing
(`triage label` without the retraining), then the same file again (nothing to write). Baseline in the same run:
the same labels on a copy of the database through `review.correct_many`, the review queue's bulk path (one short
transaction per ticket). `--retrain` also times the retraining, which must embed every new ticket once (about
60 tickets/s on 2 cores). Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from db.migrate import open_database
from db.models import Ticket
from tests.support.actors import LEAD, lead, op
from triage import ingest, labels, review, taxonomy
from triage.work import runs

TAX = taxonomy.default()
WORDS = ["invoice", "refund", "crash", "login", "password", "export", "dashboard", "billing", "card", "upgrade",
         "slow", "error", "sync", "mobile", "account", "locked", "feature", "request", "dark", "mode", "report"]


def text_of(i: int) -> str:
    return f"ticket {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 14))


def build(url: str, n: int) -> None:
    db = open_database(url)
    runs.start_run(db, [(f"H-{i}" if i % 2 == 0 else None, text_of(i)) for i in range(n)], source="seed", actor=LEAD)
    db.dispose()


def labelled_file(n: int) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "text", "label"])
    for i in range(n):
        label = TAX.names[i % len(TAX.names)]
        if i % 2 == 0:
            w.writerow([f"H-{i}", text_of(i) + " (edited)", label])  # by id
        else:
            w.writerow(["", "  " + text_of(i).replace(" ", "  "), label])  # by text, whitespace differs
    for i in range(n, n + n // 5):
        w.writerow([f"N-{i}", text_of(i), TAX.names[i % len(TAX.names)]])  # new
    for i in range(200):
        w.writerow([f"U-{i}", text_of(10 * n + i), "refunds"])  # outside the taxonomy
    for i in range(100):
        w.writerow([f"E-{i}", "", "billing"])  # no text
    return out.getvalue()


def timed_import(url: str, text: str, retrain: bool) -> tuple[float, float | None, labels.LabelsApplied]:
    db = open_database(url)
    t = time.perf_counter()
    batch = ingest.parse_labelled(text, "csv")
    result = labels.apply(db, labels.plan(db, batch, TAX, "bench.csv"), actor=lead("bench"))
    took = time.perf_counter() - t
    learned = None
    if retrain:
        t = time.perf_counter()
        result.learned = labels.learn(db, TAX)
        learned = time.perf_counter() - t
    db.dispose()
    return took, learned, result


def baseline(url: str, n: int) -> float:
    """The same labels on the known tickets through the review queue's bulk path (new tickets it cannot add)."""
    db = open_database(url)
    with db.read() as s:
        tickets = s.execute(select(Ticket.id, Ticket.version).order_by(Ticket.id)).all()
    changes = [(tid, TAX.names[i % len(TAX.names)], v) for i, (tid, v) in enumerate(tickets[:n])]
    t = time.perf_counter()
    result = review.correct_many(db, changes, actor=op("bench"), taxonomy=TAX)
    took = time.perf_counter() - t
    assert len(result.saved) == n, result.conflicts[:3]
    db.dispose()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000, help="known tickets (the file adds a fifth as new)")
    ap.add_argument("--retrain", action="store_true", help="also time the retraining (embeds the new tickets)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "a.db", Path(tmp) / "b.db"
        build(f"sqlite:///{first}", args.rows)
        shutil.copy(first, second)
        text = labelled_file(args.rows)
        took, learned, result = timed_import(f"sqlite:///{first}", text, args.retrain)
        again, _, repeat = timed_import(f"sqlite:///{first}", text, False)
        base = baseline(f"sqlite:///{second}", args.rows)
    c = result.plan.counts()
    print(f"file: {c['rows']:,} rows -> {c['matched']:,} matched ({c['by_id']:,} by id, {c['by_text']:,} by text), "
          f"{c['new']:,} new, {c['unknown_label']} unknown labels, {c['no_text']} without text")
    print(f"import (read, match, write {result.labelled + result.created:,} labels and audit rows): {took:.2f} s "
          f"= {(result.labelled + result.created) / took:,.0f} labels/s")
    print(f"the same file again (nothing to write: {repeat.labelled + repeat.created}): {again:.2f} s")
    per_label, per_base = took / (result.labelled + result.created), base / args.rows
    print(f"baseline, review.correct_many on the {args.rows:,} known tickets: {base:.2f} s "
          f"= {1 / per_base:,.0f} labels/s; the import is {per_base / per_label:.1f}x faster per label")
    if learned is not None:
        print(f"retraining afterwards (embeds {c['new']:,} new tickets once): {learned:.1f} s; "
              f"{result.learned.text() if result.learned else ''}")


if __name__ == "__main__":
    main()
