"""`triage quality`'s report: the Quality page's figures (per model and tier, the confusion matrices, calibration,
the what-if, by request size, few-shot, priority) and a threshold recommendation, as one object with its JSON and its
text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TypedDict

from db.engine import Database
from triage import settings as config
from triage.access import Actor
from triage.errors import InputError
from triage.quality import calibrate, measure, metrics, threshold, unreviewed
from triage.quality import fewshot as quality_fewshot
from triage.quality import groups as quality_groups
from triage.quality import priority as quality_priority
from triage.quality.unreviewed import UnreviewedJson
from triage.taxonomy import Taxonomy

FULL_MATRIX_UP_TO = 10  # categories; past that the matrix is in --json only, the pairs and recalls are printed
TOP_PAIRS = 10


class AppliedRecommendationJson(threshold.RecommendationJson):
    applied: bool
    threshold_before: float | None


class PriorityCell(TypedDict):
    operator: str  # the operator's priority
    model: str  # the model's, or unknown
    tickets: int


class PriorityJson(TypedDict):
    measured_on: str
    n: int
    right: int
    accuracy: float | None
    unknown: int
    ece: float | None
    confusion: list[PriorityCell]


class QualityReportJson(measure.QualityJson):
    """What `triage quality --json` prints."""

    by_group_size: list[quality_groups.GroupQualityJson]
    unreviewed: UnreviewedJson
    priority: PriorityJson


class RecommendedReportJson(QualityReportJson):
    """With `--target`: the recommendation too."""

    recommendation: AppliedRecommendationJson


@dataclass
class QualityReport:
    result: measure.Quality
    by_size: list[quality_groups.GroupQuality]
    blind: unreviewed.Unreviewed  # the blind audit's figures: the traffic nobody reviewed
    priority: quality_priority.PriorityQuality  # the model's priority against operators' (all time, as the page)
    target: float | None = None
    recommendation: threshold.Recommendation | None = None
    applied: bool = False
    threshold_before: float | None = None
    applied_by: str | None = None

    def to_dict(self) -> QualityReportJson | RecommendedReportJson:
        out = QualityReportJson(**self.result.to_dict(), by_group_size=[x.to_dict() for x in self.by_size],
                                unreviewed=self.blind.to_dict(), priority=priority_dict(self.priority))
        if self.recommendation is None:
            return out
        return RecommendedReportJson(**out, recommendation={**self.recommendation.to_dict(), "applied": self.applied,
                                                            "threshold_before": self.threshold_before})

    def text(self) -> str:
        result = self.result
        lines = [unreviewed_text(self.blind), "", "Review labels: " + result.measured_on()]
        if not result.per_tier:
            return "\n".join([*lines, "Correct or confirm tickets in the review queue, or import labels (`triage "
                              "label`), to measure the models.", "", priority_text(self.priority)])
        lines += ["", f"{'tier':>4}  {'model':<22} {'n':>6} {'accuracy':>9} {'macro-F1':>9} {'ECE':>6} {'says':>6}"]
        lines += [f"{t['tier']:>4}  {t['model']:<22} {t['n']:>6} {t['accuracy']:>9.3f} {t['macro_f1']:>9.3f} "
                  f"{t['ece']:>6.3f} {t['mean_confidence']:>6.2f}" for t in result.per_tier]
        for t in result.per_tier:
            lines.append("")
            if len(t["confusion"]["labels"]) <= FULL_MATRIX_UP_TO:
                lines.append(confusion_text(t["confusion"], f"{t['name']} ({t['model']})"))
            lines.append(confused_text(t["confusion"], f"{t['name']} ({t['model']})"))
        lines += ["", calibrations_text(result.calibrations)]
        if result.whatif:
            lines += ["", f"what-if (Haiku's threshold on its {result.whatif_on}, replayed on stored answers; "
                      f"{'weighted to the traffic by the blind audit' if result.audit_weighted else 'unweighted'}):",
                      f"{'threshold':>9} {'escalated':>10} {'accuracy':>9} {'replayed':>9} {'cost/ticket':>14}"]
            for w in result.whatif:
                acc = "—" if w["accuracy"] is None else f"{w['accuracy']:.3f}"
                cost = "—" if w["cost_per_ticket"] is None else f"${w['cost_per_ticket']:.6f}"
                lines.append(f"{w['threshold']:>9.2f} {w['escalation_rate']:>10.1%} {acc:>9} {w['replayed']:>9} "
                             f"{cost:>14}")
        if quality_groups.grouped_in_use(self.by_size):
            lines += ["", "by tickets per request (each labelled ticket's latest answer from requests of that size):",
                      f"{'model':<8} {'tickets/request':>15} {'n':>6} {'accuracy':>9} {'ECE':>6} {'says':>6}"]
            lines += [f"{x.name:<8} {x.band:>15} {x.n:>6} {x.accuracy:>9.3f} {x.ece:>6.3f} {x.mean_confidence:>6.2f}"
                      for x in self.by_size]
        f = result.flips
        if f["escalated"]:
            lines.append(f"\nSonnet changed Haiku's label on {f['flipped']} of {f['escalated']} escalated tickets; "
                         f"the operator sided with Sonnet on {f['sonnet_right']} and with Haiku on "
                         f"{f['haiku_right']}.")
        lines += ["\nfew-shot: " + quality_fewshot.describe(c) for c in result.fewshot]
        return "\n".join([*lines, "", priority_text(self.priority), *self._recommendation_lines()])

    def _recommendation_lines(self) -> list[str]:
        rec = self.recommendation
        if rec is None or self.target is None:
            return []
        lines = ["", tradeoff_text(rec), self.result.whatif_weighting(), "",
                 f"target accuracy {threshold.percent(self.target)} (threshold on the {rec.on}): {rec.message}"]
        if self.applied and rec.threshold is not None and self.threshold_before is not None:
            lines.append(f"applied: the threshold is now {rec.threshold:.2f} (was {self.threshold_before:.2f}), "
                         f"recorded in the audit trail as {self.applied_by}")
        elif rec.threshold is not None:
            lines.append(f"to apply it: triage quality --target {self.target} --apply")
        return lines


def check(*, target: float | None, apply: bool, since: date | None, max_reviews_per_day: int | None = None) -> None:
    """Refuse a request that cannot be answered (InputError), before anything is opened or read."""
    if apply and target is None:
        raise InputError("--apply needs --target: the accuracy the threshold must reach")
    if target is not None:
        threshold.check_target(target)
        if since is not None:
            raise InputError("--target replays every stored answer; leave out --since")
    if max_reviews_per_day is not None:
        if target is None:
            raise InputError("--max-reviews-per-day needs --target: it bounds the recommendation")
        config.max_reviews(max_reviews_per_day, "--max-reviews-per-day")


def report(db: Database, taxonomy: Taxonomy, *, threshold_now: float, since: date | None = None,
           target: float | None = None, apply: bool = False, actor: Actor,
           max_reviews_per_day: int | None = None) -> QualityReport:
    """The figures, and with `target` the cheapest threshold that meets it (made the one in force with `apply`, as
    `actor`, a settings change in the audit trail)."""
    check(target=target, apply=apply, since=since, max_reviews_per_day=max_reviews_per_day)
    out = QualityReport(measure.measure(db, since=since, classes=taxonomy.names),
                        quality_groups.by_group_size(db, since=since), unreviewed.figures(db),
                        quality_priority.measure(db, actor=actor), target)
    if target is not None and apply:
        out.applied, out.threshold_before, out.applied_by = True, threshold_now, actor.identity
        out.recommendation = threshold.apply_recommended(db, target, actor=actor,
                                                         max_reviews_per_day=max_reviews_per_day)
    elif target is not None:
        out.recommendation = threshold.recommend_stored(db, target, max_reviews_per_day=max_reviews_per_day)
    return out


def tradeoff_text(rec: threshold.Recommendation) -> str:
    """Every threshold's accuracy of what is settled, reviews a day and API cost per 1,000, on stored answers."""
    budget = f", at most {rec.max_reviews_per_day:,} reviews a day" if rec.max_reviews_per_day else ""
    lines = [f"trade-off on stored answers to operator-labelled tickets{budget} (tested {rec.tested}):",
             f"{'threshold':>9} {'settled right':>14} {'90% interval':>13} {'n':>6} {'to review':>9} "
             f"{'reviews/day':>11} {'$ per 1,000':>12}"]
    for r in rec.tradeoff:
        acc = "—" if r["settled_accuracy"] is None else f"{r['settled_accuracy']:.1%}"
        ci = "—" if r["low"] is None else f"{r['low']:.0%}-{r['high']:.0%}"
        review = "—" if r["review_rate"] is None else f"{r['review_rate']:.1%}"
        per_day = "—" if r["reviews_per_day"] is None else f"{r['reviews_per_day']:.0f}"
        cost = "—" if r["cost_per_1000_usd"] is None else f"${float(r['cost_per_1000_usd']):.4f}"
        over = "" if r["within_budget"] else "  over the review budget"
        lines.append(f"{r['threshold']:>9.2f} {acc:>14} {ci:>13} {r['settled']:>6} {review:>9} {per_day:>11} "
                     f"{cost:>12}{over}")
    return "\n".join(lines)


def priority_dict(p: quality_priority.PriorityQuality) -> PriorityJson:
    """The Quality page's priority figures as JSON: tickets an operator gave a priority, how many the model got
    right, said unknown, the calibration error and the confusion (operator's priority -> the model's)."""
    return PriorityJson(measured_on=PRIORITY_MEASURED_ON, n=p.n, right=p.right, accuracy=p.accuracy,
                        unknown=p.unknown, ece=p.ece,
                        confusion=[PriorityCell(operator=truth, model=said, tickets=n)
                                   for (truth, said), n in sorted(p.confusion.items())])


PRIORITY_MEASURED_ON = ("tickets an operator gave a priority, against the model's latest priority on each (all time, "
                        "whatever --since says)")


def priority_text(p: quality_priority.PriorityQuality) -> str:
    """The priority figures as the Quality page shows them: right, calibration error, unknown, the confusion."""
    if not p.n:
        return ("Priority: no ticket has a priority set by an operator yet (set some in the review queue to measure "
                "it).")
    ece = "n/a" if p.ece is None else f"{p.ece:.3f}"
    lines = [f"Priority, measured on {p.n} {PRIORITY_MEASURED_ON}: right {p.accuracy or 0:.1%} ({p.right} of "
             f"{p.n}), calibration error {ece}, the model said unknown on {p.unknown}",
             f"  {'operator':<12} {'model':<12} {'tickets':>7}"]
    lines += [f"  {truth:<12} {said:<12} {n:>7}" for (truth, said), n in sorted(p.confusion.items())]
    return "\n".join(lines)


def unreviewed_text(blind: unreviewed.Unreviewed) -> str:
    """The blind audit's figures: what settled without review, how often right (90% interval, n)."""
    lines = [blind.measured_on()]
    for e in [blind.overall, *blind.per_model]:
        if e.accuracy is None:
            lines.append(f"  {e.name}: no audit answers yet ({e.settled:,} settled without review)")
        else:
            lines.append(f"  {e.name}: {e.accuracy:.1%} right ({e.low:.1%}-{e.high:.1%}), {e.audited} audited of "
                         f"{e.settled:,} settled without review")
    return "\n".join(lines)



def calibrations_text(rows: list[calibrate.ModelCalibration]) -> str:
    """Per model: the calibration in force (and what it makes of each confidence level) or why there is none."""
    lines = ["calibration (stated confidence -> observed chance of being right, fitted on operator labels):"]
    for c in rows:
        m = c["in_force"]
        if m is None:
            why = c["missing"] or "enough labels; fitted at the next label change or by `triage calibrate`"
            lines.append(f"  {c['model']}: {why}")
            continue
        after = "" if m["ece_after"] is None else f" -> {m['ece_after']:.3f} on answers it did not see"
        lines.append(f"  {c['model']}: calibration #{m['id']} in force, fitted on {m['n']} labels "
                     f"({m['trigger']}, by {m['fitted_by']}, {m['fitted_at'][:16].replace('T', ' ')} UTC); "
                     f"calibration error {m['ece_before']:.3f}{after}; refits at {c['refit_at']} labels")
        lines += [f"    {lv['text']}" for lv in c["levels"]]
    return "\n".join(lines)


def confused_text(c: metrics.Confusion, title: str) -> str:
    """The most confused pairs and every category's recall (worst first): readable at 77 categories."""
    pairs = metrics.confused_pairs(c, TOP_PAIRS)
    lines = [f"{title}: most confused (operator's label -> the model's, tickets, share of the label)"]
    lines += [f"  {p['truth']} -> {p['said']}: {p['n']} ({p['share']:.0%})" for p in pairs] or ["  none"]
    recalls = metrics.recall_by_category(c)
    lines.append(f"{title}: recall per category, worst first (n = the operator's tickets)")
    width = max([8, *(len(r["category"]) for r in recalls)])
    lines += [f"  {r['category']:<{width}} {r['recall']:>6.1%}  n={r['support']}" for r in recalls]
    if len(c["labels"]) > FULL_MATRIX_UP_TO:
        lines.append(f"  (the full {len(c['labels'])}x{len(c['labels'])} matrix: triage quality --json)")
    return "\n".join(lines)


def confusion_text(c: metrics.Confusion, title: str) -> str:
    labels, matrix = c["labels"], c["matrix"]
    width = max(8, *(len(x) for x in labels)) + 1
    lines = [f"{title}: rows are the operator's label, columns the model's",
             " " * width + "".join(f"{x[:width - 1]:>{width}}" for x in labels)]
    lines += [f"{label:<{width}}" + "".join(f"{n:>{width}}" for n in row)
              for label, row in zip(labels, matrix, strict=True)]
    return "\n".join(lines)
