"""Whole-page render times on a large history: what an operator waits for on each click.

    .venv/bin/python -m bench.bench_pages [--calls 1000000,10000000] [--url postgresql+psycopg://u:p@host/postgres]
                                          [--dir DIR] [--reseed] [--repeat 3] [--seed-only] [--fewshot-days 30]

For each size, seeds a database with `bench.bench_db.seed` (tickets = 0.3 x calls over 120 days, every 20th
ticket labelled by an operator, demo, error and batch calls; bulk inserts, then the rollups rebuilt the way the
migration builds them); makes the last --fewshot-days (30) days' answered Haiku calls few-shot calls that read a
cached prefix, priced from that usage, as a team that turned few-shot on a month ago (once per database); then
renders every dashboard page with Streamlit's AppTest: once on a cold cache ("first": what the first visit and
any click after new data costs) and again with nothing changed ("rerun": any other click). Prints the median
seconds per page (for Spend and Quality also the engine calls behind them alone, uncached: "engine s") and,
for the largest size, the ratio to the smallest measured in the same run. Targets on the
2-core box: at 1M calls every page <= 1.0 s first and <= 0.3 s rerun; at 10M no page over 1.5x its 1M time. Not
part of the test pass/fail.

SQLite databases are kept in --dir (default a temporary directory) as pages_<calls>.db and reused when their
size matches, unless --reseed; with --url (a PostgreSQL server's admin URL) one database per size,
bench_pages_<calls>, is created there and kept the same way (drop them when done). Seeding 10M calls on the
shared 2-core box took 35 min on SQLite (11 of them rebuilding the rollups) at load averages of 20-40; seed
once with --seed-only and --dir, then measure as often as needed. CPU seconds are printed next to wall seconds
because other processes on the box inflate the wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.bench_db import rebuild_rollups, seed
from db.engine import Database
from db.migrate import open_database
from db.models import ModelCall, SpendDaily

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = [("Classify", None), ("Review queue", "review"), ("Spend & routing", "spend"), ("Quality", "quality"),
         ("Settings", "settings")]


def database_for(calls: int, args: argparse.Namespace) -> str:
    """The URL of a database holding `calls` seeded calls (seeded now unless it already does)."""
    tickets = int(calls * args.tickets_per_call)
    if args.url:
        admin = make_url(args.url)
        name = f"bench_pages_{calls}"
        url = admin.set(database=name).render_as_string(hide_password=False)
        engine = create_engine(admin.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and args.reseed:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
                exists = False
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    else:
        path = Path(args.dir) / f"pages_{calls}.db"
        if path.exists() and args.reseed:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    t = time.perf_counter()
    db = open_database(url)  # an existing database from before 0007 gets its rollups built here
    migrated = time.perf_counter() - t
    with db.read() as s:
        have = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.id <= calls))
        counted = s.scalar(select(func.coalesce(func.sum(SpendDaily.calls), 0)))
    if have != calls:
        if have:
            raise SystemExit(f"{url} holds another history ({have:,} calls); pass --reseed")
        t = time.perf_counter()
        seed(db, tickets, calls)
        print(f"  seeded {tickets:,} tickets and {calls:,} calls ({db.dialect}) in {time.perf_counter() - t:.0f} s",
              flush=True)
    elif counted != calls:
        print(f"  opened a database without rollups: migrated in {migrated:.1f} s; rebuilt in "
              f"{rebuild_rollups(db):.1f} s", flush=True)
    if args.fewshot_days:
        took = add_fewshot(db, args.fewshot_days)
        if took is not None:
            print(f"  few-shot on for the last {args.fewshot_days} days: calls marked and rollups rebuilt in "
                  f"{took:.0f} s", flush=True)
    db.dispose()
    return url


def add_fewshot(db: Database, days: int, examples: int = 6) -> float | None:
    """As if the team turned few-shot on `days` days ago: every answered tier-1 call since then (400 input and
    40 output tokens of claude-haiku-5-5, as seeded) carried `examples` labelled examples and read a 640-token
    cached prefix (cache writes are not modelled), its cost priced from that usage with the price table (one entry
    covers those days; batch calls at the batch price), and every rollup is rebuilt from the calls. Returns the
    seconds it took, None when the database has few-shot calls already (so it runs once per database)."""
    from sqlalchemy import update

    from db import reports
    from db.models import FEWSHOT_OR_CACHED
    from triage.domain import Usage, to_pico
    from triage.spend.pricing import PriceTable

    with db.read() as s:
        if s.scalar(select(ModelCall.id).where(FEWSHOT_OR_CACHED, ModelCall.examples.is_not(None)).limit(1)):
            return None
        newest = s.scalar(select(func.max(ModelCall.created_at)))
        assert newest is not None  # a seeded database has calls
        since = newest - timedelta(days=days)
    t = time.perf_counter()
    prefix = 640  # tokens of the cached static prefix (the fixed examples)
    prices = PriceTable.default()
    read_cost = to_pico(prices.cost("claude-haiku-5-5", Usage(400, 40, cache_read_tokens=prefix), since))
    batch_cost = to_pico(prices.cost("claude-haiku-5-5", Usage(400, 40, cache_read_tokens=prefix,
                                                            service_tier="batch"), since))
    tier1 = (ModelCall.tier == 1, ModelCall.outcome == "ok", ModelCall.created_at >= since)
    with db.transaction() as s:
        s.execute(update(ModelCall).where(*tier1, ModelCall.service_tier != "batch")
                  .values(examples=examples, cache_read_tokens=prefix, cost_pico=read_cost))
        s.execute(update(ModelCall).where(*tier1, ModelCall.service_tier == "batch")
                  .values(examples=examples, cache_read_tokens=prefix, cost_pico=batch_cost))
        reports.rebuild_rollups(s)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - t


def engine_times(url: str, repeat: int) -> dict[str, float]:
    """Median wall seconds of the engine calls behind the Spend and Quality pages, uncached, at the pages'
    defaults (the last 30 days): what the page adds around them is Streamlit's. Quality's include the figures by
    tickets per request, which the page reads only once a request carried several tickets (the seeded history
    has none), so they also say what the page costs with several tickets per call."""
    from datetime import date

    from triage.quality import groups as quality_groups
    from triage.quality import measure as quality
    from triage.spend import fewshot as spend_fewshot
    from triage.spend import reports as reporting

    db = open_database(url, migrate=False)
    today = date.today()
    start = today - timedelta(days=29)
    calls: dict[str, Callable[[], object]] = {
        "Spend & routing": lambda: (reporting.spend_page(db, start, today, tier2_model="claude-sonnet-5-5",
                                                         today=today),
                                    spend_fewshot.measure(db, start, today)),
        "Quality": lambda: (quality.measure(db), quality_groups.by_group_size(db))}
    out = {}
    for title, fn in calls.items():
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        out[title] = statistics.median(runs)
    db.dispose()
    return out


def render_times(url: str, repeat: int) -> dict[str, tuple[float, float, float, float]]:
    """Median (first, rerun) wall seconds per page, and the CPU seconds of this process for each."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    logging.disable(logging.WARNING)  # no "missing ScriptRunContext" chatter from clearing caches outside a run
    os.environ["TRIAGE_DATABASE_URL"] = url
    st.cache_resource.clear()  # a fresh database handle and worker for this database

    def app() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=600)
        at.session_state["operator_name"] = "bench"
        return at

    def timed(fn: Callable[[], object]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu

    warm = app()
    warm.run()  # start-up (imports, migration check, the worker) is not a page's cost
    assert not warm.exception, [e.value for e in warm.exception]
    out = {}
    for title, page in PAGES:
        firsts, reruns = [], []
        for _ in range(repeat):
            at = app()
            if page:
                at.run()
            st.cache_data.clear()  # cold: as after new data arrived
            firsts.append(timed((at.switch_page(f"app_pages/{page}.py") if page else at).run))
            assert not at.exception, (title, [e.value for e in at.exception])
            reruns.append(timed(at.run))
        out[title] = (statistics.median(w for w, _ in firsts), statistics.median(w for w, _ in reruns),
                      statistics.median(c for _, c in firsts), statistics.median(c for _, c in reruns))
    st.cache_resource.clear()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="1000000,10000000", help="comma-separated sizes, smallest first")
    ap.add_argument("--tickets-per-call", type=float, default=0.3)
    ap.add_argument("--url", help="PostgreSQL admin URL (default: SQLite files)")
    ap.add_argument("--dir", help="where SQLite databases are kept (default: a temporary directory)")
    ap.add_argument("--reseed", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fewshot-days", type=int, default=30,
                    help="make the last N days' answered Haiku calls few-shot calls with cache reads (0: none)")
    ap.add_argument("--seed-only", action="store_true", help="seed (or check) the databases, render nothing")
    args = ap.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = "bench-makes-no-calls"  # a key, so the worker only polls for pending work
    os.environ["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"  # and could reach nothing if it tried
    sizes = [int(x) for x in args.calls.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        args.dir = args.dir or tmp
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        results = {}
        for calls in sizes:
            url = database_for(calls, args)
            if args.seed_only:
                continue
            results[calls] = render_times(url, args.repeat)
            engine = engine_times(url, args.repeat)
            backend = "PostgreSQL" if args.url else "SQLite"
            print(f"\n{calls:,} calls, {int(calls * args.tickets_per_call):,} tickets ({backend}), median of "
                  f"{args.repeat}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
            print(f"  {'page':<16} {'first s':>8} {'rerun s':>8}   {'cpu first':>9} {'cpu rerun':>9}   "
                  f"{'engine s':>8}   target <= 1.0 / 0.3 s at 1M")
            for title, (first, rerun, cpu_first, cpu_rerun) in results[calls].items():
                inner = f"{engine[title]:8.3f}" if title in engine else f"{'':8}"
                print(f"  {title:<16} {first:8.3f} {rerun:8.3f}   {cpu_first:9.3f} {cpu_rerun:9.3f}   {inner}",
                      flush=True)
        if len(sizes) > 1 and not args.seed_only:
            small, big = sizes[0], sizes[-1]
            print(f"\n{big:,} / {small:,} calls (target <= 1.5), wall (cpu):")
            for title in results[small]:
                (f0, r0, cf0, cr0), (f1, r1, cf1, cr1) = results[small][title], results[big][title]
                print(f"  {title:<16} first {f1 / f0:5.2f}x ({cf1 / cf0:4.2f}x)   "
                      f"rerun {r1 / r0:5.2f}x ({cr1 / cr0:4.2f}x)")


if __name__ == "__main__":
    main()
