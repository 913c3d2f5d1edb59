"""A run under a sustained requests-per-minute limit: achieved rate / limit, 429s, failed tickets.

    .venv/bin/python -m bench.bench_ratelimit [--rpm 120] [--burst 10] [--tickets 150] [--concurrency 8]

The fake Messages API enforces the limit like the real one: a token bucket refilled continuously (`--burst`
requests at most at once), the anthropic-ratelimit-requests-* headers on every answer, 429 with retry-after
when it is empty. Full pipeline (queue, real SDK over HTTP, SQLite). The baseline, measured in the same run on
the same tickets, sends without pacing and counts each 429 as a failed attempt (the engine before the pacer).
The achieved rate counts the answers after the first `--burst`, from the first answer to the last.
Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TypedDict

from db.migrate import open_database
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import taxonomy
from triage.providers import ratelimit
from triage.providers.anthropic_provider import AnthropicProvider
from triage.settings import Settings
from triage.work import pipeline, runs, services

TEXTS = ["I was charged twice for invoice {n}, please refund", "App crashes with error {n} on upload",
         "Password reset link {n} never arrives", "Please add dark mode, feature idea {n}"]


Measured = TypedDict("Measured", {"elapsed": float, "rate": float, "429": int, "failed": int, "classified": int})


def run(args: argparse.Namespace, paced: bool) -> Measured:
    with tempfile.TemporaryDirectory() as tmp, \
            FakeAnthropic(validate=False, rate_limit_rpm=args.rpm, rate_limit_burst=args.burst) as fake:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=args.concurrency)
        router = services.build_router(settings, taxonomy.default(), mode="haiku")
        if not paced:
            assert isinstance(router.tier1, AnthropicProvider)  # mode haiku with a key: tier 1 is the API
            router.tier1.pacer = ratelimit.Pacer(enabled=False)
        imp = runs.start_run(db, [(None, TEXTS[i % 4].format(n=i)) for i in range(args.tickets)], source="bench",
                             mode="haiku", actor=LEAD)
        started = time.perf_counter()
        report = services.run(router, pipeline.process_queue(db, router, run_id=imp.run_id,
                                                             concurrency=args.concurrency))
        elapsed = time.perf_counter() - started
        ok = [r["time"] for r in fake.requests if r.get("status") == 200]
        db.dispose()
    rate = (len(ok) - args.burst) / (ok[-1] - ok[0]) * 60 if len(ok) > args.burst + 1 else 0.0
    return {"elapsed": elapsed, "rate": rate, "429": fake.rate_limited, "failed": report.states.get("failed", 0),
            "classified": report.states.get("classified", 0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rpm", type=float, default=120)
    ap.add_argument("--burst", type=float, default=10)
    ap.add_argument("--tickets", type=int, default=150)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    print(f"{args.tickets} tickets, limit {args.rpm:.0f} requests/minute (bucket of {args.burst:.0f}), "
          f"concurrency {args.concurrency}")
    for name, paced in (("paced", True),) + (() if args.no_baseline else (("baseline, unpaced", False),)):
        r = run(args, paced)
        print(f"{name:18}: {r['elapsed']:6.1f} s; {r['rate']:6.1f} requests/minute = {r['rate'] / args.rpm:.3f} of "
              f"the limit; {r['429']} 429s; {r['classified']} classified, {r['failed']} failed")


if __name__ == "__main__":
    main()
