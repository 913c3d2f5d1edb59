"""Throughput of the classification engine against the fake Messages API answering in 300 ms.

    .venv/bin/python -m bench.bench_engine [--tickets 2000] [--concurrency 16] [--sequential 100]

Full pipeline: tickets imported into a fresh SQLite database, claimed from the durable queue, sent through
the real SDK over HTTP, every call and outcome written back. Prints tickets/s, the ceiling
(concurrency / latency), the ratio to it (target >= 0.9), and the speed-up over a sequential run
(concurrency 1) of the same tickets measured in the same process. Then the same tickets the way the CLI and the
dashboard run them: every call reserving its worst case in the spending ledger under a monthly cap first (one
more short write transaction per call), as a ratio to the run without. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from db.migrate import open_database
from tests.support.fake_anthropic import FakeAnthropic
from triage import taxonomy
from triage.access import cli_actor
from triage.settings import Settings
from triage.work import pipeline, runs, services

SAMPLES = ["I was charged twice for invoice {n}, please refund", "App crashes with error {n} on upload",
           "Password reset link {n} never arrives", "Please add dark mode, feature idea {n}"]


def tickets(n: int) -> list[tuple[None, str]]:
    return [(None, SAMPLES[i % 4].format(n=i)) for i in range(n)]


def run(fake: FakeAnthropic, items: list[tuple[None, str]], concurrency: int, ledger: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=concurrency,
                            monthly_budget_usd=1000.0 if ledger else 0.0)
        router = services.build_router(settings, taxonomy.default(), db=db if ledger else None)
        imp = runs.start_run(db, items, source="bench", actor=cli_actor("bench"))
        started = time.perf_counter()
        report = services.run(router, pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=concurrency))
        elapsed = time.perf_counter() - started
        assert report.processed == len(items), report
        db.dispose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--sequential", type=int, default=100,
                    help="tickets in the sequential baseline (the first N of the same set; all of them = --tickets)")
    args = ap.parse_args()
    items = tickets(args.tickets)
    with FakeAnthropic(validate=False, delay=args.latency) as fake:
        seq_items = items[: args.sequential]
        seq = run(fake, seq_items, 1)
        conc = run(fake, items, args.concurrency)
        guarded = run(fake, items, args.concurrency, ledger=True)
    seq_rate, rate, guarded_rate = len(seq_items) / seq, len(items) / conc, len(items) / guarded
    ceiling = args.concurrency / args.latency
    print(f"sequential baseline: {len(seq_items)} tickets in {seq:.1f} s = {seq_rate:.2f} tickets/s")
    print(f"engine:              {len(items)} tickets in {conc:.1f} s = {rate:.2f} tickets/s "
          f"at concurrency {args.concurrency}")
    print(f"ceiling {args.concurrency} / {args.latency} s = {ceiling:.2f} tickets/s; "
          f"ratio to ceiling {rate / ceiling:.3f} (target >= 0.9)")
    print(f"speed-up over sequential: {rate / seq_rate:.1f}x")
    print(f"with the spending ledger and a monthly cap: {guarded_rate:.2f} tickets/s = {guarded_rate / rate:.3f} of "
          "the run without")


if __name__ == "__main__":
    main()
