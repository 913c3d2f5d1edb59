"""The learning curve: how accuracy and calibration grow with the number of labels per category.

For each of DRAWS random draws, a stratified third of the labelled tickets is set aside and scored; from the rest,
n labels per category are drawn and the local tier is trained on the built-in seeds plus those n (the same
training and calibration as in production). The score set of a draw is the same for every n, so the points of a
curve are comparable. Sizes the labelled tickets cannot fill for every category are left out.

Balanced draws flatter a tier that labels arrive for unevenly, so the curve has a second series, `as_labelled`:
the same total numbers of labels (n times the categories), drawn at random from the rest as they are, with the
labels' own imbalance, scored on the same third.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from triage.local.head import Head
from triage.routing.calibration import ece

SIZES = (0, 4, 8, 16, 32, 64, 128)
DRAWS = 3
MIN_LABELS = 12  # fewer labelled tickets make a score set too small to say anything
TEST_FRACTION = 1 / 3

Build = Callable[[np.ndarray, list[str]], Head]


def learning_curve(build: Build, X: np.ndarray, labels: Sequence[str], sizes: Sequence[int] = SIZES,
                   draws: int = DRAWS, seed: int = 0) -> dict[str, Any] | None:
    """`build(vectors, labels)` trains a head on the seeds plus those labels. None below MIN_LABELS."""
    y = np.asarray(labels)
    if len(y) < MIN_LABELS:
        return None
    present = sorted(set(y.tolist()))
    zero = build(X[:0], [])
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    natural: dict[int, list[tuple[float, float]]] = {}
    scored = 0
    for d in range(draws):
        rng = np.random.default_rng(seed + d)
        test_parts, pools = [], {}
        for c in present:
            idx = rng.permutation(np.where(y == c)[0])
            cut = max(1, round(len(idx) * TEST_FRACTION)) if len(idx) > 1 else 0
            test_parts.append(idx[:cut])
            pools[c] = idx[cut:]
        test = np.concatenate(test_parts)
        if len(test) == 0:
            continue
        scored = len(test)
        smallest = min(len(p) for p in pools.values())
        pool = np.concatenate(list(pools.values()))
        as_they_come = np.random.default_rng(seed + 1000 + d)  # its own draws: the balanced ones stay as they were
        for n in sizes:
            total = n * len(present)
            if 0 < total <= len(pool):
                chosen = as_they_come.choice(pool, total, replace=False)
                if len(set(y[chosen].tolist())) > 1:
                    pred, conf = build(X[chosen], [str(v) for v in y[chosen]]).predict(X[test])
                    correct = np.array(pred) == y[test]
                    natural.setdefault(total, []).append((float(correct.mean()), ece(conf, correct)))
            if n > smallest:
                continue
            if n == 0:
                head = zero
            else:
                chosen = np.concatenate([rng.choice(pools[c], n, replace=False) for c in present])
                head = build(X[chosen], [str(v) for v in y[chosen]])
            pred, conf = head.predict(X[test])
            correct = np.array(pred) == y[test]
            runs[n].append((float(correct.mean()), ece(conf, correct)))
    points = []
    for n in sizes:
        if not runs[n]:
            continue
        acc = np.array([a for a, _ in runs[n]])
        errors = np.array([e for _, e in runs[n]])
        points.append({"per_category": n, "labels": n * len(present), "accuracy": float(acc.mean()),
                       "accuracy_low": float(acc.min()), "accuracy_high": float(acc.max()), "ece": float(errors.mean()),
                       "ece_low": float(errors.min()), "ece_high": float(errors.max()), "draws": len(runs[n])})
    as_labelled = [{"labels": total, "accuracy": float(np.mean([a for a, _ in r])),
                    "ece": float(np.mean([e for _, e in r])), "draws": len(r)} for total, r in sorted(natural.items())]
    return {"points": points, "as_labelled": as_labelled, "labels": int(len(y)), "scored": scored, "draws": draws}
