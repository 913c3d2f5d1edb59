"""What few-shot costs a run: prompt tokens, exact cost and wall time per ticket with k examples against k = 0.

    .venv/bin/python -m bench.bench_fewshot [--labels-per-category 8] [--k 4] [--tickets 200] [--concurrency 8]

The sample set (triage/samples/tickets.jsonl): `--labels-per-category` of its tickets per category are imported as
operator labels (`triage label`), then `--tickets` of the others are classified by Haiku through the full pipeline
(queue, real SDK over HTTP to the fake Messages API and its prompt cache, SQLite), once with few-shot off (the
baseline, same run, same tickets) and once with k examples. Tokens and cost come from the recorded calls' usage
and the price table, as on the Spend page. The fake's "model" ignores the examples, so accuracy is not measured
here: the Quality page measures it on your own labels. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TypedDict

from sqlalchemy import func, select

from db.migrate import open_database
from db.models import ModelCall
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import ingest, labels, taxonomy
from triage.domain import from_pico
from triage.settings import Settings
from triage.work import pipeline, runs, services

TAX = taxonomy.default()


def sample() -> list[dict[str, str]]:
    text = resources.files("triage.samples").joinpath("tickets.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Measured(TypedDict):
    calls: int
    prompt: float  # tokens per call
    reads: float
    cost: Decimal  # $ per 1000 tickets
    examples: float
    elapsed: float
    load: float


def run(args: argparse.Namespace, k: int) -> Measured:
    rows = sample()
    per: dict[str, int] = {}
    labelled, rest = [], []
    for r in rows:
        if per.get(r["label"], 0) < args.labels_per_category:
            per[r["label"]] = per.get(r["label"], 0) + 1
            labelled.append(r)
        else:
            rest.append(r)
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(validate=False) as fake:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        csv = "text,label\n" + "".join('"' + r["text"].replace('"', '""') + f'",{r["label"]}\n' for r in labelled)
        labels.import_labels(db, ingest.parse_labelled(csv, "csv"), TAX, file="labels.csv", actor=LEAD,
                             retrain=False)
        settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=args.concurrency, fewshot_k=k)
        started = time.perf_counter()
        router = services.build_router(settings, TAX, mode="haiku", db=db)  # loads the examples (k > 0)
        loaded = time.perf_counter() - started
        imp = runs.start_run(db, [(None, r["text"]) for r in rest[:args.tickets]], source="bench", mode="haiku",
                             actor=LEAD)
        services.run(router, pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=args.concurrency))
        elapsed = time.perf_counter() - started
        with db.read() as s:
            n, prompt, reads, cost, examples = s.execute(select(
                func.count(), func.sum(ModelCall.input_tokens + ModelCall.cache_write_5m_tokens
                                       + ModelCall.cache_read_tokens),
                func.sum(ModelCall.cache_read_tokens), func.sum(ModelCall.cost_pico),
                func.sum(ModelCall.examples)).where(ModelCall.run_id == imp.run_id)).one()
        db.dispose()
    return {"calls": n, "prompt": prompt / n, "reads": (reads or 0) / n, "cost": from_pico(cost) / n * 1000,
            "examples": (examples or 0) / n, "elapsed": elapsed, "load": loaded}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels-per-category", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--tickets", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    base, shots = run(args, 0), run(args, args.k)
    print(f"sample set, {args.labels_per_category} operator labels per category, {base['calls']} other tickets "
          f"through Haiku on the fake API (concurrency {args.concurrency})")
    print(f"{'':24}{'prompt tok/ticket':>18}{'cache read/ticket':>18}{'$ / 1000 tickets':>18}{'wall s':>8}")
    for name, r in (("few-shot off", base), (f"k={args.k} ({r_ex(shots)} examples)", shots)):
        print(f"{name:24}{r['prompt']:>18.0f}{r['reads']:>18.0f}{Decimal(r['cost']):>18.6f}{r['elapsed']:>8.1f}")
    print(f"ratio few-shot / off: prompt tokens {shots['prompt'] / base['prompt']:.2f}x, cost "
          f"{shots['cost'] / base['cost']:.2f}x, wall time {shots['elapsed'] / base['elapsed']:.2f}x "
          f"(of which loading the local model and the examples once: {shots['load']:.1f} s)")


def r_ex(r: Measured) -> str:
    return f"{r['examples']:.0f}"


if __name__ == "__main__":
    main()
