"""Classification scores shared by `triage eval` (a gold file) and the Quality page / `triage quality` (operator
labels): per-category precision, recall and F1, macro-F1, and the confusion matrix."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NotRequired, TypedDict, TypeVar

from db.quality import Answer

K = TypeVar("K", bound=Hashable)


class ClassScores(TypedDict):
    """One class: precision, recall, F1 and support (how many truly are)."""

    precision: float
    recall: float
    f1: float
    support: int


class Confusion(TypedDict):
    """Counts of (true label, predicted label): `matrix[i][j]` tickets labelled `labels[i]` by the operator (or the
    gold file) and `labels[j]` by the model; a submatrix names its columns apart (with "other" last)."""

    labels: list[str]
    matrix: list[list[int]]
    columns: NotRequired[list[str]]  # a submatrix's columns (`submatrix`); else the columns are `labels`


class ConfusedPair(TypedDict):
    truth: str  # the operator's label
    said: str  # the model's
    n: int
    share: float  # of the operator's label (its row)


class CategoryRecall(TypedDict):
    category: str
    support: int
    recall: float


def latest_labelled(rows: Sequence[Answer], key: Callable[[Answer], K | None]) -> dict[K, dict[int, Answer]]:
    """Per key, each ticket's latest answer (`rows` in call order: a later row replaces an earlier one), kept
    when it has a label: what every Quality figure counts. Rows whose key is None are left out, and so are keys
    none of whose latest answers has a label."""
    latest: dict[K, dict[int, Answer]] = {}
    for r in rows:
        k = key(r)
        if k is not None:
            latest.setdefault(k, {})[r["ticket_id"]] = r
    kept = {k: {t: a for t, a in by_ticket.items() if a["label"] is not None} for k, by_ticket in latest.items()}
    return {k: answers for k, answers in kept.items() if answers}


def weighted_share(right: Sequence[bool], weights: Sequence[float]) -> tuple[float, float]:
    """The weighted share right (the Hajek ratio: weight of the right ones over all the weight) and its effective
    number of answers, for a Wilson interval: the ratio's linearised variance, sum w_i^2 (y_i - p)^2 / (sum w)^2,
    is p(1-p)/n_eff; with no spread (all right or all wrong) Kish's (sum w)^2 / sum w^2. Equal weights give the
    plain share and n. Empty: (nan, 0)."""
    w = [float(x) for x in weights]
    total = sum(w)
    if not w or total <= 0:
        return math.nan, 0.0
    acc = sum(wi for wi, y in zip(w, right, strict=True) if y) / total
    var = sum(wi * wi * ((1.0 if y else 0.0) - acc) ** 2 for wi, y in zip(w, right, strict=True)) / total ** 2
    n_eff = acc * (1 - acc) / var if var > 0 and 0 < acc < 1 else total ** 2 / sum(wi * wi for wi in w)
    return acc, n_eff


def per_category(truth: Sequence[str], predicted: Sequence[str | None],
                 classes: Sequence[str]) -> dict[str, ClassScores]:
    """precision, recall, f1 and support (how many truly are) of each class."""
    out: dict[str, ClassScores] = {}
    pairs = Counter(zip(truth, predicted, strict=True))  # one pass, whatever the number of classes
    said, true = Counter(predicted), Counter(truth)
    for c in classes:
        tp = pairs[(c, c)]
        fp, fn = said[c] - tp, true[c] - tp
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        out[c] = ClassScores(precision=prec, recall=rec, f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                             support=tp + fn)
    return out


def macro_f1(per: Mapping[str, ClassScores]) -> float:
    """The mean F1 over the classes that occur in the truth (a class nobody has cannot be missed)."""
    f1s = [m["f1"] for m in per.values() if m["support"]]
    return sum(f1s) / len(f1s) if f1s else 0.0


def confusion(truth: Sequence[str], predicted: Sequence[str | None],
              classes: Sequence[str] = ()) -> Confusion:
    """Counts of (true label, predicted label): rows are the truth, columns the prediction, in `classes` order
    followed by any other label seen (sorted; a missing prediction shows as "none")."""
    pred = ["none" if p is None else p for p in predicted]
    labels = list(dict.fromkeys(classes))
    labels += sorted(({*truth, *pred}) - set(labels))
    index = {c: i for i, c in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for y, p in zip(truth, pred, strict=True):
        matrix[index[y]][index[p]] += 1
    return Confusion(labels=labels, matrix=matrix)


def confused_pairs(c: Confusion, top: int = 10) -> list[ConfusedPair]:
    """The off-diagonal cells of a confusion matrix, most tickets first (ties by name): the operator's label,
    what the model said, how many, and their share of the operator's label (of its row)."""
    labels, matrix = c["labels"], c["matrix"]
    cells = [ConfusedPair(truth=labels[i], said=labels[j], n=n, share=n / sum(row))
             for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j and n]
    cells.sort(key=lambda x: (-x["n"], -x["share"], x["truth"], x["said"]))
    return cells[:top]


def recall_by_category(c: Confusion) -> list[CategoryRecall]:
    """Per operator label with tickets: support and recall (the share the model labelled right), worst first."""
    labels, matrix = c["labels"], c["matrix"]
    rows = [CategoryRecall(category=labels[i], support=sum(row), recall=row[i] / sum(row))
            for i, row in enumerate(matrix) if sum(row)]
    return sorted(rows, key=lambda r: (r["recall"], -r["support"], r["category"]))


def submatrix(c: Confusion, keep: Sequence[str]) -> Confusion:
    """The confusion matrix restricted to these labels (in the matrix's order), plus "other" for the rest, so
    each row still adds up to its label's tickets."""
    labels, matrix = c["labels"], c["matrix"]
    wanted = set(keep)
    idx = [i for i, lab in enumerate(labels) if lab in wanted]
    rest = [j for j in range(len(labels)) if j not in idx]
    out = [[matrix[i][j] for j in idx] + ([sum(matrix[i][j] for j in rest)] if rest else []) for i in idx]
    return Confusion(labels=[labels[i] for i in idx], columns=[labels[i] for i in idx] + (["other"] if rest else []),
                     matrix=out)


def most_confused_labels(c: Confusion, top: int = 10) -> list[str]:
    """The labels of the `top` most confused pairs, in the matrix's order: a legible default for a heatmap of many
    categories."""
    named = {x for p in confused_pairs(c, top) for x in (p["truth"], p["said"])}
    return [lab for lab in c["labels"] if lab in named]
