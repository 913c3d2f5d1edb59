"""The local tier's learning curve on a labelled file: accuracy and ECE at 0, 8, 32 and 128 labels per category.

    .venv/bin/python -m bench.bench_learning                       # the shipped sample set
    .venv/bin/python -m bench.bench_learning --gold bench/data/different_style.jsonl
    .venv/bin/python -m bench.bench_learning --gold helpdesk_export.csv --draws 10

For each random draw a stratified third of the file is scored; labels are drawn from the other two thirds
(triage.local.curve, the same code that measures the curve shown in Settings, on operator labels). The tier is
trained on its built-in seeds plus the drawn labels, exactly as in production. Each figure is the mean over the
draws with the lowest and highest draw beside it. The baseline, measured in the same run, is the previous design:
the example-trained head alone, calibrated on a random split of its own examples. Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from triage import taxonomy
from triage.evaluation import read_gold
from triage.local import curve
from triage.local import tier as local
from triage.local.embedder import shared
from triage.local.examples import VOICES
from triage.local.head import DESCRIPTION, Head, fit

DEFAULT_GOLD = Path(__file__).resolve().parents[1] / "triage" / "samples" / "tickets.jsonl"
SOURCES = {
    "tickets.jsonl": "the shipped sample set (written by the author of the first four voices of built-in examples, "
                     "so it flatters zero-shot)",
    "different_style.jsonl": "the different-style set in bench/data (banking/e-commerce, written by the author of the "
                             "last four voices of built-in examples, so it flatters zero-shot too)",
}


def previous_design(seeds: local.Seeds, tax: taxonomy.Taxonomy) -> curve.Build:
    def build(X: np.ndarray, labels: list[str]) -> Head:
        Xa = np.vstack([seeds.X, X]) if len(X) else seeds.X
        w = np.array([1.0] * len(seeds.labels) + [2.0] * len(labels), dtype=np.float32)
        human = np.array([False] * len(seeds.labels) + [True] * len(labels))
        return fit(Xa, list(seeds.labels) + list(labels), w, tax.names, human)  # random folds, no description view

    return build


def fmt(p: dict[str, Any] | None, key: str) -> str:  # a point of curve.learning_curve's (dict[str, Any])
    if p is None:
        return "n/a".rjust(19)
    return f"{p[key]:.3f} [{p[key + '_low']:.2f}-{p[key + '_high']:.2f}]".rjust(19)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gold", default=str(DEFAULT_GOLD), help="CSV/JSON/JSONL with text and label columns")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--sizes", default="0,8,32,128", help="labels per category")
    ap.add_argument("--voices", help="train on these voices of built-in examples only (comma-separated, see "
                    "triage/local/examples.py), e.g. the other author's, to see the tier on text unlike its examples")
    args = ap.parse_args()
    tax = taxonomy.default()
    gold = read_gold(args.gold, tax)
    sizes = [int(s) for s in args.sizes.split(",")]
    embedder = shared()
    X = embedder.embed(gold.texts)
    seeds = local.seeds_for(embedder, tax)
    if args.voices:
        keep = {v.strip() for v in args.voices.split(",")}
        unknown = keep - set(VOICES)
        if unknown:
            raise SystemExit(f"unknown voices {sorted(unknown)}; there are {list(VOICES)}")
        rows = [i for i, g in enumerate(seeds.groups) if g == DESCRIPTION or g in keep]
        seeds = local.Seeds(seeds.X[rows], [seeds.labels[i] for i in rows], [seeds.groups[i] for i in rows], seeds.desc)

    def ours(Xl: np.ndarray, labels: list[str]) -> Head:
        return local.build_head(seeds, tax, [(x, lab, "operator") for x, lab in zip(Xl, labels, strict=True)])

    name = Path(args.gold).name
    counts = {c: gold.labels.count(c) for c in tax.names}
    print(f"data: {args.gold}: {len(gold.labels)} labelled tickets {counts}")
    print(f"      {SOURCES.get(name, 'your file')}")
    print(f"built-in examples: {args.voices or 'all voices'} ({len(seeds.labels)} seed rows)")
    new = curve.learning_curve(ours, X, gold.labels, sizes, args.draws)
    old = curve.learning_curve(previous_design(seeds, tax), X, gold.labels, sizes, args.draws)
    if new is None or old is None:
        raise SystemExit(f"too few labelled tickets (need {curve.MIN_LABELS})")
    print(f"{args.draws} draws; each scores {new['scored']} tickets, labels drawn from the rest; mean [lowest-highest]")
    print(f"{'labels/category':>16} {'accuracy':>19} {'ECE':>19} | previous design: {'accuracy':>8} {'ECE':>6}"
          f" {'ECE ratio':>9}")
    by_new = {p["per_category"]: p for p in new["points"]}
    by_old = {p["per_category"]: p for p in old["points"]}
    for n in sizes:
        p, q = by_new.get(n), by_old.get(n)
        tail = "n/a (not enough labelled tickets per category)" if q is None or p is None else \
            f"{q['accuracy']:>8.3f} {q['ece']:>6.3f} {q['ece'] / max(p['ece'], 1e-9):>8.2f}x"
        print(f"{n:>16} {fmt(p, 'accuracy')} {fmt(p, 'ece')} | {'':16} {tail}")


if __name__ == "__main__":
    main()
