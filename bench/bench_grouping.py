"""Several tickets per request (`--per-call N`): input tokens and cost per 1,000 tickets at N = 1, 5, 20, 50, and
the wall time of a run under a requests-per-minute limit at N = 1 and N = 20, each printed as a ratio to N = 1
measured in the same run.

    .venv/bin/python -m bench.bench_grouping [--tickets 1000] [--sizes 1,5,20,50]
                                             [--limited 600] [--rpm 60] [--burst 10] [--concurrency 8]

Data: the sample set (triage/samples/tickets.jsonl, cycled to `--tickets`). Full pipeline: the durable queue
(SQLite), the real SDK over HTTP to the fake Messages API (tests/support/fake_anthropic.py), Haiku only (`--tier haiku`,
so every ticket costs one tier-1 answer). The fake bills input tokens as the prompt's characters / 4 (system
prompt and messages; the output schema is not counted, which flatters N = 1 slightly) and output tokens as the
answer's characters / 4, priced with the real price table; the money is what the run recorded, which the tests
prove equal to what the fake billed. The rate-limited part uses the fake's token bucket (`--burst` requests at
once, refilled at `--rpm`); `--limited 0` skips it. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from db.migrate import open_database
from db.models import ModelCall
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import taxonomy
from triage.domain import from_pico
from triage.settings import Settings
from triage.work import pipeline, runs, services

SAMPLES = Path(__file__).resolve().parent.parent / "triage" / "samples" / "tickets.jsonl"


def sample_texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [str(r.get("text") or r.get("body") or "") for r in rows]
    texts = [t for t in texts if t.strip()]
    return [f"{texts[i % len(texts)]} (#{i})" for i in range(n)]  # distinct, so none is deduplicated


def one_run(texts: list[str], per_call: int, concurrency: int, rpm: float | None = None,
            burst: float | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, \
            FakeAnthropic(validate=False, rate_limit_rpm=rpm, rate_limit_burst=burst) as fake:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=concurrency,
                            per_call=per_call)
        router = services.build_router(settings, taxonomy.default(), mode="haiku")
        imp = runs.start_run(db, [(None, t) for t in texts], source="bench", mode="haiku", actor=LEAD,
                             per_call=per_call)
        started = time.perf_counter()
        report = services.run(router, pipeline.process_queue(db, router, run_id=imp.run_id,
                                                             concurrency=concurrency))
        elapsed = time.perf_counter() - started
        with db.read() as s:
            inp, out, cost = s.execute(select(func.sum(ModelCall.input_tokens), func.sum(ModelCall.output_tokens),
                                              func.sum(ModelCall.cost_pico))).one()
        db.dispose()
    n = len(texts)
    return {"elapsed": elapsed, "requests": len([r for r in fake.requests if r.get("status") == 200]),
            "input_per_1k": int(inp or 0) * 1000 / n, "output_per_1k": int(out or 0) * 1000 / n,
            "cost_per_1k": float(from_pico(int(cost or 0)) * Decimal(1000) / n),
            "done": report.states.get("classified", 0) + report.states.get("needs_review", 0),
            "failed": report.states.get("failed", 0), "429": fake.rate_limited}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=1000)
    ap.add_argument("--sizes", default="1,5,20,50")
    ap.add_argument("--limited", type=int, default=600, help="tickets in the rate-limited runs (0: skip)")
    ap.add_argument("--rpm", type=float, default=60)
    ap.add_argument("--burst", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    texts = sample_texts(args.tickets)
    print(f"{args.tickets} sample tickets (triage/samples/tickets.jsonl), Haiku only, fake API, concurrency "
          f"{args.concurrency}")
    print(f"{'N':>3} {'requests':>9} {'input tok/1k':>13} {'vs N=1':>7} {'output tok/1k':>14} {'$/1k tickets':>13} "
          f"{'vs N=1':>7} {'time s':>7}")
    base = None
    for n in sizes:
        r = one_run(texts, n, args.concurrency)
        base = base or r
        print(f"{n:>3} {r['requests']:>9} {r['input_per_1k']:>13,.0f} {base['input_per_1k'] / r['input_per_1k']:>6.1f}x"
              f" {r['output_per_1k']:>14,.0f} {r['cost_per_1k']:>13.4f} {base['cost_per_1k'] / r['cost_per_1k']:>6.1f}x"
              f" {r['elapsed']:>7.1f}   ({r['done']} done, {r['failed']} failed)")
    if args.limited:
        limited = sample_texts(args.limited)
        print(f"\n{args.limited} tickets under {args.rpm:.0f} requests/minute (bucket of {args.burst:.0f}):")
        timed = {}
        for n in (1, 20):
            r = one_run(limited, n, args.concurrency, rpm=args.rpm, burst=args.burst)
            timed[n] = r["elapsed"]
            print(f"  N={n:>2}: {r['elapsed']:7.1f} s, {r['requests']} requests, {r['429']} 429s, {r['done']} done, "
                  f"{r['failed']} failed")
        print(f"  N=20 is {timed[1] / timed[20]:.1f}x faster than N=1")


if __name__ == "__main__":
    main()
