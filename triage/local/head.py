"""A linear softmax head over sentence embeddings, trained with weighted cross-entropy, calibrated with one
temperature fitted on held-out predictions (so that "0.9" means right about 90% of the time)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field

import numpy as np

L2 = 1e-3
EPOCHS = 300
LR = 0.05


@dataclass
class Head:
    classes: list[str]
    W: np.ndarray  # (dim, k)
    b: np.ndarray  # (k,)
    temperature: float = 1.0
    metrics: dict = field(default_factory=dict)

    def logits(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W + self.b

    def proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.logits(X) / self.temperature)

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        p = self.proba(X)
        idx = p.argmax(axis=1)
        return [self.classes[i] for i in idx], p[np.arange(len(idx)), idx]

    def to_dict(self) -> dict:
        return {"classes": self.classes, "W": _b64(self.W), "b": _b64(self.b), "shape": list(self.W.shape),
                "temperature": self.temperature, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, d: dict) -> Head:
        W = np.frombuffer(base64.b64decode(d["W"]), dtype="<f4").reshape(d["shape"]).copy()
        b = np.frombuffer(base64.b64decode(d["b"]), dtype="<f4").copy()
        return cls(list(d["classes"]), W, b, float(d["temperature"]), dict(d.get("metrics", {})))


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, dtype="<f4").tobytes()).decode()


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(X: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, epochs: int = EPOCHS) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression by full-batch Adam. X rows are unit vectors."""
    X = X.astype(np.float32)
    n, d = X.shape
    W = np.zeros((d, k), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    Y = np.zeros((n, k), dtype=np.float32)
    Y[np.arange(n), y] = 1
    w = (w / w.sum()).astype(np.float32)[:, None]
    mW, vW, mb, vb = (np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b))
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        P = softmax(X @ W + b)
        G = (P - Y) * w
        gW = X.T @ G + L2 * W
        gb = G.sum(axis=0)
        mW = b1 * mW + (1 - b1) * gW
        vW = b2 * vW + (1 - b2) * gW * gW
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        W -= LR * (mW / c1) / (np.sqrt(vW / c2) + eps)
        b -= LR * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return W, b


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (golden-section search on log T)."""
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits / math.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(60):
        if nll(a) < nll(c):
            hi = c
        else:
            lo = a
        a, c = hi - g * (hi - lo), lo + g * (hi - lo)
    return math.exp((lo + hi) / 2)


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    conf, correct = np.asarray(conf, dtype=float), np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(ece)


def fit(X: np.ndarray, labels: list[str], weights: np.ndarray, classes: list[str], human: np.ndarray,
        seed: int = 0) -> Head:
    """Train on everything; calibrate and measure on out-of-fold predictions.

    `human` marks operator labels: the accuracy reported for tier-0 gating is measured on those only."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[lab] for lab in labels])
    n = len(y)
    folds = 3 if n >= 300 else 5
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(n) % folds
    oof = np.zeros((n, len(classes)), dtype=np.float32)
    epochs = EPOCHS if n < 2000 else 120
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        if te.any() and len(set(y[tr])) > 1:
            W, b = train(X[tr], y[tr], weights[tr], len(classes), epochs)
            oof[te] = X[te] @ W + b
    T = fit_temperature(oof, y)
    W, b = train(X, y, weights, len(classes), epochs)
    p = softmax(oof / T)
    pred, conf = p.argmax(axis=1), p.max(axis=1)
    correct = pred == y
    metrics = {"n_train": int(n), "oof_accuracy": float(correct.mean()) if n else None,
               "oof_ece": expected_calibration_error(conf, correct)}
    if human.any():
        metrics.update(human_n=int(human.sum()), human_accuracy=float(correct[human].mean()),
                       human_ece=expected_calibration_error(conf[human], correct[human]))
    return Head(list(classes), W, b, T, metrics)
