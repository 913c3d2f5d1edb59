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
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

from db import reports
from db import review as db_review
from db.engine import Database
from db.migrate import open_database
from db.models import Base
from triage.domain import ReviewFilter, ReviewRow

CATS = ["billing", "technical", "product_feedback", "account", "unknown"]
STATES = ["classified"] * 70 + ["escalated"] * 15 + ["needs_review"] * 10 + ["failed"] * 5
TICKET_COLS = ("id", "text", "source", "content_hash", "created_at", "updated_at", "status", "category", "confidence",
               "label_source", "tier1_category", "tier2_category", "escalated", "disagree", "corrected",
               "corrected_by", "corrected_at", "version", "first_call_id", "escalation_requested")
CALL_COLS = ("ticket_id", "tier", "model", "outcome", "category", "confidence", "input_tokens", "output_tokens",
             "cost_pico", "latency_ms", "attempts", "cache_write_5m_tokens", "cache_write_1h_tokens",
             "cache_read_tokens", "service_tier", "request_id", "error_kind", "created_at")


def _stamp(when: datetime, dialect: str) -> str | datetime:
    """How SQLAlchemy stores a UTC datetime on SQLite (ISO text); PostgreSQL takes the datetime itself."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else when


def _bulk(db: Database, table: str, cols: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    """Fast bulk insert through the driver: executemany on SQLite, COPY on PostgreSQL."""
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.dialect == "sqlite":
            cur.execute("PRAGMA cache_size=-256000")  # 256 MB for this connection while loading
        if db.dialect == "postgresql":
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        else:
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
            cur.execute("COMMIT")
        raw.commit()
    finally:
        raw.close()


def seed(db: Database, n_tickets: int, n_calls: int, *, days: int = 120, labelled_every: int = 20,
         demo_every: int = 200, error_every: int = 50, batch_every: int = 25) -> None:
    """Tickets and model calls spread evenly over `days` up to now, written in bulk, then the rollups rebuilt
    from them (the app keeps them in step call by call; a bulk load rebuilds them). Every `labelled_every`-th
    ticket carries an operator label (with its correction row); every `demo_every`-th call is a simulated demo
    call, every `error_every`-th an API error, every `batch_every`-th a Message Batches call (0 = none)."""
    rnd = random.Random(7)
    d = db.dialect
    start = datetime.now(UTC) - timedelta(days=days)
    batch = 50_000
    # secondary indexes are built once at the end (sorted) rather than row by row in random order
    indexes = [ix for name in ("tickets", "model_calls", "corrections") for ix in Base.metadata.tables[name].indexes]
    with db.engine.begin() as conn:
        for ix in indexes:
            ix.drop(conn, checkfirst=True)
    for lo in range(0, n_tickets, batch):
        rows: list[tuple[object, ...]] = []
        fixes: list[tuple[object, ...]] = []
        for i in range(lo, min(lo + batch, n_tickets)):
            status = rnd.choice(STATES)
            t1, t2 = rnd.choice(CATS[:4]), rnd.choice(CATS[:4]) if status == "escalated" else None
            created = start + timedelta(seconds=i * days * 86400 // n_tickets)
            label = labelled_every and (i + 1) % labelled_every == 0
            category = None if status == "failed" else (t2 or t1)
            truth = rnd.choice(CATS[:4]) if label else None
            rows.append((i + 1, f"ticket {i} about something", "bench", f"{i:064x}", _stamp(created, d),
                         _stamp(created, d), status, truth or category,
                         None if status == "failed" else round(rnd.random(), 3),
                         "operator" if label else ("tier2" if t2 else "tier1"), t1, t2, bool(t2),
                         bool(t2 and t1 != t2), bool(label), "bench" if label else None,
                         _stamp(created, d) if label else None, 1, 0, False))
            if label:
                fixes.append((i + 1, category, truth, "bench", _stamp(created, d)))
        _bulk(db, "tickets", TICKET_COLS, rows)
        if fixes:
            _bulk(db, "corrections", ("ticket_id", "previous_label", "new_label", "operator", "created_at"), fixes)
    for lo in range(0, n_calls, batch):
        rows = []
        for i in range(lo, min(lo + batch, n_calls)):
            tier = 2 if rnd.random() < 0.15 else 1
            err = error_every and i % error_every == error_every - 1
            model = "claude-sonnet-5-5" if tier == 2 else "claude-haiku-5-5"
            rows.append((rnd.randrange(1, n_tickets + 1), tier, model,
                         "error" if err else "ok", None if err else rnd.choice(CATS[:4]),
                         None if err else rnd.random(), 0 if err else 400, 0 if err else 40,
                         0 if err else (60_000_000 if tier == 1 else 1_200_000_000), rnd.randrange(200, 2000), 1,
                         0, 0, 0, "batch" if batch_every and i % batch_every == 3 else "standard",
                         f"demo_{i:012x}" if demo_every and i % demo_every == 7 else f"req_{i:012x}",
                         "transient" if err else None,
                         _stamp(start + timedelta(seconds=i * days * 86400 // n_calls), d)))
        _bulk(db, "model_calls", CALL_COLS, rows)
    t = time.perf_counter()
    with db.engine.begin() as conn:
        for ix in indexes:
            ix.create(conn)
    print(f"  indexes built in {time.perf_counter() - t:.1f} s", flush=True)
    if d == "postgresql":  # explicit ids: move the sequences past them
        with db.engine.begin() as conn:
            for table in ("tickets", "corrections", "model_calls"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
    print(f"  rollups rebuilt from the calls in {rebuild_rollups(db):.1f} s", flush=True)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def rebuild_rollups(db: Database) -> float:
    """Rebuild the rollups from the calls as migration 0007 does; returns the seconds it took."""
    t = time.perf_counter()
    with db.transaction() as s:
        reports.rebuild_rollups(s)
    return time.perf_counter() - t


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
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
        f = ReviewFilter(reasons=("low_confidence", "failed", "disagreement"), corrected=False,
                                  categories=("billing", "technical"))

        def spend_sql() -> list[reports.DaySpend]:
            with db.read() as s:
                return reports.spend_by_day(s, since)

        def spend_pandas() -> pd.Series:
            df = pd.read_sql_table("model_calls", db.engine)
            ts = pd.to_datetime(df["created_at"], utc=True)  # naive from SQLite, aware from PostgreSQL
            df = df[ts >= pd.Timestamp(since, tz="UTC")]
            return df.groupby([ts[df.index].dt.date, "model", "tier"])["cost_pico"].sum()

        def page_sql() -> list[ReviewRow]:
            with db.read() as s:
                return db_review.review_page(s, f, page=3)

        def page_pandas() -> pd.DataFrame:
            df = pd.read_sql_table("tickets", db.engine)
            m = ((df.confidence < 0.7) | (df.status == "failed") | df.disagree) & ~df.corrected & \
                df.category.isin(["billing", "technical"])
            return df[m].sort_values(["confidence", "id"], na_position="first").iloc[150:200]

        def counts_sql() -> dict[str, int]:
            with db.read() as s:
                return reports.status_counts(s)

        def counts_pandas() -> tuple[pd.Series, int]:
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
