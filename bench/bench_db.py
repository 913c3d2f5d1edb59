"""Dashboard queries on a large database, against a naive load-everything-into-pandas baseline.

    .venv/bin/python -m bench.bench_db [--calls 1000000] [--tickets 300000] [--url sqlite:///...]

Seeds a fresh database (SQLite by default) with tickets and model calls spread over 120 days, then times:
spend by day over 90 days (target < 300 ms), a review-queue page of 50 with filters (target < 100 ms), and
the header counts. Each is printed next to the same answer computed by loading the table into pandas.
Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import insert

from db import reports
from db import review as dbreview
from db.migrate import open_database
from db.models import ModelCall, Ticket

CATS = ["billing", "technical", "product_feedback", "account", "unknown"]
STATES = ["classified"] * 70 + ["escalated"] * 15 + ["needs_review"] * 10 + ["failed"] * 5


def seed(db, n_tickets: int, n_calls: int) -> None:
    rnd = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=120)
    batch = 20_000
    with db.engine.begin() as conn:
        for lo in range(0, n_tickets, batch):
            rows = []
            for i in range(lo, min(lo + batch, n_tickets)):
                status = rnd.choice(STATES)
                t1, t2 = rnd.choice(CATS[:4]), rnd.choice(CATS[:4]) if status == "escalated" else None
                rows.append({
                    "id": i + 1, "text": f"ticket {i} about something", "source": "bench", "content_hash": f"{i:064x}",
                    "created_at": start + timedelta(seconds=i * 120 * 86400 // n_tickets), "updated_at": start,
                    "status": status, "category": None if status == "failed" else (t2 or t1),
                    "confidence": None if status == "failed" else round(rnd.random(), 3),
                    "label_source": "tier2" if t2 else "tier1", "tier1_category": t1, "tier2_category": t2,
                    "escalated": bool(t2), "disagree": bool(t2 and t1 != t2), "corrected": rnd.random() < 0.05,
                    "version": 1, "first_call_id": 0,
                })
            conn.execute(insert(Ticket), rows)
        for lo in range(0, n_calls, batch):
            rows = []
            for i in range(lo, min(lo + batch, n_calls)):
                tier = 2 if rnd.random() < 0.15 else 1
                rows.append({
                    "ticket_id": rnd.randrange(1, n_tickets + 1), "tier": tier,
                    "model": "claude-sonnet-5-5" if tier == 2 else "claude-haiku-5-5", "outcome": "ok",
                    "category": rnd.choice(CATS[:4]), "confidence": rnd.random(), "input_tokens": 400,
                    "output_tokens": 40, "cost_pico": 60_000_000 if tier == 1 else 1_200_000_000,
                    "latency_ms": rnd.randrange(200, 2000), "attempts": 1,
                    "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
                    "created_at": start + timedelta(seconds=i * 120 * 86400 // n_calls),
                })
            conn.execute(insert(ModelCall), rows)
    with db.transaction() as s:
        reports.rebuild_spend_daily(s)  # the app keeps it in step call by call; a bulk load rebuilds it
    if db.dialect == "sqlite":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def timed(fn, repeat: int = 5) -> float:
    fn()  # warm
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--tickets", type=int, default=300_000)
    ap.add_argument("--url")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = open_database(url)
        t = time.perf_counter()
        seed(db, args.tickets, args.calls)
        print(f"seeded {args.tickets:,} tickets and {args.calls:,} model calls in {time.perf_counter() - t:.1f} s "
              f"({db.dialect})")
        since = date.today() - timedelta(days=89)
        f = dbreview.ReviewFilter(reasons=("low_confidence", "failed", "disagreement"), corrected=False,
                                  categories=("billing", "technical"))

        def spend_sql():
            with db.read() as s:
                return reports.spend_by_day(s, since)

        def spend_pandas():
            df = pd.read_sql_table("model_calls", db.engine)
            ts = pd.to_datetime(df["created_at"], utc=True)  # naive from SQLite, aware from PostgreSQL
            df = df[ts >= pd.Timestamp(since, tz="UTC")]
            return df.groupby([ts[df.index].dt.date, "model", "tier"])["cost_pico"].sum()

        def page_sql():
            with db.read() as s:
                return dbreview.review_page(s, f, page=3)

        def page_pandas():
            df = pd.read_sql_table("tickets", db.engine)
            m = ((df.confidence < 0.7) | (df.status == "failed") | df.disagree) & ~df.corrected & \
                df.category.isin(["billing", "technical"])
            return df[m].sort_values(["confidence", "id"], na_position="first").iloc[150:200]

        def counts_sql():
            with db.read() as s:
                return reports.status_counts(s)

        def counts_pandas():
            df = pd.read_sql_table("tickets", db.engine, columns=["status", "corrected"])
            return df.status.value_counts(), df.corrected.sum()

        assert len(page_sql()) == 50 and len(page_pandas()) == 50
        for name, fast, slow, target in (("spend by day, 90 days", spend_sql, spend_pandas, 300),
                                         ("review page of 50, filtered", page_sql, page_pandas, 100),
                                         ("header counts", counts_sql, counts_pandas, None)):
            a, b = timed(fast), timed(slow, repeat=1)
            goal = f" (target < {target} ms: {'met' if a < target else 'MISSED'})" if target else ""
            print(f"{name:<30} {a:8.1f} ms   naive pandas {b:8.1f} ms   {b / a:6.1f}x faster{goal}")
        db.dispose()


if __name__ == "__main__":
    main()
