"""The local tier at many categories, on a public many-intent set: CLINC150's imbalanced split (Larson et al.
2019, CC BY 3.0; shipped in bench/data/clinc150, out of the wheel), `--intents` of its 150 intents (default 77).

    .venv/bin/python -m bench.bench_clinc [--intents 77] [--draws 1] [--train-fraction 0.5]
        [--test-per-intent 10]

Training labels come from the imbalanced train split (25, 50, 75 or 100 per intent; by default the first half of
each, keeping the imbalance); every figure is scored on the test split (by default 10 per intent, of 30). Each
intent's description is its name in words ("replacement card duration"): a taxonomy as a team would first write
it. Three ways of adding labels, each trained exactly as in production
(seeds = the descriptions, then `tier.build_head`):

- balanced draws: n labels per intent;
- as they come: the same totals drawn at random from the train split, with its imbalance;
- all of the train split (its real, imbalanced distribution).

The baseline, in the same run: the head without class-balanced weights (head.balanced off), as before issue 25.
Reported: accuracy, ECE, and how many intents are never predicted on the test split. Vectors are cached in
/tmp (keyed by the texts). Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path
from unittest import mock

import numpy as np

from triage.local import head as head_mod
from triage.local import tier as local
from triage.local.embedder import shared
from triage.routing.calibration import ece
from triage.taxonomy import Category, Taxonomy

DATA = Path(__file__).resolve().parent / "data" / "clinc150"


def rows(intents: int, train_fraction: float, test_per_intent: int) -> tuple[list[str], list[dict[str, str]]]:
    """The first `intents` intents (domain by domain); of each, the first `train_fraction` of its training queries
    (so the split's imbalance is kept: 25-100 become 12-50 at a half) and `test_per_intent` test queries."""
    domains = json.loads((DATA / "domains.json").read_text())
    keep = [i for names in domains.values() for i in names][:intents]
    with gzip.open(DATA / "imbalanced.jsonl.gz", "rt", encoding="utf-8") as f:
        data = [json.loads(line) for line in f]
    out = []
    for intent in keep:
        train = [r for r in data if r["label"] == intent and r["split"] == "train"]
        test = [r for r in data if r["label"] == intent and r["split"] == "test"]
        out += train[:max(1, round(len(train) * train_fraction))] + test[:test_per_intent]
    return keep, out


def vectors(texts: list[str]) -> np.ndarray:
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path("/tmp") / f"triage_clinc_{key}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    X = shared().embed(texts)
    np.save(path, X)
    return X


def score(h: head_mod.Head, X: np.ndarray, y: list[str]) -> tuple[float, float, int]:
    pred, conf = h.predict(X)
    correct = np.array(pred) == np.array(y)
    return float(correct.mean()), ece(conf, correct), len(set(h.classes) - set(pred))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--intents", type=int, default=77)
    ap.add_argument("--draws", type=int, default=1)
    ap.add_argument("--sizes", default="0,4,8")
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--test-per-intent", type=int, default=10)
    args = ap.parse_args()
    keep, data = rows(args.intents, args.train_fraction, args.test_per_intent)
    tax = Taxonomy(tuple(Category(i, i.replace("_", " ")) for i in keep))
    X = vectors([r["text"] for r in data])
    train = [i for i, r in enumerate(data) if r["split"] == "train"]
    test = np.array([i for i, r in enumerate(data) if r["split"] == "test"])
    y = [r["label"] for r in data]
    seeds = local.seeds_for(shared(), tax)
    counts = np.bincount([keep.index(y[i]) for i in train])
    print(f"CLINC150 imbalanced split, {len(keep)} intents: {len(train)} train labels ({counts.min()}-{counts.max()} "
          f"per intent), {len(test)} test tickets; mean of {args.draws} draws")

    def build(idx: np.ndarray) -> head_mod.Head:
        return local.build_head(seeds, tax, [(X[i], y[i], "operator") for i in idx])

    def measure(idx: np.ndarray) -> tuple[float, float, int]:
        return score(build(idx), X[test], [y[i] for i in test])

    plans: list[tuple[str, list[np.ndarray]]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        bal, nat = [], []
        for d in range(args.draws):
            rng = np.random.default_rng(d)
            by = {c: [i for i in train if y[i] == c] for c in keep}
            bal.append(np.array([i for c in keep for i in rng.choice(by[c], min(n, len(by[c])), replace=False)],
                                dtype=int))
            nat.append(rng.choice(train, n * len(keep), replace=False) if n else np.array([], dtype=int))
        plans.append((f"{n} per intent, balanced", bal))
        if n:
            plans.append((f"{n * len(keep)} as they come", nat))
    plans.append((f"all {len(train)} (imbalanced)", [np.array(train)]))
    print(f"{'labels':>28} | {'before: acc':>11} {'ECE':>6} {'silent':>6} | {'after: acc':>10} {'ECE':>6} "
          f"{'silent':>6} | ratio")
    for name, draws in plans:
        with mock.patch.object(head_mod, "balanced", lambda w, y, k: w):
            before = np.mean([measure(idx) for idx in draws], axis=0)
        after = np.mean([measure(idx) for idx in draws], axis=0)
        print(f"{name:>28} | {before[0]:>11.3f} {before[1]:>6.3f} {before[2]:>6.1f} | {after[0]:>10.3f} "
              f"{after[1]:>6.3f} {after[2]:>6.1f} | {after[0] / before[0]:.2f}x")


if __name__ == "__main__":
    main()
