"""Figures for the spend and routing views: exact money from the rollup, plus clearly-labelled estimates."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from db import ledger, reports
from db.engine import Database
from triage.domain import Usage, from_pico
from triage.errors import UnknownModel
from triage.pricing import PriceTable


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


def spend(db: Database, start: date | None = None, end: date | None = None, by: str = "day") -> list[dict]:
    """Exact spend per day (or ISO week), model and tier, from the daily rollup."""
    with db.read() as s:
        rows = reports.spend_by_week(s, start, end) if by == "week" else reports.spend_by_day(s, start, end)
    for r in rows:
        r["period"] = r.get("week") or r["day"]
        r["series"] = f"{r['model']} (tier {r['tier']})"
    return rows


def routing(db: Database, start: date, end: date) -> list[dict]:
    with db.read() as s:
        rows = reports.routing_by_day(s, start, end)
    for r in rows:
        r["escalation_rate"] = r["tier2_tickets"] / r["tier1_tickets"] if r["tier1_tickets"] else None
        r["cost_per_ticket"] = r["cost_usd"] / r["tickets"] if r["tickets"] else None
    return rows


def latency_percentiles(db: Database, start: date, end: date) -> list[dict]:
    with db.read() as s:
        rows = reports.latencies(s, start, end)
    by_model: dict[str, list[int]] = {}
    for _day, model, ms in rows:
        by_model.setdefault(model, []).append(ms)
    return [{"model": m, "calls": len(v), "p50_ms": _pct(v, 0.50), "p95_ms": _pct(v, 0.95)}
            for m, v in sorted(by_model.items())]


def _pct(values: list[int], q: float) -> float:
    v = sorted(values)
    if not v:
        return 0.0
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(db: Database, start: date, end: date, *, tier2_model: str, prices: PriceTable | None = None,
            today: date | None = None) -> Summary:
    prices = prices or PriceTable.default()
    today = today or date.today()
    route = routing(db, start, end)
    with db.read() as s:
        total = from_pico(reports.total_cost_pico(s, start, end))
        t = reports.tier1_tokens_and_direct_tier2(s, start, end)
        month_start = today.replace(day=1)
        mtd = from_pico(reports.total_cost_pico(s, month_start, today))
        last7 = from_pico(reports.total_cost_pico(s, today - timedelta(days=6), today))
    tickets = sum(r["tickets"] for r in route)
    tier1 = sum(r["tier1_tickets"] for r in route)
    tier2 = sum(r["tier2_tickets"] for r in route)
    try:
        alone = prices.cost(tier2_model, Usage(t["input_tokens"], t["output_tokens"]), end) + \
            from_pico(t["direct_tier2_pico"])
    except UnknownModel:
        alone = None
    days_left = calendar.monthrange(today.year, today.month)[1] - today.day
    return Summary(
        spend=total, tickets=tickets, cost_per_ticket=total / tickets if tickets else None,
        escalation_rate=tier2 / tier1 if tier1 else None, sonnet_alone=alone,
        saving=(alone - total) if alone is not None and tickets else None,
        month_to_date=mtd, month_projection=mtd + last7 / 7 * days_left,
    )


@dataclass(frozen=True)
class Estimates:
    """What the exact spend leaves out: calls probably billed whose answer was lost (a process stopped or died
    with the request in flight), counted at their worst case, and answered calls the price table could not
    price."""

    interrupted_calls: int
    interrupted_usd: Decimal
    unknown_cost_calls: int

    @property
    def lines(self) -> list[str]:
        out = []
        if self.interrupted_calls:
            out.append(f"plus up to ${self.interrupted_usd:.6f} in {self.interrupted_calls} interrupted calls "
                       "(estimated: probably billed, answer lost)")
        if self.unknown_cost_calls:
            out.append(f"{self.unknown_cost_calls} calls with unknown cost (their model is not in the price table; "
                       "add it to price them)")
        return out


def estimates(db: Database, start: date | None = None, end: date | None = None) -> Estimates:
    with db.read() as s:
        e = ledger.estimates(s, start, end)
    return Estimates(e.interrupted_calls, from_pico(e.interrupted_pico), e.unknown_cost_calls)


def demo_calls(db: Database) -> int:
    with db.read() as s:
        return reports.demo_calls(s)


def month_cumulative(db: Database, today: date | None = None) -> list[dict]:
    """Spend per day of the current month, cumulative (for the projection chart)."""
    today = today or date.today()
    rows = spend(db, today.replace(day=1), today)
    per_day: dict[str, Decimal] = {}
    for r in rows:
        per_day[r["period"]] = per_day.get(r["period"], Decimal(0)) + r["cost_usd"]
    out, running = [], Decimal(0)
    d = today.replace(day=1)
    while d <= today:
        running += per_day.get(d.isoformat(), Decimal(0))
        out.append({"day": d.isoformat(), "cumulative_usd": running})
        d += timedelta(days=1)
    return out
