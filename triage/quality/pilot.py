"""A pilot's figures: each route measured on the sample's recorded answers against the file's labels.

Pure (the calls come in as rows, `db.pilots.calls_of_runs`). Per route: accuracy with a 90% Wilson interval and
its n, the share escalated, the share sent to review, cost per 1,000 tickets, p95 latency, and at a monthly
volume the API cost and the reviewer hours. The routes:

- `local`: the local model alone (tier 0, $0);
- `haiku`: Haiku alone: the tier-1 answers of the Haiku -> Sonnet run (the same request Haiku alone would send);
- `haiku>sonnet@T` for each threshold T considered: Sonnet was asked once, by one run at the highest threshold
  (every ticket under it, or whose Haiku answer was unusable); each lower threshold is derived from the same
  answers, a ticket escalating at T exactly when its Haiku answer would have sent it at T (`should_escalate`,
  on the confidence routing compares: calibrated when a calibration was in force);
- `grouped@T`: Haiku -> Sonnet at the threshold in force with several tickets per request, a run of its own.

A ticket is measured on a route when the route's answers for it are all there: a cap that stopped the pilot
before Haiku answered it, or before Sonnet did where the route escalates it, leaves it out of that route's n (and
says so). "Sent to review": what the review queue would show at the route's threshold (the threshold in force for
the routes without one of their own): left for review (unusable, or its deciding answer under the threshold),
failed, or Haiku and Sonnet disagreeing."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from triage.domain import FAILED, NEEDS_REVIEW, UNANSWERED, CallResult, Outcome, from_pico, money_text
from triage.quality.threshold import wilson
from triage.routing.router import decide, should_escalate

if TYPE_CHECKING:  # the rows' type only: the figures stay pure
    from db.pilots import PilotCall

HAIKU_SONNET = "haiku>sonnet"
DERIVED = ("each lower threshold is derived from the answers of one Haiku -> Sonnet run at the highest one: Sonnet "
           "was asked once per ticket")


@dataclass(frozen=True)
class Route:
    """A route as the pilot compares it: its key (`local`, `haiku`, `haiku>sonnet@0.70`, `grouped@0.70`), the run
    whose answers measure it, the tiers it uses and the threshold it decides at."""

    key: str
    title: str
    run: str  # which of the pilot's runs: local | two_tier | grouped
    tiers: tuple[int, ...]
    threshold: float
    escalates: bool = False
    per_call: int = 1
    derived: bool = False


@dataclass(frozen=True)
class Measured:
    """One ticket on one route."""

    correct: bool
    escalated: bool
    review: bool
    cost_pico: int
    latency_ms: int


@dataclass(frozen=True)
class Figures:
    route: Route
    planned: int  # tickets in the sample
    n: int  # measured
    right: int
    escalated: int
    reviews: int
    cost_pico: int
    latencies: tuple[int, ...]

    @property
    def accuracy(self) -> float | None:
        return self.right / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.right, self.n, 0.9) if self.n else None

    def share(self, k: int) -> float | None:
        return k / self.n if self.n else None

    @property
    def cost_per_1000(self) -> Decimal | None:
        return from_pico(self.cost_pico) * 1000 / self.n if self.n else None

    @property
    def p95_latency_ms(self) -> int | None:
        """The nearest-rank 95th percentile of the tickets' latencies (each ticket: the sum of its calls')."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def monthly_api_usd(self, volume: int | None) -> Decimal | None:
        per_1000 = self.cost_per_1000
        return None if volume is None or per_1000 is None else per_1000 * volume / 1000

    def review_hours(self, volume: int | None, minutes_per_review: float) -> float | None:
        share = self.share(self.reviews)
        return None if volume is None or share is None else share * volume * minutes_per_review / 60


def routes(thresholds: Sequence[float], in_force: float, per_call: int) -> list[Route]:
    """The routes worth comparing, in the order they are shown."""
    top = max(thresholds)
    out = [Route("local", "Local model alone", "local", (0,), in_force),
           Route("haiku", "Haiku alone", "two_tier", (1,), in_force)]
    out += [Route(f"{HAIKU_SONNET}@{t:.2f}", f"Haiku -> Sonnet at {t:.2f}", "two_tier", (1, 2), t, True,
                  derived=t < top) for t in sorted(thresholds)]
    out.append(Route(f"grouped@{in_force:.2f}", f"Haiku -> Sonnet at {in_force:.2f}, {per_call} a request",
                     "grouped", (1, 2), in_force, True, per_call))
    return out


def call_of(row: PilotCall) -> CallResult:
    """A recorded call (db.pilots.calls_of_runs) as routing reads it."""
    return CallResult(int(row["tier"]), str(row["model"]), str(row["outcome"]), category=row["category"],
                      confidence=row["confidence"], error_kind=row["error_kind"], latency_ms=int(row["latency_ms"]),
                      calibration_id=row["calibration_id"], calibrated_confidence=row["calibrated_confidence"],
                      group_size=int(row["group_size"] or 1))


def _left_unanswered(calls: Sequence[CallResult]) -> bool:
    """No answer of this tier yet, and the last try was a several-ticket answer that left it out (it would have
    been asked alone next): not a failure of the route, just not measured."""
    return not any(c.answered for c in calls) and bool(calls) and calls[-1].error_kind == UNANSWERED


def outcome_on(route: Route, calls: Sequence[tuple[CallResult, int]]) -> tuple[Outcome, int, int] | None:
    """The ticket's outcome on `route` from its recorded (call, cost) pairs (call order), with what the calls the
    route uses cost and took; None when the route's answers for it are not all there."""
    first = [(c, p) for c, p in calls if c.tier == route.tiers[0]]
    if not first or _left_unanswered([c for c, _ in first]):
        return None
    used = list(first)
    answered = [c for c, _ in first if c.answered]
    if route.escalates and answered and should_escalate(answered[-1], route.threshold):
        second = [(c, p) for c, p in calls if c.tier == 2]
        if not second or _left_unanswered([c for c, _ in second]):
            return None
        used += second
    outcome = decide([c for c, _ in used], route.threshold)
    return outcome, sum(p for _, p in used), sum(c.latency_ms for c, _ in used)


def measure(route: Route, calls: Sequence[tuple[CallResult, int]], gold: str) -> Measured | None:
    done = outcome_on(route, calls)
    if done is None:
        return None
    outcome, cost, latency = done
    answered = [c for c in outcome.calls if c.answered and c.usable]
    labels = {c.tier: c.category for c in answered}
    disagree = 1 in labels and 2 in labels and labels[1] != labels[2]
    review = outcome.status in (NEEDS_REVIEW, FAILED) or disagree
    return Measured(outcome.category == gold, outcome.escalated, review, cost, latency)


def figures(route: Route, tickets: Mapping[int, Sequence[tuple[CallResult, int]]], gold: Mapping[int, str],
            planned: int) -> Figures:
    """`tickets`: the route's run's tickets (by sample row) and their (call, cost) pairs; `gold`: label by row."""
    got = [m for row, calls in tickets.items() if (m := measure(route, calls, gold[row])) is not None]
    return Figures(route, planned, len(got), sum(m.correct for m in got), sum(m.escalated for m in got),
                   sum(m.review for m in got), sum(m.cost_pico for m in got), tuple(m.latency_ms for m in got))


Calls = list[tuple[CallResult, int]]  # a ticket's recorded calls with what each cost (pico-dollars), in order


def by_row(rows: Iterable[PilotCall], row_of: Callable[[str | None], int | None]) -> dict[int, Calls]:
    """Recorded calls grouped by the sample row their ticket stands for (its external id)."""
    out: dict[int, Calls] = {}
    for r in rows:
        row = row_of(r["external_id"])
        if row is not None and r["outcome"] is not None:
            out.setdefault(row, []).append((call_of(r), int(r["cost_pico"] or 0)))
    return out


def _round(x: float | None, places: int = 4) -> float | None:
    return None if x is None else round(x, places)


def _money(x: Decimal | None) -> str | None:
    return None if x is None else money_text(x.quantize(Decimal("0.000001")))


class Projected(TypedDict):
    """A route at the team's monthly volume (None: no volume given)."""

    volume: int | None
    monthly_api_usd: str | None
    review_hours: float | None


class RouteJson(TypedDict):
    """A route's figures for `--json` and the page (money as decimal strings, exact to a millionth of a dollar)."""

    title: str
    threshold: float
    per_call: int
    derived: bool
    planned: int
    n: int
    accuracy: float | None
    low: float | None
    high: float | None
    escalated_share: float | None
    review_share: float | None
    cost_per_1000_usd: str | None
    p95_latency_ms: int | None
    projected: Projected


def as_json(f: Figures, volume: int | None, minutes_per_review: float) -> RouteJson:
    """A route's figures for `--json` and the page (money as decimal strings, exact to a millionth of a dollar)."""
    low, high = f.interval or (None, None)
    hours = f.review_hours(volume, minutes_per_review)
    return RouteJson(title=f.route.title, threshold=f.route.threshold, per_call=f.route.per_call,
                     derived=f.route.derived, planned=f.planned, n=f.n,
                     accuracy=_round(f.accuracy), low=_round(low), high=_round(high),
                     escalated_share=_round(f.share(f.escalated)), review_share=_round(f.share(f.reviews)),
                     cost_per_1000_usd=_money(f.cost_per_1000), p95_latency_ms=f.p95_latency_ms,
                     projected=Projected(volume=volume, monthly_api_usd=_money(f.monthly_api_usd(volume)),
                                         review_hours=None if hours is None else round(hours, 1)))

