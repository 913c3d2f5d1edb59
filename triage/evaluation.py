"""`triage eval`: score a tier against a gold file.

The local tier is scored without touching the working database. A paid tier is scored as a run in it (source
`eval:FILE`): its calls pass the spending caps, are reserved in the ledger and recorded like any other run's, so
the bill never holds a call the books do not. Each gold row is a ticket of its own (id `eval:FILE#ROW`), never
a production ticket with the same text, which stays in its own run with its answers; every gold ticket is asked
afresh (those of an earlier eval of the file too), and the score is what the models said, never an operator's
correction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

import numpy as np

from db.engine import Database
from triage import ingest
from triage.access import Actor
from triage.domain import EVAL, LOCAL
from triage.errors import InputError
from triage.quality import metrics
from triage.routing.calibration import ece
from triage.routing.router import Router
from triage.settings import Settings
from triage.taxonomy import Taxonomy
from triage.work.pipeline import RunReport

THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]  # 0.50 .. 0.95


class Coverage(TypedDict):
    """Answers at or above a confidence: the share kept and their accuracy (None: none kept)."""

    threshold: float
    kept: float
    accuracy: float | None


class Scores(TypedDict):
    """`triage eval`'s scores on a gold file (`--json` prints them as they are), rounded to 4 places."""

    n: int
    accuracy: float
    macro_f1: float
    ece: float
    per_category: dict[str, metrics.ClassScores]
    coverage: list[Coverage]


@dataclass
class Gold:
    texts: list[str]
    labels: list[str]


def read_gold(path: str, taxonomy: Taxonomy, *, text_column: str = "text", label_column: str = "label") -> Gold:
    """The gold rows; a label may be a category's key or its shown name, in any case (as `triage label` reads
    them), and is scored as the key."""
    rows = ingest.read_labelled(path, text_column=text_column, label_column=label_column)
    texts = [t for t, _ in rows]
    labels = [taxonomy.resolve(lab) or lab for _, lab in rows]
    outside = sorted({lab for lab in labels if lab not in taxonomy})
    if outside:
        raise InputError(f"labels outside the taxonomy: {', '.join(repr(x) for x in outside)}; "
                         f"the taxonomy has {', '.join(taxonomy.names)}")
    if not texts:
        raise InputError("the gold file has no rows")
    return Gold(texts, labels)


def score(gold: Sequence[str], predicted: Sequence[str | None], confidence: Sequence[float | None],
          classes: Sequence[str]) -> Scores:
    y = np.array(gold)
    p = np.array([x if x is not None else "" for x in predicted])
    conf = np.array([c if c is not None else 0.0 for c in confidence], dtype=float)
    correct = p == y
    scores = metrics.per_category(list(gold), list(predicted), classes)
    per = {c: metrics.ClassScores(precision=round(m["precision"], 4), recall=round(m["recall"], 4),
                                  f1=round(m["f1"], 4), support=m["support"]) for c, m in scores.items()}
    coverage = []
    for t in THRESHOLDS:
        kept = conf >= t
        coverage.append(Coverage(threshold=t, kept=round(float(kept.mean()), 4),
                                 accuracy=round(float(correct[kept].mean()), 4) if kept.any() else None))
    return Scores(n=int(len(y)), accuracy=round(float(correct.mean()), 4),
                  macro_f1=round(metrics.macro_f1(scores), 4), ece=round(ece(conf, correct), 4),
                  per_category=per, coverage=coverage)


def predict_local(gold: Gold, taxonomy: Taxonomy, db: Database | None = None) -> tuple[list[str], list[float]]:
    from triage.local import tier as local
    from triage.local.embedder import shared

    embedder = shared()
    head = local.current_head(db, taxonomy, embedder) if db is not None else local.train_head(embedder, taxonomy, [])
    labels, conf = head.predict(embedder.embed(gold.texts))
    return labels, [float(c) for c in conf]


@dataclass
class PaidPrediction:
    predicted: list[str | None]
    confidence: list[float | None]
    report: RunReport
    run_id: int
    unanswered: int  # gold tickets no model answered (a cap, a signal, the key or the API stopped them)


def gold_ticket_id(source: str, row: int) -> str:
    """The id of a gold row's ticket (`eval:FILE#ROW`): the content hash covers it, so the row never matches a
    production ticket with the same text, and the same row of a later eval is the same ticket, asked again."""
    tail = f"#{row}"
    return source[:ingest.MAX_ID_CHARS - len(tail)] + tail


def predict_as_run(db: Database, router: Router, gold: Gold, *, actor: Actor, source: str,
                   concurrency: int = 8) -> PaidPrediction:
    """Classify the gold texts as a run of the working database with `router` (its mode and threshold)."""
    from triage.work import runs, services

    items = [(gold_ticket_id(source, row), text) for row, text in enumerate(gold.texts, 1)]
    imported = runs.start_run(db, items, source=source, actor=actor, mode=router.mode, threshold=router.threshold,
                              reclassify=True, purpose=EVAL)
    assert imported.run_id is not None
    report = services.classify_run(db, router, imported.run_id, actor=actor, concurrency=concurrency)
    outcomes = runs.machine_outcomes(db, imported.ticket_ids, router.threshold)
    chosen = [outcomes[tid] for tid in imported.ticket_ids]
    return PaidPrediction([o.category for o in chosen], [o.confidence for o in chosen], report, imported.run_id,
                          sum(1 for o in chosen if o.tier is None))


@dataclass
class Evaluated:
    """`triage eval`'s answer: the scores (None when gold tickets were left unanswered) and, for a paid route, its
    run and what it cost (on the books like any run's)."""

    scores: Scores | None
    paid: PaidPrediction | None = None
    cost: Decimal = Decimal(0)


def evaluate(db: Database | None, settings: Settings, taxonomy: Taxonomy, path: str, *, route: str,
             actor: Actor, text_column: str = "text", label_column: str = "label") -> Evaluated:
    """Score `route` on the gold file at `path`: the local model without writing (with `db`: its trained head,
    read only), a paid route as a run of the working database after the budget's pre-check."""
    from triage.spend import budget
    from triage.work import runs, services

    gold = read_gold(path, taxonomy, text_column=text_column, label_column=label_column)
    if route == LOCAL:
        labels, confidence = predict_local(gold, taxonomy, db)
        return Evaluated(score(gold.labels, list(labels), list(confidence), taxonomy.names))
    if db is None:
        raise InputError("a paid route is scored as a run: it needs the working database")
    router = services.build_router(settings, taxonomy, mode=route, threshold=settings.threshold, db=db)
    budget.check(db, settings.caps)
    paid = predict_as_run(db, router, gold, actor=actor, source=f"eval:{path}", concurrency=settings.concurrency)
    scored = None if paid.unanswered else score(gold.labels, paid.predicted, paid.confidence, taxonomy.names)
    return Evaluated(scored, paid, runs.run_cost(db, paid.run_id))


def format_report(r: Scores, tier: str) -> str:
    lines = [f"tier {tier}: n={r['n']}  accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  ECE {r['ece']:.3f}",
             "", f"{'category':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}"]
    for c, m in r["per_category"].items():
        lines.append(f"{c:<20} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>5}")
    lines += ["", f"{'confidence >=':<14} {'kept':>6} {'accuracy':>9}"]
    for row in r["coverage"]:
        acc = "—" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        lines.append(f"{row['threshold']:<14.2f} {row['kept']:>6.1%} {acc:>9}")
    return "\n".join(lines)
