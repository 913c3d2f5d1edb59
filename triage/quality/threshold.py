"""Which escalation threshold to use: the cheapest one whose accuracy, replayed on stored answers to
operator-labelled tickets, meets a lead's target, with the number of labels behind it and an interval.

The recommendation uses the lower end of a Wilson interval (90% by default), not the point estimate: on 40
labels a measured 92% is compatible with 82%, and a lead asking for 90% should not get a threshold that only
looks good by luck. When no threshold meets the target that way, the answer says so and names the best one.

Which labels, counted how: every labelled ticket's stored answers, review-queue and imported labels once each,
blind-audit answers 1/(their chance of being drawn) each, so that the replay stands for the traffic rather than for
the hard tickets the review queue shows (triage/quality/calibrate.py says why, and what a review backlog does to
it). With audit answers the accuracy, review share and cost are weighted, and the interval is the Wilson interval
on the effective number of answers (`metrics.weighted_share`, as the blind audit's own figure); `n` still counts
tickets. With none, every figure is exactly the unweighted one.

The accuracy judged is that of what is settled without review (Haiku sure enough, or Sonnet sure enough after
an escalation); the tickets sent to review are the review budget's. With a budget ("at most N reviews a day":
the max_reviews_per_day setting or `triage quality --max-reviews-per-day N`) the thresholds that would send more
tickets a day to review than that (review share on the stored answers times the tickets a day of the last 28
days) are not candidates. The trade-off (accuracy of what is settled, reviews a day, API cost per 1,000 tickets)
is given for every threshold (`tradeoff`).

Many thresholds, one guarantee: testing 20 thresholds each at 90% and taking the cheapest that passes would
pass a threshold that is really under the target far more often than 10% of the time (one of many lucky
samples suffices). So the thresholds are tested in a fixed order, from the highest (most escalation and review,
most likely to meet the target) down, and the testing stops at the first that fails (fixed-sequence testing):
a threshold is only tested once every higher one passed, so the chance of passing any threshold that is really
under the target stays at most 10%, with no correction and no loss of power where accuracy falls as the
threshold falls, which is how thresholds behave. The order is fixed before the data are seen; the review budget
only decides where the sequence starts. A Bonferroni correction would do as well on the guarantee but test each
threshold at 99.5%, which on a few hundred labels rules out most of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import NotRequired, TypedDict

from typing_extensions import ReadOnly

from db.engine import Database
from triage import settings as config
from triage.access import Action, Actor, require
from triage.domain import money_text
from triage.errors import InputError
from triage.quality import measure as quality
from triage.quality import unreviewed

Z = {0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96}


def percent(share: float) -> str:
    """A target as a lead typed it: 90%, 97.5%."""
    return f"{share:.0%}" if abs(share * 100 - round(share * 100)) < 1e-9 else f"{share:.1%}"


def wilson(right: int, n: int, level: float = 0.9) -> tuple[float, float]:
    """The Wilson score interval for a proportion right/n."""
    if n == 0:
        return 0.0, 1.0
    z = Z[level]
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class Replay(TypedDict):
    """One threshold of a replay, as `tradeoff` and `recommend` read it: the Quality page's what-if row
    (`measure.WhatIf`), or an older replay without review figures (no `settled`: every replayed ticket counts as
    settled, none goes to review). Read-only, so that a what-if row, whose keys are all there, is one."""

    threshold: ReadOnly[float]
    accuracy: ReadOnly[float | None]  # of the answers that stand
    replayed: ReadOnly[int]
    escalation_rate: ReadOnly[NotRequired[float | None]]
    cost_per_ticket: ReadOnly[NotRequired[Decimal | float | None]]  # dollars
    review_rate: ReadOnly[NotRequired[float | None]]
    settled: ReadOnly[NotRequired[int]]  # settled without review, and of those right
    settled_right: ReadOnly[NotRequired[int]]
    settled_accuracy: ReadOnly[NotRequired[float | None]]  # weighted when `weighted`
    weighted: ReadOnly[NotRequired[bool]]  # blind-audit answers weigh 1/p (measure.WhatIf)
    settled_effective: ReadOnly[NotRequired[float]]  # the settled accuracy's effective number of answers


class Tradeoff(TypedDict):
    """One threshold of the trade-off: accuracy of what is settled without review (interval and n), the share and
    number a day sent to review, API cost per 1,000 tickets, and whether it fits the review budget."""

    threshold: float
    settled_accuracy: float | None
    low: float | None  # the interval (None: nothing settled)
    high: float | None
    settled: int
    effective: float  # the number of answers the interval is taken on: `settled`, or fewer or more when weighted
    weighted: bool  # blind-audit answers weigh 1/(their chance of being drawn), other labels 1
    review_rate: float | None
    reviews_per_day: float | None  # None: no traffic to scale by, or no review rate
    escalation_rate: float | None
    cost_per_1000_usd: Decimal | None
    within_budget: bool


class TradeoffJson(TypedDict):
    """A `Tradeoff` row in `--json`: the cost as an exact decimal string."""

    threshold: float
    settled_accuracy: float | None
    low: float | None
    high: float | None
    settled: int
    effective: float
    weighted: bool
    review_rate: float | None
    reviews_per_day: float | None
    escalation_rate: float | None
    cost_per_1000_usd: str | None
    within_budget: bool


class RecommendationJson(TypedDict):
    """`Recommendation.to_dict`: its fields in order, money as exact decimal strings."""

    threshold: float | None
    accuracy: float | None
    interval: list[float] | None
    n: int
    escalation_rate: float | None
    cost_per_ticket: str | None
    message: str
    target: float | None
    on: str
    review_rate: float | None
    reviews_per_day: float | None
    max_reviews_per_day: int | None
    tested: str
    tradeoff: list[TradeoffJson]


@dataclass(frozen=True)
class Recommendation:
    threshold: float | None  # None: no threshold meets the target with this much evidence
    accuracy: float | None  # of what is settled without review at that threshold
    interval: tuple[float, float] | None
    n: int  # labelled tickets settled without review at that threshold, the accuracy's sample
    escalation_rate: float | None
    cost_per_ticket: Decimal | float | None  # dollars, from the what-if (Decimal) or a replay given (a float)
    message: str
    target: float | None = None
    on: str = "stated confidence"  # which confidence the threshold is compared with (the what-if's)
    review_rate: float | None = None  # share of tickets sent to review at that threshold
    reviews_per_day: float | None = None  # review_rate x tickets a day (None: no traffic to scale by)
    max_reviews_per_day: int | None = None  # the review budget it respected (None: none)
    tested: str = "fixed sequence, highest threshold first, stopping at the first that fails"
    tradeoff: list[Tradeoff] = field(default_factory=list)  # every threshold: accuracy, reviews, cost

    def to_dict(self) -> RecommendationJson:
        return RecommendationJson(
            threshold=self.threshold, accuracy=self.accuracy,
            interval=list(self.interval) if self.interval else None, n=self.n, escalation_rate=self.escalation_rate,
            cost_per_ticket=None if self.cost_per_ticket is None else str(self.cost_per_ticket),
            message=self.message, target=self.target, on=self.on, review_rate=self.review_rate,
            reviews_per_day=self.reviews_per_day, max_reviews_per_day=self.max_reviews_per_day, tested=self.tested,
            tradeoff=[tradeoff_json(r) for r in self.tradeoff])


def tradeoff_json(r: Tradeoff) -> TradeoffJson:
    return {**r, "cost_per_1000_usd": None if r["cost_per_1000_usd"] is None else money_text(r["cost_per_1000_usd"])}


def tradeoff(whatif: Sequence[Replay], tickets_per_day: float | None, level: float = 0.9,
             max_reviews_per_day: int | None = None) -> list[Tradeoff]:
    """Per threshold, highest first: accuracy of what is settled without review (its interval and n), the share
    and number a day sent to review, API cost per 1,000 tickets, and whether it fits the review budget."""
    out: list[Tradeoff] = []
    for r in sorted(whatif, key=lambda r: -float(r["threshold"])):
        if "settled" in r:
            n, right = int(r["settled"] or 0), int(r.get("settled_right") or 0)
        else:  # a replay without review figures: every replayed ticket counts as settled
            n = int(r.get("replayed") or 0)
            accuracy = r["accuracy"]
            right = round(accuracy * n) if accuracy is not None else 0
        lo, hi = wilson(right, n, level) if n else (None, None)
        share, effective = (right / n if n else None), float(n)
        weighted_share = r.get("settled_accuracy")
        if r.get("weighted") and n and weighted_share is not None:
            # blind-audit answers weigh 1/p: the weighted share, its interval on the effective number of answers
            share, effective = float(weighted_share), float(r.get("settled_effective") or n)
            lo, hi = unreviewed.wilson(share, effective, Z[level])
        review = r.get("review_rate", 0.0 if "settled" not in r else None)
        per_day = None if review is None or tickets_per_day is None else review * tickets_per_day
        cost = r.get("cost_per_ticket")
        out.append(Tradeoff(
            threshold=float(r["threshold"]), settled_accuracy=share, low=lo, high=hi, settled=n, effective=effective,
            weighted=bool(r.get("weighted")), review_rate=review, reviews_per_day=per_day,
            escalation_rate=r.get("escalation_rate"),
            cost_per_1000_usd=None if cost is None else Decimal(str(cost)) * 1000,
            # no traffic in the last 28 days: reviews a day unknown, so the budget cannot rule a threshold out
            within_budget=not max_reviews_per_day or per_day is None or per_day <= max_reviews_per_day))
    return out


def weighted(row: Tradeoff) -> str:
    """What a trade-off row's figures are weighted by, in words ("" when every label counted once)."""
    if not row["weighted"]:
        return ""
    return (f" (blind-audit answers weighted by 1/their chance of being drawn: worth {row['effective']:.0f} "
            "unweighted answers)")


def recommend(whatif: Sequence[Replay], target: float, level: float = 0.9, *,
              max_reviews_per_day: int | None = None, tickets_per_day: float | None = None) -> Recommendation:
    """`whatif`: rows of the Quality page's replay (threshold, accuracy, replayed, escalation_rate,
    cost_per_ticket, settled, settled_right, review_rate). Thresholds within the review budget are tested highest
    first, each on the low end of its interval, stopping at the first that fails; of those that passed the
    cheapest wins (lowest cost per ticket, then fewest reviews, then lowest escalation rate)."""
    budget = max_reviews_per_day or None
    rows = tradeoff([r for r in whatif if r.get("replayed")], tickets_per_day, level, budget)
    if not any(r["settled"] for r in rows):
        return Recommendation(None, None, None, 0, None, None, "no replayable answers on operator-labelled tickets yet",
                              max_reviews_per_day=budget, tradeoff=rows)
    cost_of = {float(r["threshold"]): r.get("cost_per_ticket") for r in whatif}
    candidates = [r for r in rows if r["within_budget"]]
    passed = []
    for r in candidates:  # fixed sequence: highest threshold first, stop at the first failure
        if not r["settled"] or r["low"] is None or r["low"] < target:
            break
        passed.append(r)
    spell = f" within {budget:,} reviews a day" if budget else ""

    def cheap(r: Tradeoff) -> tuple[float, float, float, float]:  # equally cheap: the lowest threshold
        c = cost_of.get(r["threshold"])
        return (float(c) if c is not None else math.inf, r["review_rate"] or 0.0, r["escalation_rate"] or 0.0,
                r["threshold"])

    def build(r: Tradeoff, threshold: float | None, message: str) -> Recommendation:
        interval = None if r["low"] is None or r["high"] is None else (r["low"], r["high"])
        return Recommendation(threshold, r["settled_accuracy"], interval, r["settled"],
                              r["escalation_rate"], cost_of.get(r["threshold"]), message,
                              review_rate=r["review_rate"], reviews_per_day=r["reviews_per_day"],
                              max_reviews_per_day=budget, tradeoff=rows)

    if passed:
        r = min(passed, key=cheap)
        reviews = "" if r["reviews_per_day"] is None else f", about {r['reviews_per_day']:.0f} reviews a day"
        return build(r, r["threshold"], f"escalate under {r['threshold']:.2f}: accuracy {r['settled_accuracy']:.0%} "
                     f"({r['low']:.0%}-{r['high']:.0%} at {level:.0%} confidence) on {r['settled']} labelled "
                     f"tickets settled without review{weighted(r)}, {r['escalation_rate']:.0%} escalated, "
                     f"{r['review_rate']:.0%} to review{reviews}")
    pool = [r for r in (candidates or rows) if r["settled"]]
    r = max(pool, key=lambda x: -1.0 if x["low"] is None else x["low"])  # settled: never None
    labelled = max(x["settled"] for x in pool)
    why = (f"no threshold{spell} reaches {percent(target)} with {level:.0%} confidence on these {labelled} labels"
           if candidates else f"every threshold sends more than {budget:,} tickets a day to review")
    return build(r, None, f"{why}; the best is {r['threshold']:.2f} at {r['settled_accuracy']:.0%} "
                 f"({r['low']:.0%}-{r['high']:.0%}) on {r['settled']} labels{weighted(r)}. Label more tickets, lower "
                 "the target"
                 + (" or raise the review budget." if budget else "."))


def check_target(target: float) -> float:
    if not 0 < target < 1:
        raise InputError(f"the target accuracy is a share between 0 and 1, such as 0.9 (not {target})")
    return float(target)


def recommend_stored(db: Database, target: float, level: float = 0.9,
                     max_reviews_per_day: int | None = None) -> Recommendation:
    """The recommendation on the stored answers (the Quality page's what-if, replayed on the confidence the router
    compares: calibrated where a calibration is in force), within the review budget given, else the one in force
    (max_reviews_per_day; 0: none)."""
    result = quality.measure(db)
    budget = config.effective(db)[0].max_reviews_per_day if max_reviews_per_day is None else max_reviews_per_day
    rec = recommend(result.whatif, check_target(target), level, max_reviews_per_day=budget,
                    tickets_per_day=quality.tickets_per_day(db))
    return replace(rec, target=target, on=result.whatif_on)


def apply_recommended(db: Database, target: float, *, actor: Actor, level: float = 0.9,
                      max_reviews_per_day: int | None = None) -> Recommendation:
    """Recommend again on the answers stored now (not on a page's older figures) and make it the threshold in force:
    a lead's settings change, in the audit trail with who, when, from, to and the recommendation it came from.
    InputError (nothing changed) when no threshold meets the target."""
    require(actor, Action.CONFIGURE)
    rec = recommend_stored(db, target, level, max_reviews_per_day)
    if rec.threshold is None:
        raise InputError(f"nothing was changed: {rec.message}")
    config.save_engine(db, actor=actor, threshold=rec.threshold,
                       why=f"recommended for a target accuracy of {percent(target)} on the {rec.on}: {rec.message}")
    return rec


def apply_choice(db: Database, choice: float, *, actor: Actor, level: float = 0.9,
                 max_reviews_per_day: int | None = None) -> Tradeoff:
    """A lead's pick from the trade-off (any threshold of it, recommended or not), made the threshold in force in
    one step: a settings change in the audit trail with that threshold's figures, recomputed on the answers
    stored now. InputError for a threshold the trade-off does not hold."""
    require(actor, Action.CONFIGURE)
    result = quality.measure(db)
    budget = config.effective(db)[0].max_reviews_per_day if max_reviews_per_day is None else max_reviews_per_day
    rows = {round(r["threshold"], 2): r for r in tradeoff(result.whatif, quality.tickets_per_day(db), level, budget)}
    row = rows.get(round(float(choice), 2))
    if row is None or not row["settled"]:
        raise InputError(f"nothing was changed: {choice} is not a threshold with replayed answers "
                         f"({', '.join(f'{t:.2f}' for t in sorted(rows))})")
    acc = "unknown" if row["settled_accuracy"] is None else (
        f"{row['settled_accuracy']:.0%} ({row['low']:.0%}-{row['high']:.0%}) on {row['settled']}")
    reviews = "" if row["reviews_per_day"] is None else f", about {row['reviews_per_day']:.0f} reviews a day"
    cost = "" if row["cost_per_1000_usd"] is None else f", ${money_text(row['cost_per_1000_usd'])} per 1,000"
    config.save_engine(db, actor=actor, threshold=row["threshold"],
                       why=f"chosen from the trade-off on the {result.whatif_on}: accuracy of what is settled {acc}, "
                           f"{row['review_rate']:.0%} to review{reviews}{cost}")
    return row
