"""The local tier's classifier: two views of a ticket's sentence embedding, mixed.

- the *example view*: a linear softmax head trained (weighted cross-entropy) on the built-in examples, the
  category descriptions and the labels in the database;
- the *description view*: cosine similarity to each category's description, which is never trained.

Why a mixture, and why it admits doubt (the zero-shot rule)
-----------------------------------------------------------
Calibrating the example view on held-out built-in examples is optimistic: those examples are far more alike than
real traffic is. Measured on real banking/e-commerce messages, the example head alone reached 63% with a stated
confidence near 0.87 (ECE 0.24), while the description view alone reached 0.75-0.79. A fixed cap or shrink towards
uniform trades one error for the other because it cannot tell familiar text from strange text: a cap at 0.85
took the ECE on our indirect banking queries from 0.16 to 0.06 but raised it from 0.02 to 0.16 on messages like
the examples. What does move with the strangeness of the text is whether the two views agree: on text like the
examples they mostly agree; on the indirect queries (bench/data/README.md), with the first author's examples
only, they disagreed on 28% of tickets, and there the example head was right 43% of the time. So, until
operators have labelled enough tickets:

- the answer is the equal mixture p = 1/2 p_examples + 1/2 p_description, and neither weight is tuned on our own
  data. When the views disagree, no category can get much more than half the mass, so the ticket goes to review;
  a ticket is confident only when the examples and the taxonomy's own words point the same way (conservative by
  construction);
- each view's temperature is fitted on predictions it made for text it had not seen: the description view on the
  built-in examples (it is never trained on them), the example view on whole *voices* held out at a time (see
  examples.VOICES) and on out-of-fold machine labels, never on a random split of near-duplicates;
- machine labels (Haiku, Sonnet) train the example view but do not relax the rule: they are biased towards easy
  tickets.

Taxonomies without examples (the zero-shot map)
-----------------------------------------------
The rule above needs something held out to fit the temperatures on. A taxonomy of the team's own has no built-in
examples, so until MIN_CALIBRATION labels exist there is nothing: the example view is then trained on the
description rows alone (the descriptions again, in another form, not a second opinion) and its temperature is
never fitted, so the equal mixture was mostly the doubt of an unfitted view: on 77 CLINC150 intents its stated
confidence averaged 0.41 against 0.65 right (ECE 0.24) and 99% of tickets went to review. So with fewer than
MIN_CALIBRATION held-out answers to calibrate on, the head answers with the description view alone, at the
temperature of a map fitted once on other data (triage.local.zero_shot: the temperature from how alike the
categories' descriptions are and how many there are; fitted on CLINC150 intents that no figure is scored on).
Labels below that count still train the head but do not yet speak. Measured by `python -m bench.bench_clinc`.

Class balance
-------------
Row weights are rescaled so that no category carries less than a third of the total weight of the most weighted
one (`balanced`, MAX_IMBALANCE): the source weights (operator over Sonnet over Haiku) still rank rows within a
category. Unweighted, the bias terms learn the label frequencies, and a rare category's few rows cannot pull the
argmax from a frequent neighbour: the tier then never predicts it (tests/triage/local/test_class_balance.py: 150
labels against 4, recall 0 unweighted; 0.77 with the floor, 0.89 with fully equal totals). Why a floor and not
equal totals: labels mirror traffic, and up to 3:1 that prior is worth keeping. Measured on the sample set with 60
operator labels all of one category (the case tests/triage/local/test_local_tier.py pins), equal totals cost 10
points of accuracy on them (0.98 -> 0.88) and square-root weights 5; the floor costs nothing there. Categories the
head never predicts out of fold are listed in its metrics (`never_predicted`), shown by `triage train` and
Settings.

Once MIN_CALIBRATION operator labels exist, the tier is calibrated on those (real traffic, predicted out of fold):
both temperatures and the description weight (one of DESC_WEIGHTS, chosen by held-out likelihood) are fitted on
them, so with many labels the description view fades out and the trained head speaks.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from triage.local import zero_shot
from triage.routing.calibration import ece

L2 = 1e-3
EPOCHS = 150
LR = 0.05
CHUNK = 256  # rows per matrix product: small products stay single-threaded, far faster on a busy 2-core box
ZERO_SHOT_DESC_WEIGHT = 0.5
DESC_WEIGHTS = (0.0, 0.1, 0.25, 0.5)
MIN_CALIBRATION = 20  # operator labels before they, not the built-in examples, calibrate the tier
DESCRIPTION = ""  # the group of the category-description rows: always trained on, never held out
CALIBRATED_ON = ("built-in examples (voices held out)", "operator labels",
                 f"the zero-shot map (descriptions only: under {MIN_CALIBRATION} held-out labels or examples)")


@dataclass
class Head:
    classes: list[str]
    W: np.ndarray  # (dim, k)
    b: np.ndarray  # (k,)
    temperature: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    desc: np.ndarray | None = None  # (k, dim) unit vectors of the category descriptions
    desc_temperature: float = 1.0
    desc_weight: float = 0.0

    def logits(self, X: np.ndarray) -> np.ndarray:
        out: np.ndarray = _matmul(X, self.W) + self.b
        return out

    def proba(self, X: np.ndarray) -> np.ndarray:
        return mix(self, self.logits(X), X)

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        p = self.proba(X)
        idx = p.argmax(axis=1)
        return [self.classes[i] for i in idx], p[np.arange(len(idx)), idx]

    def to_dict(self) -> dict[str, Any]:
        d = {"classes": self.classes, "W": _b64(self.W), "b": _b64(self.b), "shape": list(self.W.shape),
             "temperature": self.temperature, "metrics": self.metrics}
        if self.desc is not None:
            d.update(desc=_b64(self.desc), desc_temperature=self.desc_temperature, desc_weight=self.desc_weight)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Head:
        W = np.frombuffer(base64.b64decode(d["W"]), dtype="<f4").reshape(d["shape"]).copy()
        b = np.frombuffer(base64.b64decode(d["b"]), dtype="<f4").copy()
        desc = None
        if d.get("desc"):
            desc = np.frombuffer(base64.b64decode(d["desc"]), dtype="<f4").reshape(len(d["classes"]), -1).copy()
        return cls(list(d["classes"]), W, b, float(d["temperature"]), dict(d.get("metrics", {})), desc,
                   float(d.get("desc_temperature", 1.0)), float(d.get("desc_weight", 0.0)))


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()


def _matmul(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.vstack([X[i:i + CHUNK] @ W for i in range(0, len(X), CHUNK)]) if len(X) else X @ W


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def train(X: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, epochs: int = EPOCHS) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression by full-batch Adam. X rows are unit vectors."""
    X = X.astype(np.float32)
    n, d = X.shape
    W = np.zeros((d, k), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    Y = np.zeros((n, k), dtype=np.float32)
    Y[np.arange(n), y] = 1
    w = (w / w.sum()).astype(np.float32)[:, None]
    chunks = [(X[i:i + CHUNK], slice(i, i + CHUNK)) for i in range(0, n, CHUNK)]
    mW, vW, mb, vb = (np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b))
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        gW = L2 * W
        gb = np.zeros_like(b)
        for Xc, rows in chunks:
            G = (softmax(Xc @ W + b) - Y[rows]) * w[rows]
            gW = gW + Xc.T @ G
            gb += G.sum(axis=0)
        mW = b1 * mW + (1 - b1) * gW
        vW = b2 * vW + (1 - b2) * gW * gW
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        W -= LR * (mW / c1) / (np.sqrt(vW / c2) + eps)
        b -= LR * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return W, b


MAX_IMBALANCE = 3.0  # no category's total weight under 1/3 of the largest (see "Class balance" above)


def balanced(weights: np.ndarray, y: np.ndarray, k: int, max_ratio: float = MAX_IMBALANCE) -> np.ndarray:
    """The weights with every category present raised to at least 1/max_ratio of the largest category's total
    (rows of one category scaled alike, so their ranking within it stays): no category outweighed into silence,
    while the labels' own mix still sets the prior up to that ratio."""
    totals = np.bincount(y, weights=weights, minlength=k)
    present = totals > 0
    if not present.any():
        return weights
    floor = totals.max() / max_ratio
    scale = np.where(present, np.maximum(1.0, floor / np.where(present, totals, 1)), 0.0)
    out: np.ndarray = (weights * scale[y]).astype(np.float32)
    return out


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (golden-section search on log T)."""
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        return _nll(softmax(logits / math.exp(log_t)), y)

    lo, hi = math.log(0.01), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(60):
        if nll(a) < nll(c):
            hi = c
        else:
            lo = a
        a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    return math.exp((lo + hi) / 2)


def _folds(groups: list[str | None], n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each row: a whole voice of built-in examples per fold, labelled rows at random, -1 (never held out)
    for the description rows."""
    fold = np.full(len(groups), -1)
    labelled = np.array([g is None for g in groups])
    fold[labelled] = rng.permutation(int(labelled.sum())) % n_folds
    voices = sorted({g for g in groups if g is not None and g != DESCRIPTION})
    offset = int(rng.integers(n_folds))
    for i, voice in enumerate(voices):
        fold[[g == voice for g in groups]] = (i + offset) % n_folds
    return fold


def fit(X: np.ndarray, labels: list[str], weights: np.ndarray, classes: list[str], human: np.ndarray,
        groups: list[str | None] | None = None, desc: np.ndarray | None = None, seed: int = 0,
        epochs: int | None = None) -> Head:
    """Train on everything; calibrate and measure on held-out predictions (see the module docstring).

    `groups` names each row's voice for built-in examples, DESCRIPTION for description rows, None for labels
    from the database (all None when omitted). `human` marks operator labels: the accuracy reported for tier-0
    gating, and the calibration once there are MIN_CALIBRATION of them, use those only. `desc` holds the category
    descriptions' unit vectors (no description view when omitted)."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lab] for lab in labels], dtype=int)
    n, k = len(y), len(classes)
    weights = balanced(np.asarray(weights, dtype=np.float64), y, k)
    groups = list(groups) if groups is not None else [None] * n
    n_folds = 3 if n >= 300 else 5
    epochs = epochs or (EPOCHS if n < 2000 else 120)
    fold = _folds(groups, n_folds, np.random.default_rng(seed))
    oof = np.zeros((n, k), dtype=np.float32)
    for f in range(n_folds):
        tr, te = fold != f, fold == f
        if te.any() and len(set(y[tr])) > 1:
            W, b = train(X[tr], y[tr], weights[tr], k, epochs)
            oof[te] = _matmul(X[te], W) + b
    held = fold >= 0
    by_operators = int(human.sum()) >= MIN_CALIBRATION
    cal = held & human if by_operators else held
    head = Head(list(classes), *train(X, y, weights, k, epochs), fit_temperature(oof[cal], y[cal]), desc=desc)
    mapped = desc is not None and int(cal.sum()) < MIN_CALIBRATION
    if desc is not None and mapped:  # too little held out to fit on: the description view alone, by the map
        head.desc_temperature, head.desc_weight = zero_shot.temperature(desc), 1.0
    elif desc is not None:
        sims = X @ desc.T
        head.desc_temperature = fit_temperature(sims[cal], y[cal])
        head.desc_weight = ZERO_SHOT_DESC_WEIGHT
        if by_operators:
            p_ex, p_desc = softmax(oof[cal] / head.temperature), softmax(sims[cal] / head.desc_temperature)
            head.desc_weight = min(DESC_WEIGHTS, key=lambda w: _nll((1 - w) * p_ex + w * p_desc, y[cal]))
    p = mix(head, oof, X)
    pred, conf = p.argmax(axis=1), p.max(axis=1)
    correct = pred == y
    metrics: dict[str, Any] = {"n_train": int(n), "oof_accuracy": float(correct[held].mean()) if held.any() else None,
                     "oof_ece": ece(conf[held], correct[held]),
                     "calibrated_on": CALIBRATED_ON[2 if mapped else int(by_operators)],
                     "desc_weight": head.desc_weight,
                     "never_predicted": never_predicted(classes, y[held], pred[held])}
    if human.any():
        metrics.update(human_n=int(human.sum()), human_accuracy=float(correct[human].mean()),
                       human_ece=ece(conf[human], correct[human]))
    head.metrics = metrics
    return head


def never_predicted(classes: list[str], y: np.ndarray, pred: np.ndarray) -> list[str]:
    """Categories with held-out rows that the head predicted for none of them (nor for any other row)."""
    seen, said = set(y.tolist()), set(pred.tolist())
    return [classes[i] for i in sorted(seen - said)]


def mix(head: Head, logits: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The head's answer for precomputed example-view logits (out-of-fold ones when measuring)."""
    p = softmax(logits / head.temperature)
    if head.desc is None or head.desc_weight <= 0:
        return p
    return (1 - head.desc_weight) * p + head.desc_weight * softmax(X @ head.desc.T / head.desc_temperature)
