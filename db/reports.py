"""Aggregates for the spend and routing views: read from the per-day rollups (db.rollups), so a page costs what
its days cost. The `*_from_calls` functions compute the same figures straight from model_calls (slow on big
tables): they define what the rollups must equal, and `rebuild_rollups` rebuilds them with these."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from sqlalchemy import Select, and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from db import fewshot, paths, rollups
from db.models import (
    Base,
    CacheDaily,
    LabelledAnswer,
    LatencyDaily,
    ModelCall,
    RoutingDaily,
    Run,
    SpendDaily,
    Ticket,
)
from triage.domain import ERROR, PRODUCTION, from_pico

Sel = Select[*tuple[Any, ...]]


class SpendRow(TypedDict):
    """Calls, tokens and exact cost of one model and tier over a period."""

    model: str
    tier: int
    calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


class DaySpend(SpendRow):
    day: str  # UTC day, ISO


class WeekSpend(SpendRow):
    week: str  # the ISO week's Monday


class RoutingRow(TypedDict):
    """One UTC day: tickets with a call, with a tier-1 call, with a tier-2 call, what was spent, and the cost of
    tier-2 calls on tickets tier 1 never saw."""

    day: str
    tickets: int  # production tickets (db.rollups)
    tier1_tickets: int
    tier2_tickets: int
    cost_usd: Decimal  # everything spent that day, pilots' and evals' calls included (real money)
    direct_tier2_pico: int
    production_cost_usd: Decimal  # cost_usd less the calls of pilot and eval runs: what the tickets cost


class Tier2Inputs(TypedDict):
    """Inputs for 'what would Sonnet alone have cost'."""

    input_tokens: int
    output_tokens: int
    direct_tier2_pico: int


class SpendDailyRow(TypedDict):
    """A spend_daily row (`spend_by_day_from_calls`): one UTC day, model and tier."""

    day: str
    model: str
    tier: int
    calls: int
    requests: NotRequired[int]  # left out for migration 0007, which runs before 0015 added the column
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    cost_pico: int
    answered_input_tokens: int
    answered_output_tokens: int
    demo_calls: int
    demo_cost_pico: int


class RoutingDailyRow(TypedDict):
    """A routing_daily row (`routing_by_day_from_calls`), with the day's cost (`cost_pico`, not a column)."""

    day: str
    tickets: int
    tier1_tickets: int
    tier2_tickets: int
    cost_pico: int
    direct_tier2_pico: int


class LatencyDailyRow(TypedDict):
    day: str
    model: str
    bucket_ms: int
    calls: int


_day_bounds = rollups.within_days  # the calls of these UTC days


_day = rollups.day_sql


def spend_by_day(s: Session, start: date | None = None, end: date | None = None) -> list[DaySpend]:
    """Calls, tokens and exact cost per UTC day, model and tier (from the daily rollup)."""
    q = select(SpendDaily).order_by(SpendDaily.day, SpendDaily.model, SpendDaily.tier)
    if start is not None:
        q = q.where(SpendDaily.day >= start.isoformat())
    if end is not None:
        q = q.where(SpendDaily.day <= end.isoformat())
    return [
        DaySpend(day=r.day, model=r.model, tier=r.tier, calls=r.calls, requests=r.requests,
                 input_tokens=int(r.input_tokens), output_tokens=int(r.output_tokens), cost_usd=from_pico(r.cost_pico))
        for r in s.scalars(q)
    ]


def _days(q: Sel, col: InstrumentedAttribute[str], start: date | None, end: date | None) -> Sel:
    if start is not None:
        q = q.where(col >= start.isoformat())
    if end is not None:
        q = q.where(col <= end.isoformat())
    return q


def spend_by_day_from_calls(s: Session, start: date | None = None, end: date | None = None, *,
                            requests: bool = True) -> list[SpendDailyRow]:
    """The spend_daily rows, straight from model_calls. `requests=False`: without the request count (for
    migration 0007, which runs before migration 0015 added the columns it is counted from)."""
    day = _day(s).label("day")
    answered = ModelCall.outcome != ERROR
    demo = ModelCall.request_id.like(f"{rollups.DEMO_REQUEST_PREFIX}%")
    q = select(
        day, ModelCall.model, ModelCall.tier, func.count().label("calls"),
        *([func.sum(case((ModelCall.group_position == 1, 1), else_=0)).label("requests")] if requests else []),
        func.sum(ModelCall.input_tokens).label("input_tokens"),
        func.sum(ModelCall.output_tokens).label("output_tokens"),
        func.sum(ModelCall.cache_read_tokens + ModelCall.cache_write_5m_tokens + ModelCall.cache_write_1h_tokens)
        .label("cache_tokens"),
        func.sum(ModelCall.cost_pico).label("cost_pico"),
        func.sum(case((answered, ModelCall.input_tokens), else_=0)).label("answered_input_tokens"),
        func.sum(case((answered, ModelCall.output_tokens), else_=0)).label("answered_output_tokens"),
        func.sum(case((demo, 1), else_=0)).label("demo_calls"),
        func.sum(case((demo, ModelCall.cost_pico), else_=0)).label("demo_cost_pico"),
    ).group_by(day, ModelCall.model, ModelCall.tier).order_by(day, ModelCall.model, ModelCall.tier)
    out = []
    for r in s.execute(_day_bounds(q, start, end)):
        row = SpendDailyRow(day=str(r.day), model=r.model, tier=r.tier, calls=int(r.calls or 0),
                            input_tokens=int(r.input_tokens or 0), output_tokens=int(r.output_tokens or 0),
                            cache_tokens=int(r.cache_tokens or 0), cost_pico=int(r.cost_pico or 0),
                            answered_input_tokens=int(r.answered_input_tokens or 0),
                            answered_output_tokens=int(r.answered_output_tokens or 0),
                            demo_calls=int(r.demo_calls or 0), demo_cost_pico=int(r.demo_cost_pico or 0))
        if requests:
            row["requests"] = int(r.requests or 0)
        out.append(row)
    return out


def _production(q: Sel, apart: bool) -> Sel:
    """`q` (over model_calls) limited to calls on production tickets (db.rollups says why); `apart=False`: every
    call (migration 0007 rebuilds before 0025 added the purpose)."""
    if not apart:
        return q
    return q.join(Ticket, Ticket.id == ModelCall.ticket_id).where(Ticket.purpose == PRODUCTION)


def routing_by_day_from_calls(s: Session, start: date | None = None, end: date | None = None, *,
                              apart: bool = True) -> list[RoutingDailyRow]:
    """The routing_daily rows (plus each day's cost), straight from model_calls: per day, distinct production
    tickets with a call (any tier, tier 1, tier 2) and the cost of tier-2 calls on those with no tier-1 call at
    all. `apart=False`: every ticket (see `_production`)."""
    day = _day(s).label("day")
    per_ticket = _day_bounds(_production(select(
        day, ModelCall.ticket_id,
        func.max(case((ModelCall.tier == 1, 1), else_=0)).label("t1"),
        func.max(case((ModelCall.tier == 2, 1), else_=0)).label("t2"),
        func.sum(ModelCall.cost_pico).label("cost"),
        func.sum(case((ModelCall.tier == 2, ModelCall.cost_pico), else_=0)).label("t2_cost"),
    ), apart).group_by(day, ModelCall.ticket_id), start, end).subquery()
    other = aliased(ModelCall)
    no_tier1 = ~exists().where(other.ticket_id == per_ticket.c.ticket_id, other.tier == 1)
    q = select(
        per_ticket.c.day, func.count().label("tickets"), func.sum(per_ticket.c.t1).label("tier1_tickets"),
        func.sum(per_ticket.c.t2).label("tier2_tickets"), func.sum(per_ticket.c.cost).label("cost_pico"),
        func.sum(case((and_(per_ticket.c.t2 == 1, no_tier1), per_ticket.c.t2_cost), else_=0))
        .label("direct_tier2_pico"),
    ).group_by(per_ticket.c.day).order_by(per_ticket.c.day)
    return [RoutingDailyRow(day=str(r.day), tickets=int(r.tickets), tier1_tickets=int(r.tier1_tickets),
                            tier2_tickets=int(r.tier2_tickets), cost_pico=int(r.cost_pico or 0),
                            direct_tier2_pico=int(r.direct_tier2_pico or 0)) for r in s.execute(q)]


def latency_histogram_from_calls(s: Session, start: date | None = None, end: date | None = None, *,
                                 apart: bool = True) -> list[LatencyDailyRow]:
    """The latency_daily rows, straight from model_calls (calls on production tickets; `apart=False`: all)."""
    day = _day(s).label("day")
    bucket = rollups.latency_bucket_sql(ModelCall.latency_ms).label("bucket_ms")
    q = _day_bounds(_production(select(day, ModelCall.model, bucket, func.count().label("calls")), apart)
                    .where(ModelCall.outcome != ERROR,
                           or_(ModelCall.service_tier.is_(None), ModelCall.service_tier != rollups.BATCH))
                    .group_by(day, ModelCall.model, bucket), start, end).order_by(day, ModelCall.model, bucket)
    return [LatencyDailyRow(day=str(r.day), model=r.model, bucket_ms=int(r.bucket_ms), calls=int(r.calls))
            for r in s.execute(q)]


ROLLUPS = ("spend_daily", "routing_daily", "latency_daily", "cache_daily", "labelled_answers", "path_daily")


def rebuild_rollups(s: Session, *, only: Collection[str] = ROLLUPS, requests: bool = True,
                    apart: bool = True) -> dict[str, int]:
    """Recompute the rollups (`only` these, by table name) from model_calls (the migrations that added them, bulk
    loads, audits); returns the rows written per table. Bumps the data versions, so cached pages are recomputed.
    `requests=False`: spend_daily without request counts (migration 0007 runs before 0015 added them);
    `apart=False`: routing and latency of every ticket (0007 runs before 0025 gave tickets a purpose)."""
    unknown = set(only) - set(ROLLUPS)
    if unknown:
        raise ValueError(f"not a rollup: {', '.join(sorted(unknown))} (the rollups: {', '.join(ROLLUPS)})")
    out = {}
    build: dict[type[Base], Callable[[], Sequence[Mapping[str, object]]]] = {
        SpendDaily: lambda: spend_by_day_from_calls(s, requests=requests),
        RoutingDaily: lambda: [{k: v for k, v in r.items() if k != "cost_pico"}
                               for r in routing_by_day_from_calls(s, apart=apart)],
        LatencyDaily: lambda: latency_histogram_from_calls(s, apart=apart),
        CacheDaily: lambda: fewshot.cache_by_day_from_calls(s)}
    for table, rows_of in build.items():
        if table.__tablename__ in only:
            rows = rows_of()
            s.execute(delete(table))
            for i in range(0, len(rows), 10_000):
                s.execute(insert(table), rows[i:i + 10_000])
            out[table.__tablename__] = len(rows)
    if "labelled_answers" in only:
        s.execute(delete(LabelledAnswer))
        s.execute(insert(LabelledAnswer).from_select(rollups.ANSWER_COLUMNS, rollups.latest_answers()))
        out["labelled_answers"] = int(s.scalar(select(func.count()).select_from(LabelledAnswer)) or 0)
    if "path_daily" in only:
        out["path_daily"] = paths.rebuild(s)
    for name in (rollups.REBUILDS, rollups.LABELS):
        rollups.bump_version(s, name)
    return out


def spend_by_week(s: Session, start: date | None = None, end: date | None = None) -> list[WeekSpend]:
    """The daily rows folded into ISO weeks (Monday first)."""
    weeks: dict[tuple[str, str, int], WeekSpend] = {}
    for r in spend_by_day(s, start, end):
        d = date.fromisoformat(r["day"])
        monday = (d - timedelta(days=d.weekday())).isoformat()
        key = (monday, r["model"], r["tier"])
        w = weeks.setdefault(key, WeekSpend(week=monday, model=r["model"], tier=r["tier"], calls=0, requests=0,
                                            input_tokens=0, output_tokens=0, cost_usd=from_pico(0)))
        w["calls"] += r["calls"]
        w["requests"] += r["requests"]
        w["input_tokens"] += r["input_tokens"]
        w["output_tokens"] += r["output_tokens"]
        w["cost_usd"] += r["cost_usd"]
    return sorted(weeks.values(), key=lambda w: (w["week"], w["model"]))


def status_counts(s: Session) -> dict[str, int]:
    """Tickets per state, plus corrected and total."""
    rows = s.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
    counts = {status: n for status, n in rows}
    counts["total"] = sum(n for _, n in rows)
    counts["corrected"] = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.corrected.is_(True))) or 0
    return counts


def has_tickets(s: Session) -> bool:
    """Whether any ticket exists (one index probe, where status_counts scans every ticket)."""
    return bool(s.scalar(select(exists().where(Ticket.id.is_not(None)))))


def total_cost_pico(s: Session, start: date | None = None, end: date | None = None) -> int:
    q = select(func.coalesce(func.sum(SpendDaily.cost_pico), 0))
    if start is not None:
        q = q.where(SpendDaily.day >= start.isoformat())
    if end is not None:
        q = q.where(SpendDaily.day <= end.isoformat())
    return int(s.scalar(q) or 0)


def routing_by_day(s: Session, start: date | None = None, end: date | None = None) -> list[RoutingRow]:
    """Per day: tickets with a call that day, those with a tier-1 and a tier-2 call, and what was spent."""
    cost: dict[str, int] = {day: int(pico or 0) for day, pico in s.execute(
        _days(select(SpendDaily.day, func.sum(SpendDaily.cost_pico)), SpendDaily.day, start, end)
        .group_by(SpendDaily.day))}
    apart = apart_cost_by_day(s, start, end)
    q = _days(select(RoutingDaily), RoutingDaily.day, start, end).order_by(RoutingDaily.day)
    return [RoutingRow(day=r.day, tickets=r.tickets, tier1_tickets=r.tier1_tickets, tier2_tickets=r.tier2_tickets,
                       cost_usd=from_pico(cost.get(r.day, 0)), direct_tier2_pico=int(r.direct_tier2_pico),
                       production_cost_usd=from_pico(cost.get(r.day, 0) - apart.get(r.day, 0)))
            for r in s.scalars(q) if r.tickets]


def apart_cost_by_day(s: Session, start: date | None = None, end: date | None = None) -> dict[str, int]:
    """Per UTC day, what the calls of pilot and eval runs cost (pico-dollars): spend that is not the traffic's,
    taken out of the cost per ticket (as db.pilots.spend, a walk of those runs' calls only: ix_model_calls_run_id)."""
    day = _day(s).label("day")
    apart_runs = select(Run.id).where(Run.purpose != PRODUCTION)
    q = _day_bounds(select(day, func.sum(ModelCall.cost_pico)).where(ModelCall.run_id.in_(apart_runs))
                    .group_by(day), start, end)
    return {str(d): int(c or 0) for d, c in s.execute(q)}


def latency_histogram(s: Session, start: date | None = None, end: date | None = None) -> list[tuple[str, int, int]]:
    """(model, bucket_ms, calls) over the days, in model and bucket order: answered live calls."""
    q = _days(select(LatencyDaily.model, LatencyDaily.bucket_ms, func.sum(LatencyDaily.calls)), LatencyDaily.day,
              start, end).group_by(LatencyDaily.model, LatencyDaily.bucket_ms)
    return [(m, int(b), int(n)) for m, b, n in s.execute(q.order_by(LatencyDaily.model, LatencyDaily.bucket_ms))]


def tier1_tokens_and_direct_tier2(s: Session, start: date | None = None, end: date | None = None) -> Tier2Inputs:
    """Inputs for 'what would Sonnet alone have cost': tokens of answered tier-1 calls, and the cost of tier-2
    calls on tickets tier 1 never saw (those would cost the same)."""
    inp, out = s.execute(_days(select(func.coalesce(func.sum(SpendDaily.answered_input_tokens), 0),
                                      func.coalesce(func.sum(SpendDaily.answered_output_tokens), 0))
                               .where(SpendDaily.tier == 1), SpendDaily.day, start, end)).one()
    direct = s.scalar(_days(select(func.coalesce(func.sum(RoutingDaily.direct_tier2_pico), 0)), RoutingDaily.day,
                            start, end))
    return Tier2Inputs(input_tokens=int(inp), output_tokens=int(out), direct_tier2_pico=int(direct or 0))


def demo_calls(s: Session) -> int:
    """Simulated calls written by `triage demo` (request id demo_...), over the whole history."""
    return int(s.scalar(select(func.coalesce(func.sum(SpendDaily.demo_calls), 0))) or 0)


def demo_cost(s: Session) -> Decimal:
    return from_pico(s.scalar(select(func.coalesce(func.sum(SpendDaily.demo_cost_pico), 0))))


def demo_calls_from_calls(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(ModelCall)
                        .where(ModelCall.request_id.like(f"{rollups.DEMO_REQUEST_PREFIX}%"))) or 0)
