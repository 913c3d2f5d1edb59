"""From what a model says to how often it is right: a per-model map fitted on operator labels.

Claude's API has no logprobs; its confidence is what the model reports, and the Quality page shows it is not
the chance of being right. We fit Platt scaling on the logit of the stated confidence,
p = sigmoid(a * logit(c) + b), with a weak prior pulling (a, b) toward (1, 0), the identity:
- two parameters are stable on the tens-to-hundreds of labels a team has (isotonic regression needs more, and
  on Claude's clustered confidences (0.85, 0.9, 0.95) it degenerates into a few steps anyway);
- the map is monotone, so ranking (and therefore which tickets escalate first) is kept;
- the prior keeps a thin label set from swinging the map; with many labels the data dominate.
A map is fitted only from MIN_LABELS labelled answers with at least MIN_EACH right and MIN_EACH wrong: below
that the slope is mostly noise (at 50 labels an accuracy is only known to about +/- 7 points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_LABELS = 50
MIN_EACH = 5
_EPS = 1e-4
_PRIOR = 2.0  # strength of the pull toward the identity, in pseudo-labels


@dataclass(frozen=True)
class Calibration:
    model: str
    a: float
    b: float
    n: int  # labelled answers it was fitted on
    ece_before: float
    ece_after: float  # fit(): in-sample; a stored map carries the cross-validated figure (answers it did not see)
    id: int | None = None  # its row in `calibrations` once stored (what each call records)

    def apply(self, confidence: float | None) -> float | None:
        if confidence is None:
            return None
        return _sigmoid(self.a * _logit(confidence) + self.b)

    def curve(self, points: int = 41) -> list[tuple[float, float]]:
        """(stated, calibrated) from 0.01 to 0.99, for a chart."""
        return [(float(x), self.apply(float(x)) or 0.0) for x in np.linspace(0.01, 0.99, points)]

    def describe(self, confidence: float) -> str:
        value = self.apply(confidence) or 0.0
        return f"says {confidence:.0%}, right about {value:.0%} at that level (fitted on {self.n} labels)"


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


BINS = 10  # reliability bins of a tenth each


def bin_of(confidence: Sequence[float] | np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each confidence's reliability bin: bin k holds [k/bins, (k+1)/bins), the last one [1 - 1/bins, 1]. A
    confidence on an edge starts its bin: 0.7 is in 0.7-0.8 (snapped first, so that 0.7's float rounding, or
    np.linspace's 0.7000000000000001 edge, cannot drop it into 0.6-0.7), as "escalate when under 0.7" counts
    0.7 as sure enough. The bins of every calibration error (`ece`), the Quality page's reliability chart and
    each model's reliability levels."""
    c = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    which: np.ndarray = np.minimum(np.floor(np.round(c * bins, 9)).astype(int), bins - 1)
    return which


def ece(confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = BINS,
        weights: Sequence[float] | np.ndarray | None = None) -> float:
    """Expected calibration error, the one "Calibration error" every page, command and the local tier shows:
    over the bins of `bin_of`, each bin's share of the answers times |its mean confidence - its share right|.
    0 when there are no answers. `weights`: each answer counts that much (shares and means weighted; a blind
    audit's answer stands for 1/its chance of being drawn, see triage/quality/calibrate.py); None: once each."""
    conf, ok = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return 0.0
    which = bin_of(conf, bins)
    total = 0.0
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        for b in np.unique(which):
            m = which == b
            wb = float(w[m].sum())
            total += wb / float(w.sum()) * abs(float(w[m] @ conf[m]) / wb - float(w[m] @ ok[m]) / wb)
        return total
    for b in np.unique(which):
        m = which == b
        total += float(m.mean()) * abs(float(conf[m].mean()) - float(ok[m].mean()))
    return total


def enough(correct: Sequence[bool]) -> str | None:
    """None when a map may be fitted; otherwise what is missing ("not enough labels yet: ...")."""
    n, right = len(correct), int(sum(bool(c) for c in correct))
    if n < MIN_LABELS:
        return f"not enough labels yet: {n} of {MIN_LABELS} labelled answers"
    if right < MIN_EACH or n - right < MIN_EACH:
        return f"not enough labels yet: needs {MIN_EACH} right and {MIN_EACH} wrong answers (has {right} / {n - right})"
    return None


def fit(model: str, confidence: Sequence[float], correct: Sequence[bool], iterations: int = 200,
        weights: Sequence[float] | None = None) -> Calibration | None:
    """Platt scaling with a prior toward the identity (Newton steps on the penalised log-loss); None when there
    are not enough labels (see `enough`). `weights`: each answer's weight in the log-loss (inverse-probability
    weights, triage/quality/calibrate.py), rescaled to average 1 so the prior keeps its strength of _PRIOR
    pseudo-labels against the n answers; None (or all equal): every answer once, exactly the unweighted fit."""
    if enough(correct) is not None:
        return None
    x = np.array([_logit(c) for c in confidence])
    y = np.asarray(correct, dtype=float)
    X = np.column_stack([x, np.ones_like(x)])
    prior = np.array([1.0, 0.0])
    v = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float) * (len(y) / float(np.sum(weights)))

    def loss(w: np.ndarray) -> float:
        z = X @ w
        return float(np.sum(v * (np.logaddexp(0, z) - y * z)) + _PRIOR / 2 * np.sum((w - prior) ** 2))

    w = prior.copy()  # start at the identity: a, b
    for _ in range(iterations):
        p = 0.5 * (1 + np.tanh(X @ w / 2))  # sigmoid without overflow
        grad = X.T @ (v * (p - y)) + _PRIOR * (w - prior)
        hess = (X * (v * p * (1 - p))[:, None]).T @ X + _PRIOR * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t, current = 1.0, loss(w)
        while loss(w - t * step) > current and t > 1e-6:  # damped Newton: never step uphill
            t /= 2
        w = w - t * step
        if np.abs(t * step).max() < 1e-9:
            break
    cal = Calibration(model, float(w[0]), float(w[1]), len(y), ece(confidence, correct, weights=weights), 0.0)
    after = [cal.apply(c) or 0.0 for c in confidence]
    return Calibration(model, cal.a, cal.b, cal.n, cal.ece_before, ece(after, correct, weights=weights))


def cross_validated_ece(confidence: Sequence[float], correct: Sequence[bool], folds: int = 5,
                        seed: int = 0, weights: Sequence[float] | None = None) -> float | None:
    """ECE of the calibrated confidence on answers the map did not see (k-fold); None without enough labels.
    `weights`: as in `fit`, for the fits and the error alike."""
    if enough(correct) is not None:
        return None
    idx = np.random.default_rng(seed).permutation(len(correct))
    out = np.zeros(len(correct))
    conf, ok = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    wt = None if weights is None else np.asarray(weights, dtype=float)
    for k in range(folds):
        test = idx[k::folds]
        train = np.setdiff1d(idx, test)
        cal = fit("cv", conf[train].tolist(), ok[train].tolist(),
                  weights=None if wt is None else wt[train].tolist())
        out[test] = [(cal.apply(c) if cal else c) or 0.0 for c in conf[test]]
    return ece(out.tolist(), ok.tolist(), weights=weights)
