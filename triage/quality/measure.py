"""How good are the models, measured against operators: accuracy, macro-F1, calibration, the confusion matrix,
agreement, and what another escalation threshold would have done (replayed on stored answers, no new calls).

`measure` is the one function behind both the Quality page and `triage quality`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NotRequired, TypedDict

import numpy as np

from db import audit_sample
from db import calibrations as db_calibrations
from db import quality as db_quality
from db.engine import Database
from db.quality import Answer
from triage.domain import OK, from_pico, money_text
from triage.quality import calibrate, metrics
from triage.quality import fewshot as quality_fewshot
from triage.routing.calibration import Calibration, bin_of, ece

TIER_NAME = {0: "local model", 1: "Haiku", 2: "Sonnet"}


class TierFigures(TypedDict):
    """One tier and model's answers against the operators' labels."""

    tier: int
    model: str
    name: str  # as the page says it: "Haiku", or "Haiku (model id)" when the tier had two models
    n: int
    accuracy: float
    macro_f1: float
    ece: float
    mean_confidence: float
    confusion: metrics.Confusion
    calibration_id: NotRequired[int | None]  # with a calibration in force for the model: which, and its error
    ece_calibrated: NotRequired[float]


class ReliabilityBin(TypedDict):
    tier: int
    name: str
    bin_mid: float
    confidence: float  # the mean stated confidence in the bin
    accuracy: float
    n: int
    calibrated: float | None  # the calibration in force at that confidence


class Flips(TypedDict):
    """Tickets both Haiku and Sonnet answered, and on those they disagreed on, who the operator sided with."""

    escalated: int
    flipped: int
    sonnet_right: int
    haiku_right: int


class WhatIf(TypedDict):
    """One threshold replayed on the stored answers."""

    threshold: float
    escalation_rate: float
    accuracy: float | None  # of the answers that stand (Haiku's kept, Sonnet's where it was asked)
    replayed: int
    cost_per_ticket: Decimal | None
    review_rate: float | None
    settled_accuracy: float | None  # of the tickets settled without review
    settled: int  # labelled tickets settled without review at this threshold (counted once each)
    settled_right: int
    # blind-audit answers among the answers: every rate, share and cost above is weighted (an audit answer counts
    # 1/its chance of being drawn, every other label once: triage/quality/calibrate.py) and the settled accuracy's
    # interval is taken on `settled_effective`, its effective number of answers (= settled when not weighted)
    weighted: NotRequired[bool]
    settled_effective: NotRequired[float]


class WhatIfJson(TypedDict):
    """A `WhatIf` row in `--json`: the cost per ticket as an exact decimal string."""

    threshold: float
    escalation_rate: float
    accuracy: float | None
    replayed: int
    cost_per_ticket: str | None
    review_rate: float | None
    settled_accuracy: float | None
    settled: int
    settled_right: int
    weighted: NotRequired[bool]  # as in WhatIf: present when blind-audit answers weigh 1/p
    settled_effective: NotRequired[float]


class QualityJson(TypedDict):
    """`Quality.to_dict`: what `triage quality --json` prints of the measures (plain JSON values)."""

    measured_on: str
    n_tickets: int
    label_sources: dict[str, int]
    since: str | None
    per_model: list[TierFigures]
    flips: Flips
    whatif: list[WhatIfJson]
    whatif_on: str
    reliability: list[ReliabilityBin]
    calibrations: list[calibrate.ModelCalibration]
    fewshot: list[quality_fewshot.Comparison]
    audit_weighted: int  # labelled tickets that are blind-audit answers (weighted 1/p in the what-if and the maps)
    whatif_weighting: str  # how the what-if counts its labels, in words


@dataclass
class Quality:
    n_tickets: int
    per_tier: list[TierFigures]
    reliability: list[ReliabilityBin]
    flips: Flips  # Sonnet disagreed with Haiku: how often the operator sided with Sonnet
    whatif: list[WhatIf]
    sources: dict[str, int] = field(default_factory=dict)  # where the labels came from: review, import
    since: date | None = None  # only model answers from this day on (UTC)
    # per model (tiers 1-2): the calibration in force or why there is none, and its levels (triage.quality.calibrate)
    calibrations: list[calibrate.ModelCalibration] = field(default_factory=list)
    whatif_on: str = "stated confidence"  # which confidence the what-if compares with the threshold
    fewshot: list[quality_fewshot.Comparison] = field(default_factory=list)  # tier 1 with and without examples
    newest_only: int | None = None  # set when only the newest this many labelled tickets were read
    audit_weighted: int = 0  # labelled tickets that are blind-audit answers, weighted 1/p in the what-if and the maps

    def measured_on(self) -> str:
        """Which data these numbers come from, in words (the page and the CLI print this)."""
        if not self.n_tickets:
            return "No operator-labelled tickets with model answers" + (f" since {self.since}" if self.since else "")
        review, imported = self.sources.get("review", 0), self.sources.get("import", 0)
        audited = self.sources.get("audit", 0)
        origin = []
        if review:
            origin.append(f"{review} corrected or confirmed in the review queue")
        if imported:
            origin.append(f"{imported} imported from labelled files")
        if audited:
            origin.append(f"{audited} answered blind in the audit")
        text = f"Measured on {self.n_tickets} tickets an operator labelled ({', '.join(origin) or 'by hand'})"
        if self.newest_only:
            text += f", the newest {self.newest_only:,} (at most that many are read)"
        if self.since:
            text += f", model answers since {self.since}"
        text += "."
        if review:
            text += (" Operators mostly label the hard tickets the review queue shows them, so figures from those "
                     "lean pessimistic.")
        return text

    def whatif_weighting(self) -> str:
        """How the what-if (and so the threshold recommendation) counts its labels, in words."""
        if not self.audit_weighted:
            return ("Every labelled ticket counts once: no blind-audit answers yet, so the replay leans toward the "
                    "hard tickets the review queue shows.")
        return (f"Weighted to the traffic: the {self.audit_weighted} blind-audit answers count 1/(their chance of "
                "being drawn) each, for the settled tickets they were drawn from; every other label once, for itself. "
                "That stands for the traffic when every ticket sent to review gets labelled: tickets waiting in the "
                "review queue are missing, so a backlog makes the hard tickets count for less than their share.")

    def to_dict(self) -> QualityJson:
        """Plain JSON values; money as exact decimal strings."""
        whatif: list[WhatIfJson] = [
            {**w, "cost_per_ticket": None if w["cost_per_ticket"] is None else money_text(w["cost_per_ticket"])}
            for w in self.whatif]
        return QualityJson(measured_on=self.measured_on(), n_tickets=self.n_tickets, label_sources=self.sources,
                           since=self.since.isoformat() if self.since else None, per_model=self.per_tier,
                           flips=self.flips, whatif=whatif, whatif_on=self.whatif_on, reliability=self.reliability,
                           calibrations=self.calibrations, fewshot=self.fewshot, audit_weighted=self.audit_weighted,
                           whatif_weighting=self.whatif_weighting())


def _latest_per_tier(rows: list[Answer]) -> dict[int, dict[int, Answer]]:
    by_ticket: dict[int, dict[int, Answer]] = {}
    for r in rows:
        by_ticket.setdefault(r["ticket_id"], {})[r["tier"]] = r  # rows are in call order: the latest wins
    return by_ticket


def data_version(db: Database) -> int:
    """Changes whenever `measure` could give another answer (an operator label, a call on a labelled ticket)."""
    with db.read() as s:
        return db_quality.labels_version(s)


def tickets_per_day(db: Database) -> float | None:
    """Tickets classified a day, over the last 28 days that had any: what review shares are scaled by."""
    with db.read() as s:
        return db_quality.tickets_per_day(s)


def _per_model(rows: list[Answer]) -> dict[tuple[int, str], list[Answer]]:
    """Each ticket's latest answer from each (tier, model), when that answer has a label."""
    groups = metrics.latest_labelled(rows, lambda r: (int(r["tier"]), str(r["model"])))
    return {key: list(answers.values()) for key, answers in sorted(groups.items())}


def measure(db: Database, bins: int = 10, *, since: date | None = None,
            classes: Sequence[str] = ()) -> Quality:
    """Every figure of the Quality page. `since`: only answers given from that day (UTC) on; `classes`: the
    taxonomy, the order of the confusion matrix (labels outside it follow)."""
    start = datetime.combine(since, datetime.min.time(), UTC) if since else None
    with db.read() as s:
        rows = db_quality.measured_answers(s, start)
        tickets = _latest_per_tier(rows)
        sources = db_quality.label_sources(s, list(tickets))
        maps = db_calibrations.in_force(s)
        weights = {t: w for t, w in audit_sample.weights(s).items() if t in tickets}
    groups = _per_model(rows)
    in_force = {model: calibrate.from_row(r) for model, r in maps.items()}
    models_in_tier: dict[int, int] = {}
    for tier, _ in groups:
        models_in_tier[tier] = models_in_tier.get(tier, 0) + 1
    per_tier: list[TierFigures] = []
    reliability: list[ReliabilityBin] = []
    for (tier, model), answers in groups.items():
        name = TIER_NAME[tier] if models_in_tier[tier] == 1 else f"{TIER_NAME[tier]} ({model})"
        conf = np.array([a["confidence"] or 0.0 for a in answers])
        correct = np.array([a["label"] == a["truth"] for a in answers])
        truth = [a["truth"] for a in answers]
        said = [a["label"] for a in answers if a["label"] is not None]  # all of them: _per_model keeps labelled ones
        per_tier.append(TierFigures(
            tier=tier, model=model, name=name, n=len(answers), accuracy=float(correct.mean()),
            macro_f1=metrics.macro_f1(metrics.per_category(truth, said, sorted({*truth, *said}))),
            ece=ece(conf, correct, bins), mean_confidence=float(conf.mean()),
            confusion=metrics.confusion(truth, said, classes)))
        cal = in_force.get(model) if tier >= 1 else None
        if cal is not None:  # the map in force, measured on these answers (in-sample: it was fitted on them)
            per_tier[-1]["calibration_id"] = cal.id
            per_tier[-1]["ece_calibrated"] = ece(
                np.array([cal.apply(float(c)) or 0.0 for c in conf]), correct, bins)
        which = bin_of(conf, bins)  # the bins of the calibration error above
        for b in range(bins):
            m = which == b
            if m.any():
                reliability.append(ReliabilityBin(
                    tier=tier, name=name, bin_mid=(b + 0.5) / bins, confidence=float(conf[m].mean()),
                    accuracy=float(correct[m].mean()), n=int(m.sum()),
                    calibrated=cal.apply(float(conf[m].mean())) if cal is not None else None))
    both = [t for t in tickets.values() if 1 in t and 2 in t and t[1]["label"] and t[2]["label"]]
    flipped = [t for t in both if t[1]["label"] != t[2]["label"]]
    flips = Flips(escalated=len(both), flipped=len(flipped),
                  sonnet_right=sum(t[2]["label"] == t[2]["truth"] for t in flipped),
                  haiku_right=sum(t[1]["label"] == t[1]["truth"] for t in flipped))
    names = {model: TIER_NAME[tier] if models_in_tier[tier] == 1 else f"{TIER_NAME[tier]} ({model})"
             for tier, model in groups if tier >= 1}
    tier1_models = {model for tier, model in groups if tier == 1}
    used = sorted(f"#{in_force[m].id} for {m}" for m in tier1_models if m in in_force)
    whatif_on = f"calibrated confidence (calibration {', '.join(used)})" if used else "stated confidence"
    return Quality(len(tickets), per_tier, reliability, flips, _whatif(tickets, in_force, weights), sources, since,
                   calibrate.summary(rows, maps, names, bins, weights), whatif_on, quality_fewshot.compare(rows),
                   db_quality.TICKETS if len(tickets) >= db_quality.TICKETS else None, len(weights))


THRESHOLDS = [round(0.05 * i, 2) for i in range(20)]  # 0.00 (never escalate) to 0.95


def routing_value(answer: Answer, maps: dict[str, Calibration]) -> float:
    """What the router would compare with the threshold for this stored answer today: its confidence under the
    calibration now in force for its model (the stored map is exact, so the replay is too), -1 when the answer
    was unusable (unknown label, unparsed: always escalated)."""
    if answer.get("outcome", OK) != OK or answer["label"] is None:
        return -1.0
    cal = maps.get(answer["model"])
    conf = answer["confidence"]
    return (cal.apply(conf) if cal is not None and conf is not None else conf) or 0.0


def _whatif(tickets: dict[int, dict[int, Answer]], maps: dict[str, Calibration] | None = None,
            weights: Mapping[int, float] | None = None) -> list[WhatIf]:
    """Replay: escalate when Haiku's routing confidence (calibrated when a map is in force) is under t, or its
    answer was unusable; use Sonnet's stored answer where there is one. `weights`: per ticket, what its label
    counts for (blind-audit answers 1/p; absent: 1): with any, every figure is weighted (`_weighted_whatif`)."""
    haiku = [t for t in tickets.values() if 1 in t and t[1]["label"] is not None]
    if not haiku:
        return []
    if weights and any(weights.get(tid, 1.0) != 1.0 for tid in tickets):
        ids = [tid for tid, t in tickets.items() if 1 in t and t[1]["label"] is not None]
        return _weighted_whatif(tickets, ids, maps or {}, weights)
    value = np.array([routing_value(x[1], maps or {}) for x in haiku])
    right1 = np.array([x[1]["label"] == x[1]["truth"] for x in haiku], dtype=bool)
    asked = np.array([2 in x for x in haiku], dtype=bool)  # False: Sonnet never asked
    right2 = np.array([2 in x and x[2]["label"] == x[1]["truth"] for x in haiku], dtype=bool)
    sonnet_costs = [from_pico(t[2]["cost_pico"]) for t in tickets.values() if 2 in t]
    avg_sonnet: Decimal | None = sum(sonnet_costs, Decimal(0)) / len(sonnet_costs) if sonnet_costs else None
    haiku_cost = sum((from_pico(x[1]["cost_pico"]) for x in haiku), Decimal(0)) / len(haiku)
    value2 = np.array([routing_value(x[2], maps or {}) if 2 in x else -1.0 for x in haiku])
    out = []
    for t in THRESHOLDS:
        kept = value >= t
        replaced = ~kept & asked  # escalated, and Sonnet's stored answer stands in
        escalated = int(len(haiku) - kept.sum())
        answered = int(kept.sum() + replaced.sum())
        right = int((right1 & kept).sum() + (right2 & replaced).sum())
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * escalated / len(haiku)
        # settled without review: Haiku sure enough, or escalated and Sonnet sure enough; the rest go to review
        by_sonnet = replaced & (value2 >= t)
        settled = int(kept.sum() + by_sonnet.sum())
        settled_right = int((right1 & kept).sum() + (right2 & by_sonnet).sum())
        out.append(WhatIf(threshold=t, escalation_rate=escalated / len(haiku),
                          accuracy=right / answered if answered else None, replayed=answered,
                          cost_per_ticket=cost if avg_sonnet is not None or not escalated else None,
                          review_rate=(answered - settled) / answered if answered else None,
                          settled_accuracy=settled_right / settled if settled else None, settled=settled,
                          settled_right=settled_right))
    return out


def _weighted_whatif(tickets: dict[int, dict[int, Answer]], ids: list[int], maps: dict[str, Calibration],
                     weights: Mapping[int, float]) -> list[WhatIf]:
    """`_whatif` with each ticket counting its weight: escalation, review share, accuracy and cost are weighted
    shares and means (an estimate for the traffic, so the cost is a weighted mean, not an exact sum); `settled`
    and `settled_right` still count tickets, and `settled_effective` is the settled accuracy's effective number
    of answers (`metrics.weighted_share`), what its interval is taken on."""
    haiku = [tickets[t] for t in ids]
    w = np.array([float(weights.get(t, 1.0)) for t in ids])
    dec = [Decimal(x) for x in w.tolist()]  # the float weight exactly: money stays Decimal
    total, total_dec = float(w.sum()), sum(dec, Decimal(0))
    value = np.array([routing_value(x[1], maps) for x in haiku])
    right1 = np.array([x[1]["label"] == x[1]["truth"] for x in haiku], dtype=bool)
    asked = np.array([2 in x for x in haiku], dtype=bool)
    right2 = np.array([2 in x and x[2]["label"] == x[1]["truth"] for x in haiku], dtype=bool)
    value2 = np.array([routing_value(x[2], maps) if 2 in x else -1.0 for x in haiku])
    sonnet = [(Decimal(float(weights.get(tid, 1.0))), from_pico(x[2]["cost_pico"])) for tid, x in tickets.items()
              if 2 in x]  # every Sonnet answer, as `_whatif` averages them
    sonnet_w = sum((d for d, _ in sonnet), Decimal(0))
    avg_sonnet: Decimal | None = sum((d * c for d, c in sonnet), Decimal(0)) / sonnet_w if sonnet else None
    haiku_cost = sum((d * from_pico(x[1]["cost_pico"]) for d, x in zip(dec, haiku, strict=True)),
                     Decimal(0)) / total_dec
    out = []
    for t in THRESHOLDS:
        kept = value >= t
        replaced = ~kept & asked
        escalated = float(w[~kept].sum())
        answered = float(w[kept].sum() + w[replaced].sum())
        right = float(w[right1 & kept].sum() + w[right2 & replaced].sum())
        escalated_dec = sum((d for d, k in zip(dec, kept.tolist(), strict=True) if not k), Decimal(0))
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * escalated_dec / total_dec
        by_sonnet = replaced & (value2 >= t)
        settled_mask = kept | by_sonnet
        settled_right_mask = (right1 & kept) | (right2 & by_sonnet)
        share, effective = metrics.weighted_share(settled_right_mask[settled_mask].tolist(),
                                                  w[settled_mask].tolist())
        settled_w = float(w[settled_mask].sum())
        out.append(WhatIf(threshold=t, escalation_rate=escalated / total,
                          accuracy=right / answered if answered else None, replayed=int(kept.sum() + replaced.sum()),
                          cost_per_ticket=cost if avg_sonnet is not None or not escalated else None,
                          review_rate=(answered - settled_w) / answered if answered else None,
                          settled_accuracy=share if settled_mask.any() else None, settled=int(settled_mask.sum()),
                          settled_right=int(settled_right_mask.sum()), weighted=True,
                          settled_effective=effective))
    return out
