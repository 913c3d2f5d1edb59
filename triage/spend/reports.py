"""Figures for the spend and routing views: exact money from the per-day rollups, plus clearly-labelled estimates.

Every figure reads rollups (db.rollups), so its cost grows with the days shown, not with the calls stored.
Days are UTC. A ticket counts on each day it had a call (a ticket retried on another day counts on both); the
escalation rate is tickets with a tier-2 call over tickets with a tier-1 call. Tickets, escalation and latency are
production traffic's: a pilot's sample and `triage eval`'s gold tickets are left out (db.rollups), and the cost per
ticket is what production calls cost over production tickets; spend counts every call (a pilot's is said apart).
Latency percentiles come from latencies kept to two significant digits (LATENCY_RESOLUTION)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypedDict

from sqlalchemy.orm import Session

from db import ledger, pilots, reports, rollups
from db.engine import Database
from triage.domain import Usage, from_pico
from triage.errors import UnknownModel
from triage.spend.pricing import PriceTable

LATENCY_RESOLUTION = ("p50/p95 from latencies kept to two significant digits (under 100 ms to the millisecond, "
                      "above within 10%); batch calls have no latency")


@dataclass
class Summary:
    spend: Decimal
    tickets: int
    cost_per_ticket: Decimal | None
    escalation_rate: float | None
    sonnet_alone: Decimal | None  # estimate: the same prompts sent to tier 2 only
    saving: Decimal | None
    month_to_date: Decimal
    month_projection: Decimal


@dataclass(frozen=True)
class Estimates:
    """What the exact spend leaves out: calls probably billed whose answer was lost (a process stopped or died
    with the request in flight), counted at their worst case, and answered calls the price table could not
    price. And, split out of the totals (which include it), what pilots spent (triage/work/pilot.py)."""

    interrupted_calls: int
    interrupted_usd: Decimal
    unknown_cost_calls: int
    unknown_cost_usd: Decimal = Decimal(0)  # their estimate: usage at the dearest known price, or the reservation
    pilot_usd: Decimal = Decimal(0)  # pilots' recorded calls: real spend, counted in the totals and the budget

    @property
    def lines(self) -> list[str]:
        out = []
        if self.interrupted_calls:
            out.append(f"plus up to ${self.interrupted_usd:.6f} in {self.interrupted_calls} interrupted calls "
                       "(estimated: probably billed, answer lost)")
        if self.unknown_cost_calls:
            out.append(f"{self.unknown_cost_calls} calls with unknown cost, estimated up to "
                       f"${self.unknown_cost_usd:.6f} (their model is not in the price table; add it to price them)")
        if self.pilot_usd:
            out.append(f"of which ${self.pilot_usd:.6f} was pilot spend (`triage pilot`, the Pilot page: real calls, "
                       "counted in the totals and the budget)")
        return out


class DayLine(reports.DaySpend):
    """A spend row as the page draws it: its period (the day, or the week's Monday) and its series (model, tier)."""

    period: str
    series: str


class WeekLine(reports.WeekSpend):
    period: str
    series: str


SpendLine = DayLine | WeekLine


class RoutingLine(reports.RoutingRow):
    escalation_rate: float | None  # tickets with a tier-2 call over tickets with a tier-1 call
    cost_per_ticket: Decimal | None


class LatencyLine(TypedDict):
    model: str
    calls: int
    p50_ms: float
    p95_ms: float


class MonthPoint(TypedDict):
    day: str
    cumulative_usd: Decimal


@dataclass
class SpendPage:
    """Everything the Spend & routing page shows, read in one transaction (one consistent snapshot)."""

    summary: Summary
    demo_calls: int
    spend: list[SpendLine]
    routing: list[RoutingLine]
    latency: list[LatencyLine]
    month: list[MonthPoint]
    estimates: Estimates  # what the exact spend leaves out: interrupted calls, calls of unknown cost


def data_version(db: Database) -> tuple[int, ...]:
    """Changes with every recorded call (and rollup rebuild) and with every call booked as interrupted: what
    cached spend figures are keyed on."""
    with db.read() as s:
        return (*rollups.calls_version(s), rollups.version(s, ledger.VERSION))


def spend_page(db: Database, start: date, end: date, by: str = "day", *, tier2_model: str,
               prices: PriceTable | None = None, today: date | None = None) -> SpendPage:
    today = today or date.today()
    with db.read() as s:
        route = _routing(s, start, end)
        return SpendPage(_summary(s, route, start, end, tier2_model=tier2_model, prices=prices, today=today),
                         reports.demo_calls(s), _spend(s, start, end, by), route, _latency(s, start, end),
                         _month_cumulative(s, today), _estimates(s, start, end))


def spend(db: Database, start: date | None = None, end: date | None = None, by: str = "day") -> list[SpendLine]:
    """Exact spend per day (or ISO week), model and tier, from the daily rollup."""
    with db.read() as s:
        return _spend(s, start, end, by)


def _spend(s: Session, start: date | None, end: date | None, by: str) -> list[SpendLine]:
    if by == "week":
        return [WeekLine(**w, period=w["week"], series=_series(w)) for w in reports.spend_by_week(s, start, end)]
    return [DayLine(**d, period=d["day"], series=_series(d)) for d in reports.spend_by_day(s, start, end)]


def _series(r: reports.SpendRow) -> str:
    return f"{r['model']} (tier {r['tier']})"




def _routing(s: Session, start: date, end: date) -> list[RoutingLine]:
    return [RoutingLine(**r, escalation_rate=r["tier2_tickets"] / r["tier1_tickets"] if r["tier1_tickets"] else None,
                        cost_per_ticket=r["production_cost_usd"] / r["tickets"] if r["tickets"] else None)
            for r in reports.routing_by_day(s, start, end)]




def _latency(s: Session, start: date, end: date) -> list[LatencyLine]:
    by_model: dict[str, list[tuple[int, int]]] = {}
    for model, bucket, n in reports.latency_histogram(s, start, end):
        by_model.setdefault(model, []).append((bucket, n))
    return [LatencyLine(model=m, calls=sum(n for _, n in h), p50_ms=percentile(h, 0.50), p95_ms=percentile(h, 0.95))
            for m, h in sorted(by_model.items())]


def percentile(histogram: list[tuple[int, int]], q: float) -> float:
    """The q-quantile of the values counted in (bucket, count) pairs (buckets ascending), with the same rank
    interpolation as over the raw values; within a bucket, its values are taken as evenly spread."""
    n = sum(c for _, c in histogram)
    if not n:
        return 0.0
    k = (n - 1) * q
    lo, hi = int(k), min(int(k) + 1, n - 1)
    a, b = _value_at(histogram, lo), _value_at(histogram, hi)
    return a + (b - a) * (k - lo)


def _value_at(histogram: list[tuple[int, int]], rank: int) -> float:
    before = 0
    for bucket, count in histogram:
        if rank < before + count:
            return bucket + (rollups.bucket_width(bucket) - 1) * (rank - before + 0.5) / count
        before += count
    raise IndexError(rank)




def _summary(s: Session, route: list[RoutingLine], start: date, end: date, *, tier2_model: str,
             prices: PriceTable | None, today: date) -> Summary:
    prices = prices or PriceTable.default()
    total = from_pico(reports.total_cost_pico(s, start, end))
    t = reports.tier1_tokens_and_direct_tier2(s, start, end)
    mtd = from_pico(reports.total_cost_pico(s, today.replace(day=1), today))
    last7 = from_pico(reports.total_cost_pico(s, today - timedelta(days=6), today))
    tickets = sum(r["tickets"] for r in route)  # production tickets: a pilot's and an eval's apart (db.rollups)
    production = sum((r["production_cost_usd"] for r in route), Decimal(0))
    tier1 = sum(r["tier1_tickets"] for r in route)
    tier2 = sum(r["tier2_tickets"] for r in route)
    try:
        alone = prices.cost(tier2_model, Usage(t["input_tokens"], t["output_tokens"]), end) + \
            from_pico(t["direct_tier2_pico"])
    except UnknownModel:
        alone = None
    days_left = calendar.monthrange(today.year, today.month)[1] - today.day
    return Summary(
        spend=total, tickets=tickets, cost_per_ticket=production / tickets if tickets else None,
        escalation_rate=tier2 / tier1 if tier1 else None, sonnet_alone=alone,
        saving=(alone - total) if alone is not None and tickets else None,
        month_to_date=mtd, month_projection=mtd + last7 / 7 * days_left,
    )


def estimates(db: Database, start: date | None = None, end: date | None = None) -> Estimates:
    with db.read() as s:
        return _estimates(s, start, end)


def _estimates(s: Session, start: date | None, end: date | None) -> Estimates:
    e = ledger.estimates(s, start, end)
    return Estimates(e.interrupted_calls, from_pico(e.interrupted_pico), e.unknown_cost_calls,
                     from_pico(e.unknown_cost_pico), from_pico(pilots.spend(s, start, end)))


def _month_cumulative(s: Session, today: date) -> list[MonthPoint]:
    rows = _spend(s, today.replace(day=1), today, "day")
    per_day: dict[str, Decimal] = {}
    for r in rows:
        per_day[r["period"]] = per_day.get(r["period"], Decimal(0)) + r["cost_usd"]
    out: list[MonthPoint] = []
    running = Decimal(0)
    d = today.replace(day=1)
    while d <= today:
        running += per_day.get(d.isoformat(), Decimal(0))
        out.append(MonthPoint(day=d.isoformat(), cumulative_usd=running))
        d += timedelta(days=1)
    return out
