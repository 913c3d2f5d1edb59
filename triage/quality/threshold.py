"""Which escalation threshold to use: the cheapest one whose accuracy, replayed on stored answers to
operator-labelled tickets, meets a lead's target, with the number of labels behind it and an interval.

The recommendation uses the lower end of a Wilson interval (90% by default), not the point estimate: on 40
labels a measured 92% is compatible with 82%, and a lead asking for 90% should not get a threshold that only
looks good by luck. When no threshold meets the target that way, the answer says so and names the best one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from db.engine import Database
from triage import settings as config
from triage.access import Action, Actor, require
from triage.errors import InputError
from triage.quality import measure as quality

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


@dataclass(frozen=True)
class Recommendation:
    threshold: float | None  # None: no threshold meets the target with this much evidence
    accuracy: float | None
    interval: tuple[float, float] | None
    n: int  # labelled tickets the accuracy was replayed on
    escalation_rate: float | None
    cost_per_ticket: Any  # Decimal dollars from the what-if (or a float), None when unknown
    message: str
    target: float | None = None
    on: str = "stated confidence"  # which confidence the threshold is compared with (the what-if's)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        out["cost_per_ticket"] = None if self.cost_per_ticket is None else str(self.cost_per_ticket)
        return out


def recommend(whatif: Sequence[dict[str, Any]], target: float, level: float = 0.9) -> Recommendation:
    """`whatif`: rows of the Quality page's replay (threshold, accuracy, replayed, escalation_rate,
    cost_per_ticket). Cheapest = lowest cost per ticket, then lowest escalation rate."""
    rows = [r for r in whatif if r.get("accuracy") is not None and r.get("replayed")]
    if not rows:
        return Recommendation(None, None, None, 0, None, None, "no replayable answers on operator-labelled tickets yet")
    scored = []
    for r in rows:
        n = int(r["replayed"])
        lo, hi = wilson(round(r["accuracy"] * n), n, level)
        scored.append((r, n, lo, hi))
    meets = [x for x in scored if x[2] >= target]

    def cost(x: tuple[dict[str, Any], int, float, float]) -> tuple[float, float]:
        r = x[0]
        return (float(r["cost_per_ticket"]) if r.get("cost_per_ticket") is not None else math.inf,
                float(r["escalation_rate"]))  # equally cheap: the first, lowest threshold

    if meets:
        r, n, lo, hi = min(meets, key=cost)
        return Recommendation(float(r["threshold"]), float(r["accuracy"]), (lo, hi), n, float(r["escalation_rate"]),
                              r.get("cost_per_ticket"), f"escalate under {r['threshold']:.2f}: accuracy "
                              f"{r['accuracy']:.0%} ({lo:.0%}-{hi:.0%} at {level:.0%} confidence) on {n} labelled "
                              f"tickets, {r['escalation_rate']:.0%} escalated")
    r, n, lo, hi = max(scored, key=lambda x: x[2])
    return Recommendation(None, float(r["accuracy"]), (lo, hi), n, float(r["escalation_rate"]),
                          r.get("cost_per_ticket"),
                          f"no threshold reaches {percent(target)} with {level:.0%} confidence on these {n} labels; "
                          f"the best is {r['threshold']:.2f} at {r['accuracy']:.0%} ({lo:.0%}-{hi:.0%}). Label more "
                          "tickets or lower the target.")


def check_target(target: float) -> float:
    if not 0 < target < 1:
        raise InputError(f"the target accuracy is a share between 0 and 1, such as 0.9 (not {target})")
    return float(target)


def recommend_stored(db: Database, target: float, level: float = 0.9) -> Recommendation:
    """The recommendation on the stored answers (the Quality page's what-if, replayed on the confidence the router
    compares: calibrated where a calibration is in force)."""
    result = quality.measure(db)
    rec = recommend(result.whatif, check_target(target), level)
    return replace(rec, target=target, on=result.whatif_on)


def apply_recommended(db: Database, target: float, *, actor: Actor, level: float = 0.9) -> Recommendation:
    """Recommend again on the answers stored now (not on a page's older figures) and make it the threshold in force:
    a lead's settings change, in the audit trail with who, when, from, to and the recommendation it came from.
    InputError (nothing changed) when no threshold meets the target."""
    require(actor, Action.CONFIGURE)
    rec = recommend_stored(db, target, level)
    if rec.threshold is None:
        raise InputError(f"nothing was changed: {rec.message}")
    config.save_engine(db, actor=actor, threshold=rec.threshold,
                       why=f"recommended for a target accuracy of {percent(target)} on the {rec.on}: {rec.message}")
    return rec
