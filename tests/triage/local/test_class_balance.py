"""Class imbalance cannot silence a category: with 150 labels for each of seven categories and 4 for an eighth that
sits next to one of them, the unweighted head never predicts the small one; class-balanced weights
(head.balanced: no category under a third of the largest) give it back its recall without costing the
others. Synthetic vectors (no model needed); the same
check on a public many-intent set is bench/bench_clinc.py. Also: the categories never predicted are reported."""

from collections.abc import Callable

import numpy as np
import pytest

from triage.local import curve, head
from triage.local.head import Head, balanced, fit, train

K, D = 8, 16


def data(seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres[K - 1] = 0.8 * centres[0] + 0.6 * centres[K - 1]  # the small category lives next to category 0
    centres[K - 1] /= np.linalg.norm(centres[K - 1])

    def draw(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        X = np.vstack([centres[c] + 0.55 * rng.normal(size=(n, D)) / np.sqrt(D) for c, n in enumerate(counts)])
        y = np.concatenate([[c] * n for c, n in enumerate(counts)])
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), y

    return draw([150] * (K - 1) + [4]), draw([100] * K)


def test_balanced_weights_raise_small_categories_to_a_third_and_keep_the_ranking_inside_one() -> None:
    y = np.array([0] * 10 + [1] * 2 + [2] * 5)
    w = np.array([2.0] + [1.0] * 16)
    out = balanced(w, y, 4)
    totals = np.bincount(y, weights=out, minlength=4)
    assert totals[0] == 11 and totals[1] == pytest.approx(11 / 3) and totals[2] == 5 and totals[3] == 0
    assert out[0] == pytest.approx(2 * out[1])  # an operator label still outweighs a machine one in its category
    assert np.array_equal(balanced(w[:12] * 0 + 1, np.array([0] * 6 + [1] * 6), 2), np.ones(12))  # balanced: as is


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_unweighted_head_silences_a_rare_category_and_the_balanced_one_does_not(seed: int) -> None:
    (X, y), (Xt, yt) = data(seed)
    plain_W, plain_b = train(X, y, np.ones(len(y)), K)
    plain = (Xt @ plain_W + plain_b).argmax(axis=1)
    bal_W, bal_b = train(X, y, balanced(np.ones(len(y)), y, K), K)
    bal = (Xt @ bal_W + bal_b).argmax(axis=1)
    recall: Callable[[np.ndarray], float] = lambda p: float((p[yt == K - 1] == K - 1).mean())  # noqa: E731
    assert recall(plain) < 0.1  # the failure: the rare category is (nearly) never said
    assert recall(bal) > 0.5
    assert (bal == yt).mean() >= (plain == yt).mean()  # and overall accuracy does not pay for it


def test_fit_reports_the_categories_it_never_predicts(monkeypatch: pytest.MonkeyPatch) -> None:
    (X, y), _ = data(0)
    classes = [f"c{i}" for i in range(K)]
    labels = [classes[i] for i in y]
    human = np.ones(len(y), dtype=bool)
    assert fit(X, labels, np.ones(len(y), dtype=np.float32), classes, human).metrics["never_predicted"] == []
    monkeypatch.setattr(head, "balanced", lambda w, y, k: w)  # without the fix
    silenced = fit(X, labels, np.ones(len(y), dtype=np.float32), classes, human).metrics["never_predicted"]
    assert silenced == ["c7"]


def test_the_learning_curve_also_measures_labels_as_they_come() -> None:
    (X, y), _ = data(0)
    classes = [f"c{i}" for i in range(K)]

    def build(Xs: np.ndarray, labs: list[str]) -> Head:
        if not labs:
            return fit(X[:K * 2], [classes[i] for i in y[:K * 2]], np.ones(K * 2, dtype=np.float32), classes,
                       np.zeros(K * 2, dtype=bool))
        return fit(Xs, labs, np.ones(len(labs), dtype=np.float32), classes, np.ones(len(labs), dtype=bool))

    out = curve.learning_curve(build, X, [classes[i] for i in y], sizes=(0, 2, 8), draws=1)
    assert out is not None
    assert [p["labels"] for p in out["as_labelled"]] == [16, 64]  # n per category in total, drawn as they come
    assert all(0 <= p["accuracy"] <= 1 for p in out["as_labelled"])
