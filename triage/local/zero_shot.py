"""Zero-shot confidence: the description view's temperature for a taxonomy with nothing to calibrate it on.

A taxonomy with no built-in examples (any taxonomy but the default one) and fewer than MIN_CALIBRATION labels has
no held-out answers to fit a temperature on, so the local tier answers with the description view alone (the
example view, trained on the description rows only, says nothing they do not and has no temperature of its own)
and takes its temperature from a map fitted once, on other data, over many taxonomies:

    log T = a + b * crowding + c * log k

k is the number of categories and `crowding` how alike the categories' descriptions are (the mean, over
categories, of the cosine to the nearest other description). The map needs no labels: both are read off the
taxonomy. Why these two: at a given similarity gap, a ticket is less likely right when the categories' own words
crowd each other (on CLINC150's domains the best temperature ran from 0.027 where descriptions are far apart,
travel, to 0.074 where they crowd, work), and k says how many neighbours there are to be confused with.

The shipped constants come from `python -m bench.fit_zero_shot`: CLINC150 (Larson et al. 2019, CC BY 3.0,
bench/data/clinc150), only the 73 intents that `bench.bench_clinc` never scores (its 77 are the first five
domains and two travel intents; these are the other 13 travel intents and the utility, work, small_talk and meta
domains), descriptions being the intent names in words. Taxonomies are drawn as a help desk's are, from one
business: domain by domain, k from 2 to 73, 30 draws each. Fitted by maximum likelihood (Newton), never on the
intents or queries any figure is scored on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# log T = a + b * crowding + c * log k, from `python -m bench.fit_zero_shot` (see the docstring for the data)
MAP = (-3.8204, 2.2742, -0.0597)
T_MIN, T_MAX = 0.01, 0.5  # a map read far outside the taxonomies it was fitted on stays in a sane range

Case = tuple[np.ndarray, np.ndarray, np.ndarray]  # (ticket unit vectors, description unit vectors, true index)


def crowding(desc: np.ndarray) -> float:
    """The mean, over categories, of the cosine between a category's description and its nearest other one
    (0 for one category). Unit vectors in, a number in [-1, 1] out."""
    if len(desc) < 2:
        return 0.0
    sims = desc @ desc.T
    np.fill_diagonal(sims, -np.inf)
    return float(sims.max(axis=1).mean())


def features(desc: np.ndarray) -> np.ndarray:
    return np.array([1.0, crowding(desc), math.log(max(len(desc), 1))])


def temperature(desc: np.ndarray, coef: Sequence[float] | None = None) -> float:
    """The description view's temperature for a taxonomy whose description vectors are `desc` (by MAP unless
    `coef` is given)."""
    log_t = float(features(desc) @ np.asarray(MAP if coef is None else coef))
    return float(np.clip(math.exp(log_t), T_MIN, T_MAX))


def fit_map(cases: Sequence[Case], iterations: int = 50) -> tuple[tuple[float, ...], float]:
    """The map's (a, b, c) maximising the likelihood of the true category under softmax(cosines / T) over every
    ticket of every taxonomy in `cases`, and that mean negative log-likelihood. Damped Newton on the three
    coefficients (the likelihood is smooth in log T; the step is halved until it helps)."""
    feats = np.array([features(d) for _, d, _ in cases])
    sims = [(X @ d.T).astype(np.float64) for X, d, _ in cases]
    rows = sum(len(y) for _, _, y in cases)

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        loss, grad, hess = 0.0, np.zeros(3), np.zeros((3, 3))
        for f, S, (_, _, y) in zip(feats, sims, cases, strict=True):
            t = math.exp(float(f @ theta))
            z = S / t
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            true = S[np.arange(len(y)), y]
            mean = (p * S).sum(axis=1)
            var = (p * S * S).sum(axis=1) - mean ** 2
            loss -= float(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).sum())
            d1 = float(((true - mean) / t).sum())  # d loss / d log T
            d2 = float((var / t ** 2 - (true - mean) / t).sum())
            grad += d1 * f
            hess += d2 * np.outer(f, f)
        return loss / rows, grad / rows, hess / rows

    theta = np.array([math.log(0.05), 0.0, 0.0])
    loss, grad, hess = evaluate(theta)
    for _ in range(iterations):
        try:
            step = np.linalg.solve(hess + 1e-6 * np.eye(3), grad)
        except np.linalg.LinAlgError:
            step = grad
        if not np.all(np.isfinite(step)) or float(step @ grad) <= 0:
            step = grad  # not a descent direction here: plain gradient
        size = 1.0
        while size > 1e-6:
            new = theta - size * step
            new_loss, new_grad, new_hess = evaluate(new)
            if new_loss < loss:
                break
            size /= 2
        else:
            break
        done = loss - new_loss < 1e-10
        theta, loss, grad, hess = new, new_loss, new_grad, new_hess
        if done:
            break
    return tuple(round(float(v), 4) for v in theta), loss
