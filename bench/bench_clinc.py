"""The local tier at many categories, on a public many-intent set: CLINC150's imbalanced split (Larson et al.
2019, CC BY 3.0; shipped in bench/data/clinc150, out of the wheel), `--intents` of its 150 intents (default 77).

    .venv/bin/python -m bench.bench_clinc [--intents 77] [--draws 1] [--train-fraction 0.5]
        [--test-per-intent 10] [--zero-shot-sizes 4,20] [--zero-shot-draws 20] [--zero-shot-only]

First, zero-shot (descriptions only, no labels) at 4 and 20 categories (taxonomies drawn domain by domain from the
scored intents, each draw's test tickets pooled) and at all of them: accuracy, ECE, the share settled at the
default threshold and accuracy among those, before (the previous rule: the equal mixture with an unfitted example
view) and after (the zero-shot map, triage/local/zero_shot.py, fitted by bench/fit_zero_shot.py on the intents
this bench never scores), in the same run.

Training labels come from the imbalanced train split (25, 50, 75 or 100 per intent; by default the first half of
each, keeping the imbalance); every figure is scored on the test split (by default 10 per intent, of 30). Each
intent's description is its name in words ("replacement card duration"): a taxonomy as a team would first write
it. Then three ways of adding labels, each trained exactly as in production
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
import dataclasses
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
from triage.settings import Settings
from triage.taxonomy import Category, Taxonomy

DATA = Path(__file__).resolve().parent / "data" / "clinc150"
FITTED_BEYOND = 77  # the zero-shot map is fitted on intent_order()[77:] (bench/fit_zero_shot.py --scored 77)


def intent_order() -> list[str]:
    """CLINC150's 150 intents, domain by domain (the order `--intents` takes the first of)."""
    domains = json.loads((DATA / "domains.json").read_text())
    return [i for names in domains.values() for i in names]


def load() -> list[dict[str, str]]:
    with gzip.open(DATA / "imbalanced.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def rows(intents: int, train_fraction: float, test_per_intent: int) -> tuple[list[str], list[dict[str, str]]]:
    """The first `intents` intents (domain by domain); of each, the first `train_fraction` of its training queries
    (so the split's imbalance is kept: 25-100 become 12-50 at a half) and `test_per_intent` test queries."""
    keep = intent_order()[:intents]
    data = load()
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


def domain_of() -> dict[str, str]:
    return {i: d for d, names in json.loads((DATA / "domains.json").read_text()).items() for i in names}


def draw(pool: list[str], k: int, rng: np.random.Generator, domain: dict[str, str]) -> list[str]:
    """k intents of `pool` as a help desk's taxonomy comes, from one business: domain by domain (domains in a
    random order, intents shuffled within each), the first k."""
    domains = list(dict.fromkeys(domain[i] for i in pool))
    rng.shuffle(domains)
    names: list[str] = []
    for d in domains:
        names += [str(i) for i in rng.permutation([i for i in pool if domain[i] == d])]
    return names[:k]


def previous_zero_shot(h: head_mod.Head) -> head_mod.Head:
    """The zero-shot rule before issue 25 for a taxonomy without examples: the equal mixture of the example view
    (trained on the description rows alone, temperature 1: nothing to fit it on) and the description view at a
    fixed temperature of 0.05 (fitted on the four built-in categories)."""
    return dataclasses.replace(h, desc_temperature=0.05, desc_weight=0.5)


def settled_figures(conf: np.ndarray, correct: np.ndarray, threshold: float) -> list[float]:
    """Accuracy, ECE, the share at or above the threshold (settled without review) and accuracy among those."""
    settled = conf >= threshold
    return [float(correct.mean()), ece(conf, correct), float(settled.mean()),
            float(correct[settled].mean()) if settled.any() else float("nan")]


def zero_shot_table(keep: list[str], X: np.ndarray, y: list[str], sizes: list[int], draws: int) -> None:
    """Zero-shot before/after, on taxonomies of k of the scored intents (drawn domain by domain; all of them once
    for k = len(keep)), every draw's test tickets pooled."""
    threshold = Settings().threshold
    domain = domain_of()
    print(f"zero-shot (descriptions only), before = the previous rule, after = the zero-shot map; settled = "
          f"confidence >= the default threshold {threshold}; each draw's test tickets pooled")
    print(f"{'categories':>10} {'draws':>5} {'tickets':>7} | {'before: acc':>11} {'ECE':>5} {'settled':>7} "
          f"{'right':>5} | {'after: acc':>10} {'ECE':>5} {'settled':>7} {'right':>5}")
    for k in sizes:
        rng = np.random.default_rng(k)
        n = draws if k < len(keep) else 1
        got: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"before": [], "after": []}
        for _ in range(n):
            names = draw(keep, k, rng, domain) if k < len(keep) else keep
            sub = Taxonomy(tuple(Category(i, i.replace("_", " ")) for i in names))
            mine = [i for i, lab in enumerate(y) if lab in set(names)]
            h = local.build_head(local.seeds_for(shared(), sub), sub, [])
            for name, version in (("before", previous_zero_shot(h)), ("after", h)):
                pred, conf = version.predict(X[mine])
                got[name].append((conf, np.array(pred) == np.array([y[i] for i in mine])))
        b, a = (settled_figures(np.concatenate([c for c, _ in got[name]]), np.concatenate([r for _, r in got[name]]),
                                threshold) for name in ("before", "after"))
        print(f"{k:>10} {n:>5} {sum(len(c) for c, _ in got['after']):>7} | {b[0]:>11.3f} {b[1]:>5.3f} {b[2]:>7.1%} "
              f"{b[3]:>5.3f} | {a[0]:>10.3f} {a[1]:>5.3f} {a[2]:>7.1%} {a[3]:>5.3f}")


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
    ap.add_argument("--zero-shot-sizes", default="4,20", help="taxonomy sizes for the zero-shot table (and all)")
    ap.add_argument("--zero-shot-draws", type=int, default=20)
    ap.add_argument("--zero-shot-only", action="store_true", help="only the zero-shot table")
    args = ap.parse_args()
    keep, data = rows(args.intents, args.train_fraction, args.test_per_intent)
    tax = Taxonomy(tuple(Category(i, i.replace("_", " ")) for i in keep))
    X = vectors([r["text"] for r in data])
    train = [i for i, r in enumerate(data) if r["split"] == "train"]
    test = np.array([i for i, r in enumerate(data) if r["split"] == "test"])
    y = [r["label"] for r in data]
    counts = np.bincount([keep.index(y[i]) for i in train])
    print(f"CLINC150 imbalanced split, {len(keep)} intents: {len(train)} train labels ({counts.min()}-{counts.max()} "
          f"per intent), {len(test)} test tickets")
    if args.intents > FITTED_BEYOND:
        print(f"note: the shipped zero-shot map was fitted on the intents after the first {FITTED_BEYOND}; with "
              f"--intents {args.intents} the zero-shot table scores some of them")
    zero_shot_table(keep, X[test], [y[i] for i in test],
                    [int(k) for k in args.zero_shot_sizes.split(",") if k] + [len(keep)], args.zero_shot_draws)
    if args.zero_shot_only:
        return
    seeds = local.seeds_for(shared(), tax)
    print(f"labels added (mean of {args.draws} draws); before = without class-balanced weights")

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
