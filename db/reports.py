"""Aggregates for the spend and routing views, computed in SQL (never by loading tables into pandas)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, case, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from db.models import ModelCall, SpendDaily, Ticket
from triage.domain import from_pico


def _day_bounds(q: Select, start: date | None, end: date | None) -> Select:
    if start is not None:
        q = q.where(ModelCall.created_at >= datetime.combine(start, datetime.min.time(), UTC))
    if end is not None:
        q = q.where(ModelCall.created_at < datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC))
    return q


def _day(s: Session):
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", ModelCall.created_at), "YYYY-MM-DD")
    return func.substr(ModelCall.created_at, 1, 10)  # SQLite stores ISO text: the first 10 chars are the day


def spend_by_day(s: Session, start: date | None = None, end: date | None = None) -> list[dict]:
    """Calls, tokens and exact cost per UTC day, model and tier (from the daily rollup)."""
    q = select(SpendDaily).order_by(SpendDaily.day, SpendDaily.model, SpendDaily.tier)
    if start is not None:
        q = q.where(SpendDaily.day >= start.isoformat())
    if end is not None:
        q = q.where(SpendDaily.day <= end.isoformat())
    return [
        {"day": r.day, "model": r.model, "tier": r.tier, "calls": r.calls, "input_tokens": int(r.input_tokens),
         "output_tokens": int(r.output_tokens), "cost_usd": from_pico(r.cost_pico)}
        for r in s.scalars(q)
    ]


def spend_by_day_from_calls(s: Session) -> list[dict]:
    """The same figures straight from model_calls (slow on big tables: for checks and rebuilds)."""
    day = _day(s).label("day")
    q = select(
        day, ModelCall.model, ModelCall.tier, func.count().label("calls"),
        func.sum(ModelCall.input_tokens).label("input_tokens"),
        func.sum(ModelCall.output_tokens).label("output_tokens"),
        func.sum(ModelCall.cache_read_tokens + ModelCall.cache_write_5m_tokens + ModelCall.cache_write_1h_tokens)
        .label("cache_tokens"),
        func.sum(ModelCall.cost_pico).label("cost_pico"),
    ).group_by(day, ModelCall.model, ModelCall.tier).order_by(day, ModelCall.model, ModelCall.tier)
    return [{"day": str(r.day), "model": r.model, "tier": r.tier, "calls": r.calls,
             "input_tokens": int(r.input_tokens or 0), "output_tokens": int(r.output_tokens or 0),
             "cache_tokens": int(r.cache_tokens or 0), "cost_pico": int(r.cost_pico or 0)}
            for r in s.execute(q)]


def rebuild_spend_daily(s: Session) -> int:
    """Recompute the rollup from model_calls (after bulk loads or to audit it)."""
    rows = spend_by_day_from_calls(s)
    s.execute(delete(SpendDaily))
    if rows:
        s.execute(insert(SpendDaily), rows)
    return len(rows)


def spend_by_week(s: Session, start: date | None = None, end: date | None = None) -> list[dict]:
    """The daily rows folded into ISO weeks (Monday first)."""
    weeks: dict[tuple, dict] = {}
    for r in spend_by_day(s, start, end):
        d = date.fromisoformat(r["day"])
        monday = (d - timedelta(days=d.weekday())).isoformat()
        key = (monday, r["model"], r["tier"])
        w = weeks.setdefault(key, {"week": monday, "model": r["model"], "tier": r["tier"], "calls": 0,
                                   "input_tokens": 0, "output_tokens": 0, "cost_usd": from_pico(0)})
        for k in ("calls", "input_tokens", "output_tokens", "cost_usd"):
            w[k] += r[k]
    return sorted(weeks.values(), key=lambda w: (w["week"], w["model"]))


def status_counts(s: Session) -> dict[str, int]:
    """Tickets per state, plus corrected and total."""
    rows = s.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
    counts = {status: n for status, n in rows}
    counts["total"] = sum(n for _, n in rows)
    counts["corrected"] = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.corrected.is_(True))) or 0
    return counts


def total_cost_pico(s: Session, start: date | None = None, end: date | None = None) -> int:
    q = select(func.coalesce(func.sum(SpendDaily.cost_pico), 0))
    if start is not None:
        q = q.where(SpendDaily.day >= start.isoformat())
    if end is not None:
        q = q.where(SpendDaily.day <= end.isoformat())
    return int(s.scalar(q) or 0)


def routing_by_day(s: Session, start: date | None = None, end: date | None = None) -> list[dict]:
    """Per day: tickets touched by tier 1, how many went to tier 2, and what was spent."""
    day = _day(s).label("day")
    q = select(
        day,
        func.count(func.distinct(case((ModelCall.tier == 1, ModelCall.ticket_id)))).label("tier1_tickets"),
        func.count(func.distinct(case((ModelCall.tier == 2, ModelCall.ticket_id)))).label("tier2_tickets"),
        func.count(func.distinct(ModelCall.ticket_id)).label("tickets"),
        func.sum(ModelCall.cost_pico).label("cost_pico"),
    ).group_by(day).order_by(day)
    return [{"day": str(r.day), "tickets": r.tickets, "tier1_tickets": r.tier1_tickets,
             "tier2_tickets": r.tier2_tickets, "cost_usd": from_pico(r.cost_pico)}
            for r in s.execute(_day_bounds(q, start, end))]


def latencies(s: Session, start: date | None = None, end: date | None = None, limit: int = 200_000) -> list[tuple]:
    """(day, model, latency_ms) of answered calls, newest first, for percentiles (bounded)."""
    day = _day(s).label("day")
    q = select(day, ModelCall.model, ModelCall.latency_ms).where(
        ModelCall.outcome != "error", or_(ModelCall.service_tier.is_(None), ModelCall.service_tier != "batch"))
    q = _day_bounds(q, start, end).order_by(ModelCall.created_at.desc()).limit(limit)
    return [tuple(r) for r in s.execute(q)]


def tier1_tokens_and_direct_tier2(s: Session, start: date | None = None, end: date | None = None) -> dict:
    """Inputs for 'what would Sonnet alone have cost': tier-1 token totals, and the cost of tier-2 calls on
    tickets tier 1 never saw (those would cost the same)."""
    t1 = _day_bounds(select(func.coalesce(func.sum(ModelCall.input_tokens), 0),
                            func.coalesce(func.sum(ModelCall.output_tokens), 0),
                            func.count(func.distinct(ModelCall.ticket_id)))
                     .where(ModelCall.tier == 1, ModelCall.outcome != "error"), start, end)
    inp, out, tickets = s.execute(t1).one()
    seen_by_t1 = select(ModelCall.ticket_id).where(ModelCall.tier == 1)
    direct = _day_bounds(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                         .where(ModelCall.tier == 2, ModelCall.ticket_id.not_in(seen_by_t1)), start, end)
    return {"input_tokens": int(inp), "output_tokens": int(out), "tier1_tickets": int(tickets),
            "direct_tier2_pico": int(s.scalar(direct) or 0)}


def demo_calls(s: Session, prefix: str = "demo_") -> int:
    return int(s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.request_id.like(f"{prefix}%")))
               or 0)


def demo_cost(s: Session, prefix: str = "demo_"):
    return from_pico(s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                              .where(ModelCall.request_id.like(f"{prefix}%"))))
