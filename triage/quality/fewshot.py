"""Does few-shot pay? Tier 1's answers on operator-labelled tickets with and without labelled examples in the
request, from the calls already stored (no new calls): part of `triage.quality.measure.measure`, so the Quality page and
`triage quality` show the same figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

from db.quality import Answer
from triage.quality import metrics


class Accuracy(TypedDict):
    n: int
    right: int
    accuracy: float | None  # None: no answer


# "with" is a keyword, hence the functional form. The tickets answered both ways: how many, and the accuracy with
# and without examples.
Paired = TypedDict("Paired", {"n": int, "with": float | None, "without": float | None})
# One tier-1 model's answers with few-shot examples against its answers without.
Comparison = TypedDict("Comparison", {"model": str, "with": Accuracy, "without": Accuracy, "paired": Paired,
                                      "mean_examples": float})


def _accuracy(answers: Iterable[Answer]) -> Accuracy:
    rows = list(answers)
    right = sum(a["label"] == a["truth"] for a in rows)
    return Accuracy(n=len(rows), right=right, accuracy=right / len(rows) if rows else None)


def compare(rows: Sequence[Answer]) -> list[Comparison]:
    """Per tier-1 model with at least one call that carried examples: each labelled ticket's latest answer sent
    with examples against its latest answer sent without (each counted when it has a label), over all such
    tickets and over the tickets answered both ways (the same tickets: the fair comparison; the two full sets may
    differ in how hard their tickets are). `rows` are `db.quality.labelled_calls` or `labelled_answers` rows, in
    call order."""
    latest = metrics.latest_labelled(
        rows, lambda r: (str(r["model"]), r.get("examples") is not None) if r["tier"] == 1 else None)
    out: list[Comparison] = []
    for model in sorted({model for model, _ in latest}):
        shots, plain = latest.get((model, True), {}), latest.get((model, False), {})
        if not shots:
            continue
        both = sorted(set(shots) & set(plain))
        examples = [a["examples"] or 0 for a in shots.values()]  # never None here: sent with examples
        out.append({"model": model, "with": _accuracy(shots.values()), "without": _accuracy(plain.values()),
                    "paired": {"n": len(both), "with": _accuracy(shots[t] for t in both)["accuracy"],
                               "without": _accuracy(plain[t] for t in both)["accuracy"]},
                    "mean_examples": sum(examples) / len(examples)})
    return out


def describe(c: Comparison) -> str:
    """One sentence: which data, and what it says."""
    w, wo, p = c["with"], c["without"], c["paired"]

    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.0%}"

    text = (f"{c['model']}: right on {pct(w['accuracy'])} of {w['n']} operator-labelled tickets answered with "
            f"examples (about {c['mean_examples']:.0f} a request), {pct(wo['accuracy'])} of {wo['n']} answered "
            "without.")
    if p["n"]:
        text += (f" On the {p['n']} tickets answered both ways: {pct(p['with'])} with, {pct(p['without'])} "
                 "without.")
    else:
        text += " No ticket was answered both ways, so the two sets are different tickets."
    return text
