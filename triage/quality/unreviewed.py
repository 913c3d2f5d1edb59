"""The blind audit: how accurate is the traffic nobody reviewed?

Review-queue labels over-represent the hard tickets (the queue shows the unsure ones), so they cannot say how
often the tickets that settled on their own are right. As each ticket settles without review it is drawn at
random with the audit rate in force (`db.audit_sample.consider`, inside the settling transaction), and its
chance of being drawn is stored. An operator labels the drawn ones without seeing the model's label or
confidence (the Audit page, `triage audit --answers FILE`), so the answer is not anchored on the model's.

The estimate (`estimate`): each audited ticket weighs 1/probability (inverse-probability weighting, the Hajek
ratio: sum of weights of the right ones over the sum of weights), so it stays unbiased for the settled traffic
when the rate changes or a stratum is drawn more often. Its 90% interval is a Wilson score interval on the
effective number of audits: the weighted estimate's linearised variance, sum w_i^2 (y_i - p)^2 / (sum w_i)^2,
equals p(1-p)/n_eff. Wilson rather than the normal (Wald) interval because accuracies sit near 1 and audits are
few: Wald's interval collapses to a point at 100% right; Wilson's stays honest, and with equal probabilities it is
the plain Wilson interval on the audits. Rather than a bootstrap because a bootstrap of 40 audits with 0 errors
gives [100%, 100%] too, and because it is closed-form (the page recomputes it on every label). With no error
among them (variance 0) n_eff falls back to Kish's (sum w)^2 / sum w^2. `tests/triage/quality/test_unreviewed.py`
checks the coverage by simulation.

Audit answers are stored as operator labels too (corrections with source `audit`), so calibration and the
threshold recommendation use them, each weighing 1/its chance of being drawn beside review labels that count once
(triage/quality/calibrate.py says why and when that stands for the traffic), and say how many of their labels are
these unbiased ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypedDict

from db import audit_sample, labels
from db.engine import Database
from triage import audit
from triage import settings as config
from triage.access import Action, Actor, require
from triage.quality import calibrate, metrics
from triage.quality.measure import TIER_NAME

Z90 = 1.6449
AUDIT_ANSWERS = "audit.answers"


def wilson(share: float, n: float, z: float = Z90) -> tuple[float, float]:
    """The Wilson score interval for a proportion `share` observed on `n` (possibly effective, not whole) trials."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(share * (1 - share), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class FiguresJson(TypedDict):
    """An estimate's figures and what they are measured on, as the JSON gives them (each in its order)."""

    accuracy: float | None
    low: float | None
    high: float | None
    audited: int
    settled: int
    effective: float


class EstimateJson(FiguresJson):
    """`Estimate.to_dict`: its fields, in their order."""

    name: str
    tier: int | None
    model: str | None


class UnreviewedJson(FiguresJson):
    """`Unreviewed.to_dict`: the overall estimate's figures, what they are measured on, and each model's estimate
    (`triage quality --json`'s `unreviewed`, `triage audit --answers FILE --json`'s)."""

    waiting: int
    measured_on: str
    per_model: list[EstimateJson]


@dataclass(frozen=True)
class Estimate:
    """The accuracy of the traffic settled without review, from the blind audit."""

    accuracy: float | None  # None: nothing audited yet
    low: float | None
    high: float | None
    audited: int  # answered audits behind it
    settled: int  # tickets settled without review since the audit began (the population)
    effective: float = 0.0  # the effective number of audits (unequal weights count for less)
    name: str = "all unreviewed traffic"
    tier: int | None = None
    model: str | None = None

    def to_dict(self) -> EstimateJson:
        return EstimateJson(accuracy=self.accuracy, low=self.low, high=self.high, audited=self.audited,
                            settled=self.settled, effective=self.effective, name=self.name, tier=self.tier,
                            model=self.model)


def estimate(audits: Iterable[tuple[bool, float]], settled: int = 0, z: float = Z90) -> Estimate:
    """(right, probability it was drawn with) for each answered audit: the inverse-probability-weighted accuracy
    and its Wilson interval on the effective number of audits (see the module's docstring)."""
    pairs = [(bool(y), float(p)) for y, p in audits if p > 0]
    if not pairs:
        return Estimate(None, None, None, 0, settled)
    acc, n_eff = metrics.weighted_share([y for y, _ in pairs], [1.0 / p for _, p in pairs])
    low, high = wilson(acc, n_eff, z)
    return Estimate(acc, low, high, len(pairs), settled, n_eff)


@dataclass(frozen=True)
class Unreviewed:
    """The blind audit's figures: overall and per (tier, model); what they are measured on, in words."""

    overall: Estimate
    per_model: list[Estimate] = field(default_factory=list)
    waiting: int = 0  # drawn, awaiting an answer

    def measured_on(self) -> str:
        o = self.overall
        if not o.audited:
            return (f"Blind audit: no answers yet ({self.waiting} drawn ticket{'s' if self.waiting != 1 else ''} "
                    f"waiting, of {o.settled:,} settled without review since the audit began).")
        return (f"Blind audit of the traffic nobody reviewed: {o.audited} tickets drawn at random as they settled "
                f"(of {o.settled:,} settled without review) and labelled without seeing the model's answer; "
                f"weighted by their chance of being drawn, 90% interval. {self.waiting} more drawn, waiting.")

    def to_dict(self) -> UnreviewedJson:
        o = self.overall
        return UnreviewedJson(accuracy=o.accuracy, low=o.low, high=o.high, audited=o.audited, settled=o.settled,
                              effective=o.effective, waiting=self.waiting, measured_on=self.measured_on(),
                              per_model=[e.to_dict() for e in self.per_model])


def _right(row: audit_sample.Answered) -> bool:
    return row["label"] is not None and row["label"] == row["answer"]


def data_version(db: Database) -> tuple[int, int, float]:
    """Changes whenever `figures` could give another answer: an answer, a ticket settling without review, a
    redraw, the rate in force (`db.audit_sample.version`); what the dashboard caches the figures on."""
    with db.read() as s:
        return audit_sample.version(s)


def figures(db: Database) -> Unreviewed:
    """The accuracy of what settled without review, per model and tier and overall (no ticket text: viewers may
    see it)."""
    with db.read() as s:
        rows = audit_sample.answered(s)
        settled = audit_sample.settled(s)
        waiting_n = audit_sample.waiting_count(s)
    overall = estimate([(_right(r), r["probability"]) for r in rows], sum(settled.values()))
    keys = sorted({*settled, *((int(r["tier"]), str(r["model"])) for r in rows)})
    tiers = [t for t, _ in keys]
    per = []
    for tier, model in keys:
        e = estimate([(_right(r), r["probability"]) for r in rows if (r["tier"], r["model"]) == (tier, model)],
                     settled.get((tier, model), 0))
        name = TIER_NAME.get(tier, f"tier {tier}")
        per.append(replace(e, name=name if tiers.count(tier) == 1 else f"{name} ({model})", tier=tier, model=model))
    return Unreviewed(overall, per, waiting_n)


def waiting(db: Database, *, actor: Actor, limit: int | None = None) -> list[audit_sample.Waiting]:
    """The drawn tickets awaiting an answer (id, external id, text): never the model's label or confidence."""
    require(actor, Action.READ_TICKETS)
    with db.read() as s:
        return audit_sample.waiting(s, limit)


def answer(db: Database, answers: Sequence[tuple[int, str]], *, actor: Actor,
           file: str | None = None) -> tuple[list[int], list[str]]:
    """Record blind answers (ticket id, label): each on its audit row and as the ticket's operator label
    (correction source `audit`), in one transaction with an audit-trail row (who, how many, the file). Refused,
    with the reason: a label outside the taxonomy, a ticket not drawn, one already answered. Returns (answered
    ids, refusals). The calibration may refit afterwards, as after any labels."""
    require(actor, Action.LABEL)
    taxonomy = config.effective(db)[1]
    refused = [f"ticket {tid}: {label!r} is not a category ({', '.join(taxonomy.names)})"
               for tid, label in answers if label not in taxonomy.names]
    good = {tid: label for tid, label in answers if label in taxonomy.names}
    done: list[int] = []
    with db.transaction() as s:
        rows = audit_sample.drawn_rows(s, list(good))
        versions = labels.versions(s, list(good))
        changes = []
        for tid, label in good.items():
            row = rows.get(tid)
            if row is None:
                refused.append(f"ticket {tid} was not drawn for the audit")
            elif row.answered_at is not None:
                refused.append(f"ticket {tid} was already answered by {row.answered_by}")
            elif tid not in versions:
                refused.append(f"ticket {tid} does not exist any more")
            else:
                audit_sample.record_answer(s, row, label, actor.identity)
                changes.append((tid, versions[tid], label))
        if changes:
            done, why = labels.set_operator_labels(s, changes, operator=actor.identity, file=file,
                                                   note="blind audit", source="audit")
            refused += why
            audit.record(s, actor, AUDIT_ANSWERS, answered=len(done), **({"file": file} if file else {}))
    if done:
        calibrate.refresh(db, trigger=calibrate.LABEL_IMPORT, by=actor.identity)
    return done, refused
