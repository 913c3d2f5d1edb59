"""Every rollup-backed figure equals the same figure computed from the raw tables, on random histories.

The reference is the raw-scan code the Spend page ran before the rollups (kept here verbatim, `old_*`), so a
pass also means no figure changed meaning. Histories go through the real write paths (record_call,
apply_outcome, corrections) with calls, retries, escalations, direct tier-2 calls later seen by tier 1,
errors, batch calls, demo calls, operator labels, several calls per transaction, out-of-order times and times
at the UTC day boundary given in other time zones. Seeded, so a failure names the history that broke."""

from __future__ import annotations

import calendar
import json
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import numpy as np
import pytest
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from db import audit_sample, queue, reports, review, rollups
from db import calls as db_calls
from db import fewshot as db_fewshot
from db import quality as db_quality
from db.engine import Database
from db.models import CacheDaily, LabelledAnswer, LatencyDaily, ModelCall, RoutingDaily, SpendDaily, Ticket
from tests.support import oracles
from tests.support.actors import LEAD
from triage import demo, taxonomy
from triage.domain import ERROR, ESCALATED, OK, UNPARSED, CallResult, Outcome, Usage, from_pico, to_pico
from triage.errors import UnknownModel
from triage.quality import calibrate
from triage.quality import measure as quality
from triage.routing.calibration import Calibration, bin_of, ece
from triage.settings import Settings
from triage.spend import fewshot as spend_fewshot
from triage.spend import reports as reporting
from triage.spend.pricing import PriceTable

TAX = taxonomy.default()
TIER2 = "claude-sonnet-5-5"
MODELS = {0: ["local-minilm"], 1: ["claude-haiku-5-5", "claude-haiku-4-5"], 2: [TIER2]}
FIRST_DAY = date(2026, 11, 27)
ZONES = [UTC, UTC, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
PERCENTILES: tuple[tuple[float, Literal["p50_ms", "p95_ms"]], ...] = ((0.5, "p50_ms"), (0.95, "p95_ms"))


# --- the old raw-scan figures (the code the Spend page ran before the rollups) ---------------------------------


def old_routing_by_day(s: Session, start: date | None, end: date | None) -> list[dict[str, Any]]:
    day = reports._day(s).label("day")
    q = select(
        day,
        func.count(func.distinct(case((ModelCall.tier == 1, ModelCall.ticket_id)))).label("tier1_tickets"),
        func.count(func.distinct(case((ModelCall.tier == 2, ModelCall.ticket_id)))).label("tier2_tickets"),
        func.count(func.distinct(ModelCall.ticket_id)).label("tickets"),
        func.sum(ModelCall.cost_pico).label("cost_pico"),
    ).group_by(day).order_by(day)
    return [{"day": str(r.day), "tickets": r.tickets, "tier1_tickets": r.tier1_tickets,
             "tier2_tickets": r.tier2_tickets, "cost_usd": from_pico(r.cost_pico)}
            for r in s.execute(reports._day_bounds(q, start, end))]


def old_routing(s: Session, start: date | None, end: date | None) -> list[dict[str, Any]]:
    rows = old_routing_by_day(s, start, end)
    for r in rows:
        r["escalation_rate"] = r["tier2_tickets"] / r["tier1_tickets"] if r["tier1_tickets"] else None
        r["cost_per_ticket"] = r["cost_usd"] / r["tickets"] if r["tickets"] else None
    return rows


def old_total_cost_pico(s: Session, start: date | None, end: date | None) -> int:
    q = reports._day_bounds(select(func.coalesce(func.sum(ModelCall.cost_pico), 0)), start, end)
    return int(s.execute(q).scalar_one())


def old_latencies(s: Session, start: date | None, end: date | None) -> dict[str, list[int]]:
    q = select(ModelCall.model, ModelCall.latency_ms).where(
        ModelCall.outcome != "error", or_(ModelCall.service_tier.is_(None), ModelCall.service_tier != "batch"))
    by_model: dict[str, list[int]] = {}
    for model, ms in s.execute(reports._day_bounds(q, start, end)):
        by_model.setdefault(model, []).append(ms)
    return by_model


def old_pct(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def old_summary(s: Session, start: date, end: date, today: date) -> reporting.Summary:
    prices = PriceTable.default()
    route = old_routing(s, start, end)
    total = from_pico(old_total_cost_pico(s, start, end))
    t = oracles.tier1_tokens_and_direct_tier2_from_calls(s, start, end)
    mtd = from_pico(old_total_cost_pico(s, today.replace(day=1), today))
    last7 = from_pico(old_total_cost_pico(s, today - timedelta(days=6), today))
    tickets = sum(r["tickets"] for r in route)
    tier1 = sum(r["tier1_tickets"] for r in route)
    tier2 = sum(r["tier2_tickets"] for r in route)
    try:
        alone = prices.cost(TIER2, Usage(t["input_tokens"], t["output_tokens"]), end) + \
            from_pico(t["direct_tier2_pico"])
    except UnknownModel:
        alone = None
    days_left = calendar.monthrange(today.year, today.month)[1] - today.day
    return reporting.Summary(
        spend=total, tickets=tickets, cost_per_ticket=total / tickets if tickets else None,
        escalation_rate=tier2 / tier1 if tier1 else None, sonnet_alone=alone,
        saving=(alone - total) if alone is not None and tickets else None,
        month_to_date=mtd, month_projection=mtd + last7 / 7 * days_left)


def old_demo_calls(s: Session) -> int:
    q = select(func.count()).select_from(ModelCall).where(ModelCall.request_id.like("demo_%"))
    return int(s.execute(q).scalar_one())


def old_month_cumulative(s: Session, today: date) -> list[dict[str, Any]]:
    per_day: dict[str, Decimal] = {}
    for r in reports.spend_by_day_from_calls(s, today.replace(day=1), today):
        per_day[r["day"]] = per_day.get(r["day"], Decimal(0)) + from_pico(r["cost_pico"])
    out, running, d = [], Decimal(0), today.replace(day=1)
    while d <= today:
        running += per_day.get(d.isoformat(), Decimal(0))
        out.append({"day": d.isoformat(), "cumulative_usd": running})
        d += timedelta(days=1)
    return out


def old_quality(rows: Sequence[Any], bins: int = 10,
                maps: dict[str, Calibration] | None = None) -> quality.Quality:
    """triage.quality.measure.measure as it was, on the raw labelled calls (the page's numbers before the rollup)."""
    tickets: dict[int, dict[int, dict[str, Any]]] = {}
    for r in rows:
        tickets.setdefault(r["ticket_id"], {})[r["tier"]] = r
    per_tier: list[Any] = []  # the old shapes: fewer keys than measure's typed rows have now
    reliability: list[Any] = []
    for tier in (0, 1, 2):
        answers = [t[tier] for t in tickets.values() if tier in t and t[tier]["label"] is not None]
        if not answers:
            continue
        conf = np.array([a["confidence"] or 0.0 for a in answers])
        correct = np.array([a["label"] == a["truth"] for a in answers])
        per_tier.append({"tier": tier, "name": quality.TIER_NAME[tier], "n": len(answers),
                         "accuracy": float(correct.mean()), "ece": ece(conf, correct),
                         "mean_confidence": float(conf.mean())})
        which = bin_of(conf, bins)  # the one binning of ECE and the chart (it put 0.7 into 0.6-0.7 before)
        for b in range(bins):
            m = which == b
            if m.any():
                reliability.append({"tier": tier, "name": quality.TIER_NAME[tier], "bin_mid": (b + 0.5) / bins,
                                    "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean()),
                                    "n": int(m.sum())})
    both = [t for t in tickets.values() if 1 in t and 2 in t and t[1]["label"] and t[2]["label"]]
    flipped = [t for t in both if t[1]["label"] != t[2]["label"]]
    flips: Any = {"escalated": len(both), "flipped": len(flipped),
             "sonnet_right": sum(t[2]["label"] == t[2]["truth"] for t in flipped),
             "haiku_right": sum(t[1]["label"] == t[1]["truth"] for t in flipped)}
    return quality.Quality(len(tickets), per_tier, reliability, flips, old_whatif(tickets, maps or {}))


def old_whatif(tickets: dict[int, dict[int, dict[str, Any]]], maps: dict[str, Calibration]
               ) -> list[Any]:
    haiku = [t for t in tickets.values() if 1 in t and t[1]["label"] is not None]
    if not haiku:
        return []
    sonnet_costs = [from_pico(t[2]["cost_pico"]) for t in tickets.values() if 2 in t]
    avg_sonnet = sum(sonnet_costs, Decimal(0)) / len(sonnet_costs) if sonnet_costs else None
    out = []

    def conf(x: dict[int, dict[str, Any]]) -> float:  # unusable answers (unknown label) always escalate, as the
        # router does; calibrated where a map is in force for the answer's model (the demo fits one for Haiku)
        if x[1]["outcome"] != "ok":
            return -1.0
        cal = maps.get(x[1]["model"])
        return (cal.apply(x[1]["confidence"]) if cal and x[1]["confidence"] is not None else x[1]["confidence"]) or 0.0

    def conf2(x: dict[int, dict[str, Any]]) -> float:  # Sonnet's answer, by the same rule; no answer never settles
        if 2 not in x or x[2]["outcome"] != "ok":
            return -1.0
        cal = maps.get(x[2]["model"])
        return (cal.apply(x[2]["confidence"]) if cal and x[2]["confidence"] is not None else x[2]["confidence"]) or 0.0

    for t in [round(0.05 * i, 2) for i in range(20)]:  # 0.00 (never escalate) to 0.95
        escalate = [x for x in haiku if conf(x) < t]
        # settled without review: Haiku sure enough, or escalated and Sonnet sure enough
        settled = [x for x in haiku if conf(x) >= t or (2 in x and conf2(x) >= t)]
        settled_right = sum((x[1] if conf(x) >= t else x[2])["label"] == x[1]["truth"] for x in settled)
        answered = [x for x in haiku if conf(x) >= t or 2 in x]
        right = sum((x[2] if conf(x) < t and 2 in x else x[1])["label"] == x[1]["truth"]
                    for x in answered)
        haiku_cost = sum((from_pico(x[1]["cost_pico"]) for x in haiku), Decimal(0)) / len(haiku)
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * len(escalate) / len(haiku)  # (the crash fixed)
        out.append({"threshold": t, "escalation_rate": len(escalate) / len(haiku),
                    "accuracy": right / len(answered) if answered else None, "replayed": len(answered),
                    "cost_per_ticket": cost if avg_sonnet is not None or not escalate else None,
                    "review_rate": (len(answered) - len(settled)) / len(answered) if answered else None,
                    "settled_accuracy": settled_right / len(settled) if settled else None,
                    "settled": len(settled), "settled_right": settled_right})
    return out


def raw_fewshot_spend(s: Session, start: date, end: date, prices: PriceTable) -> spend_fewshot.FewShotSpend:
    """The Spend page's few-shot and cache figures call by call, in Python: each call priced by its own prompt's
    band, service tier and geo on its own day (no query or grouping shared with the code under test)."""
    lo = datetime.combine(start, datetime.min.time(), UTC)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    out = spend_fewshot.FewShotSpend()
    shots: dict[str, list[tuple[ModelCall, int]]] = {}
    plain: dict[str, list[tuple[ModelCall, int]]] = {}
    for c in s.scalars(select(ModelCall).order_by(ModelCall.id)):
        when = rollups.as_utc(c.created_at)
        if not lo <= when < hi:
            continue
        prompt = c.input_tokens + c.cache_write_5m_tokens + c.cache_write_1h_tokens + c.cache_read_tokens
        if c.tier == 1:
            (shots if c.examples is not None else plain).setdefault(c.model, []).append((c, prompt))
        writes = c.cache_write_5m_tokens + c.cache_write_1h_tokens
        if not writes and not c.cache_read_tokens:
            continue
        try:
            band = prices.entry(c.model, when.date()).band_for(prompt)
        except UnknownModel:
            out.unpriced_calls += 1
            continue
        scale = (prices.batch_multiplier if c.service_tier == "batch" else Decimal(1)) * \
            prices.geo_multipliers.get(c.inference_geo or "", Decimal(1))
        mtok = Decimal(1_000_000)
        out.read_tokens += c.cache_read_tokens
        out.read_cost += c.cache_read_tokens * band.cache_read / mtok * scale
        out.read_at_input += c.cache_read_tokens * band.input / mtok * scale
        out.write_tokens += writes
        out.write_cost += (c.cache_write_5m_tokens * band.cache_write_5m
                           + c.cache_write_1h_tokens * band.cache_write_1h) / mtok * scale
        out.write_at_input += writes * band.input / mtok * scale
    for model in sorted(shots):
        with_, without = shots[model], plain.get(model, [])
        out.examples.append(spend_fewshot.ExamplesCost(
            model, len(with_), sum(c.examples or 0 for c, _ in with_), sum(p for _, p in with_),
            from_pico(sum(c.cost_pico for c, _ in with_)), len(without), sum(p for _, p in without),
            from_pico(sum(c.cost_pico for c, _ in without))))
    return out


def _odd_bands() -> PriceTable:
    """The default table with Haiku's band limit off the thousands (99,280 tokens): the page reads the calls."""
    data = json.loads(resources.files("triage.config").joinpath("prices.json").read_text(encoding="utf-8"))
    for entry in data["models"]["claude-haiku-5-5"]:
        for band in entry["bands"]:
            if band["max_prompt_tokens"]:
                band["max_prompt_tokens"] = 99_280
    return PriceTable(data)


PRICE_TABLES = [PriceTable.default(), _odd_bands()]


# --- random histories ------------------------------------------------------------------------------------------

def random_time(rnd: random.Random, first: date, days: int) -> datetime:
    """A call time, often a microsecond either side of a UTC midnight, sometimes written in another zone."""
    d = first + timedelta(days=rnd.randrange(days))
    base = datetime(d.year, d.month, d.day, tzinfo=UTC)
    when = rnd.choice([base, base + timedelta(microseconds=1), base - timedelta(microseconds=1),
                       base + timedelta(hours=rnd.uniform(0, 24)), base + timedelta(days=1, microseconds=-1)])
    return when.astimezone(rnd.choice(ZONES))


def random_latency(rnd: random.Random) -> int:
    return rnd.choice([0, 1, 99, 100, 101, 999, 1000, 1999, 60_000, 2_000_000_000, rnd.randrange(5, 120),
                       rnd.randrange(150, 3000), rnd.randrange(150, 3000), int(rnd.lognormvariate(6.5, 0.6))])


def random_call(rnd: random.Random, tier: int, first: date, days: int, *, outcome: str | None = None) -> CallResult:
    outcome = outcome or rnd.choice([OK, OK, OK, OK, ERROR, UNPARSED])
    answered = outcome != ERROR
    inp = rnd.randrange(0, 5000) if answered or rnd.random() < 0.2 else 0
    cache = {"cache_write_5m_tokens": rnd.choice([0, 0, 0, 600]),
             "cache_write_1h_tokens": rnd.choice([0, 0, 0, 0, 120]), "cache_read_tokens": rnd.choice([0, 0, 120])}
    if rnd.random() < 0.15:  # whole prompts on and either side of a band limit (100,000; 99,280 in _odd_bands)
        inp = rnd.choice([99_000, 99_279, 99_280, 99_281, 99_999, 100_000, 100_001]) - sum(cache.values())
    usage = Usage(inp, rnd.randrange(0, 400), **cache, service_tier=rnd.choice([None, None, "standard", "batch"]),
                  inference_geo=rnd.choice([None, None, None, "us", "global"]))
    # any exact amount to the pico-dollar, including odd ones no price table would give
    cost = from_pico(0 if tier == 0 else rnd.choice([rnd.randrange(1, 10**10), 1, 7 * 10**9 + 3]))
    request_id = rnd.choice([None, f"req_{rnd.getrandbits(32):x}", f"demo_{rnd.getrandbits(32):x}"])
    category = rnd.choice(TAX.names) if outcome == OK else None
    return CallResult(tier, rnd.choice(MODELS[tier]), outcome, category=category,
                      confidence=rnd.random() if answered else None, usage=usage, cost_usd=cost,
                      latency_ms=random_latency(rnd), request_id=request_id, created_at=random_time(rnd, first, days),
                      error="boom" if not answered else None,
                      examples=rnd.choice([None, None, 2, 7]) if tier == 1 else None)


def play_history(db: Database, rnd: random.Random, *, tickets: int, events: int, first: date, days: int) -> list[int]:
    with db.transaction() as s:
        ids = queue.import_tickets(s, [(None, f"ticket {rnd.getrandbits(40)}") for _ in range(tickets)],
                                   source="t", run_id=None).ticket_ids
    for _ in range(events):
        kind = rnd.choices(["call", "escalation", "direct", "retry", "batch", "correct", "burst", "group"],
                           [5, 3, 2, 2, 1, 2, 1, 1])[0]
        tid = rnd.choice(ids)
        with db.transaction() as s:
            if kind == "call":
                db_calls.record_call(s, tid, None, random_call(rnd, rnd.choice([0, 1, 1, 2]), first, days))
            elif kind == "escalation":  # tier 1 unsure, then tier 2, maybe on the next day
                tier1 = random_call(rnd, 1, first, days, outcome=OK)
                tier2 = random_call(rnd, 2, first, days, outcome=OK)
                tier2.created_at = tier1.created_at + timedelta(seconds=rnd.choice([1, 3600, 86_400]))
                calls = [tier1, tier2]
                for c in calls:
                    db_calls.record_call(s, tid, None, c)
                db_calls.apply_outcome(s, tid, Outcome(status=ESCALATED, tier=2, category="billing", confidence=0.9,
                                                    escalated=True, calls=calls))
            elif kind == "direct":  # Sonnet first (tier sonnet); tier 1 may see the ticket later
                db_calls.record_call(s, tid, None, random_call(rnd, 2, first, days))
            elif kind == "retry":  # an API error, then the retry succeeds, often another day
                db_calls.record_call(s, tid, None, random_call(rnd, 1, first, days, outcome=ERROR))
                db_calls.record_call(s, tid, None, random_call(rnd, 1, first, days, outcome=OK))
            elif kind == "batch":
                c = random_call(rnd, 1, first, days, outcome=OK)
                c.usage = Usage(c.usage.input_tokens, c.usage.output_tokens, service_tier="batch")
                db_calls.record_call(s, tid, None, c)
            elif kind == "correct":
                t = s.get_one(Ticket, tid)
                review.correct(s, tid, rnd.choice(TAX.names), operator="op", expected_version=t.version)
            elif kind == "group":  # one request about several tickets: a row each (its share), counted once
                whole = random_call(rnd, rnd.choice([1, 2]), first, days)
                members = rnd.sample(ids, min(rnd.randint(2, 5), len(ids)))
                db_calls.record_calls(s, [(t, None, replace(whole, group_size=len(members), group_position=k))
                                       for k, t in enumerate(members, 1)])
            else:  # several tickets' calls in one transaction (the local tier and the demo write like this)
                for other in rnd.sample(ids, min(3, len(ids))):
                    db_calls.record_call(s, other, None, random_call(rnd, rnd.choice([0, 1, 2]), first, days))
    return ids


def rollup_tables(s: Session) -> dict[str, list[tuple[Any, ...]]]:
    return {t.__tablename__: sorted(tuple(getattr(r, c.key) for c in t.__table__.columns)
                                    for r in s.scalars(select(t)))
            for t in (SpendDaily, RoutingDaily, LatencyDaily, LabelledAnswer, CacheDaily)}


def ranges(rnd: random.Random, first: date, days: int, n: int = 4) -> list[tuple[date, date]]:
    out = [(first - timedelta(days=1), first + timedelta(days=days + 1))]
    for _ in range(n):
        a, b = sorted(first + timedelta(days=rnd.randrange(-1, days + 1)) for _ in range(2))
        out.append((a, b))
    return out


def assert_every_figure_matches_the_raw_tables(db: Database, rnd: random.Random, first: date, days: int) -> None:
    with db.read() as s:
        stored = rollup_tables(s)
        # the tables themselves: exactly what the raw queries give
        spend_keys = [c.key for c in SpendDaily.__table__.columns]
        assert stored["spend_daily"] == sorted(tuple(dict(r)[k] for k in spend_keys)
                                               for r in reports.spend_by_day_from_calls(s))
        routing_keys = [c.key for c in RoutingDaily.__table__.columns]
        assert [r for r in stored["routing_daily"] if r[1]] == sorted(
            tuple(dict(r)[k] for k in routing_keys) for r in reports.routing_by_day_from_calls(s))
        assert stored["latency_daily"] == sorted((r["day"], r["model"], r["bucket_ms"], r["calls"])
                                                 for r in reports.latency_histogram_from_calls(s))
        cache_keys = [c.key for c in CacheDaily.__table__.columns]
        assert stored["cache_daily"] == sorted(tuple(dict(r)[k] for k in cache_keys)
                                               for r in db_fewshot.cache_by_day_from_calls(s))
        answer_keys = [c.key for c in LabelledAnswer.__table__.columns]
        assert stored["labelled_answers"] == sorted(tuple(r[k] for k in answer_keys)
                                                    for r in oracles.labelled_answers_from_calls(s))
        old = old_quality(db_quality.labelled_calls(s), maps=calibrate.in_force(db))
        with pytest.MonkeyPatch.context() as m:  # the old code counted every label once: so does this comparison
            m.setattr(audit_sample, "weights", lambda s: {})  # (blind-audit weights: test_weighted_labels.py)
            new = quality.measure(db)  # per tier and model now; tickets, flips and the what-if replay are per tier
        assert new.n_tickets == old.n_tickets and new.flips == old.flips and new.whatif == old.whatif
        assert reports.demo_calls(s) == old_demo_calls(s)
        assert reports.demo_cost(s) == from_pico(s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                                                          .where(ModelCall.request_id.like("demo_%"))))
        assert rollups.calls_version(s)[0] == s.scalar(select(func.count()).select_from(ModelCall))
        # the page's figures, range by range, against the old raw-scan code
        for start, end in ranges(rnd, first, days):
            today = end
            page = reporting.spend_page(db, start, end, tier2_model=TIER2, today=today)
            assert page.summary == old_summary(s, start, end, today), (start, end)
            assert to_pico(page.summary.spend) == old_total_cost_pico(s, start, end)  # to the pico-dollar
            assert [{k: v for k, v in r.items() if k in old} for r, old in zip(page.routing, old_routing(s, start, end),
                                                            strict=True)] == old_routing(s, start, end)
            assert page.month == old_month_cumulative(s, today)
            assert page.demo_calls == old_demo_calls(s)
            # the few-shot and cache figures: from cache_daily, as from the calls (any band limits) to the digit
            for prices in PRICE_TABLES:
                assert spend_fewshot.measure(db, start, end, prices) == raw_fewshot_spend(s, start, end, prices), (
                    start, end, prices.models["claude-haiku-5-5"][0].bands[0].max_prompt_tokens)
            raw = old_latencies(s, start, end)
            assert [r["model"] for r in page.latency] == sorted(raw)
            for r in page.latency:
                values = sorted(raw[r["model"]])
                assert r["calls"] == len(values)
                for q, key in PERCENTILES:
                    k = (len(values) - 1) * q
                    near = (values[int(k)], values[min(int(k) + 1, len(values) - 1)])
                    slack = max(rollups.bucket_width(v) - 1 for v in near)  # the stated resolution
                    assert abs(r[key] - old_pct(values, q)) <= slack, (r, q, values)
                    if slack == 0:
                        assert r[key] == old_pct(values, q)
    with db.transaction() as s:  # a rebuild from the calls gives the very same tables
        reports.rebuild_rollups(s)
    with db.read() as s:
        assert rollup_tables(s) == stored


def test_rollups_equal_the_raw_figures_on_random_histories(anydb: Database) -> None:
    """Histories pile up in one database: each check covers every history played so far."""
    for seed in range(10 if anydb.dialect == "sqlite" else 6):
        rnd = random.Random(seed)
        days = rnd.choice([1, 2, 4, 7])
        try:
            play_history(anydb, rnd, tickets=rnd.choice([1, 3, 12]), events=40, first=FIRST_DAY, days=days)
            assert_every_figure_matches_the_raw_tables(anydb, rnd, FIRST_DAY, days)
        except AssertionError as exc:
            exc.add_note(f"random history {seed}")
            raise


def assert_quality_from_the_rollup_equals_quality_from_the_calls(db: Database) -> None:
    """One model per tier: the Quality page reads the labelled_answers rollup, and every figure (per model,
    reliability, confusion, label sources, flips, the what-if, calibration levels) equals the one built from every
    call of the labelled tickets, as the page did before."""
    with db.read() as s:
        assert db_quality.one_model_per_tier(s)
        assert db_quality.measured_answers(s) == db_quality.labelled_answers(s)  # the rollup is what is measured
        calls = db_quality.labelled_calls(s)
    fast = quality.measure(db, classes=TAX.names)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(db_quality, "measured_answers", lambda s, since=None: calls)
        slow = quality.measure(db, classes=TAX.names)
    assert fast.n_tickets == len({r["ticket_id"] for r in calls})
    assert fast.to_dict() == slow.to_dict()


def test_quality_from_the_rollup_equals_quality_from_the_calls_on_random_histories(
        anydb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, 1, ["claude-haiku-5-5"])
    for seed in range(8 if anydb.dialect == "sqlite" else 5):
        rnd = random.Random(1000 + seed)
        try:
            play_history(anydb, rnd, tickets=rnd.choice([1, 3, 12]), events=40, first=FIRST_DAY, days=3)
            assert_quality_from_the_rollup_equals_quality_from_the_calls(anydb)
        except AssertionError as exc:
            exc.add_note(f"random history {1000 + seed}")
            raise
    with anydb.transaction() as s:  # a second tier-1 model: a ticket's latest answer of each model is not in the
        # rollup any more, so the figures come from the calls
        tid = s.execute(select(func.max(LabelledAnswer.ticket_id))).scalar_one()
        db_calls.record_call(s, tid, None, CallResult(1, "claude-haiku-4-5", OK, category=TAX.names[0],
                                                   confidence=0.5, created_at=datetime(2026, 11, 28, tzinfo=UTC)))
    with anydb.read() as s:
        assert not db_quality.one_model_per_tier(s)
        assert db_quality.measured_answers(s) == db_quality.labelled_calls(s)
    assert "claude-haiku-4-5" in {t["model"] for t in quality.measure(anydb).per_tier}


def test_quality_reads_the_newest_labelled_tickets_up_to_its_cap(anydb: Database) -> None:
    with anydb.transaction() as s:
        ids = queue.import_tickets(s, [(None, f"t{i}") for i in range(5)], source="t", run_id=None).ticket_ids
        for tid in ids:
            for tier in (1, 2):
                db_calls.record_call(s, tid, None, CallResult(tier, MODELS[tier][0], OK, category="billing",
                                                           confidence=0.8))
        for tid in ids[:4]:
            review.correct(s, tid, "account", operator="op", expected_version=s.get_one(Ticket, tid).version)
    with anydb.read() as s:
        assert [(r["ticket_id"], r["tier"]) for r in db_quality.labelled_answers(s, tickets=2)] == [
            (ids[3], 1), (ids[3], 2), (ids[2], 1), (ids[2], 2)]  # the newest two labelled, not the unlabelled one
        assert {r["ticket_id"] for r in db_quality.labelled_answers(s)} == set(ids[:4])
        assert db_quality.label_sources(s, ids[2:4]) == {"review": 2}
    with pytest.MonkeyPatch.context() as m:  # the page measures the newest labelled tickets and says so
        m.setattr(db_quality, "TICKETS", 2)
        result = quality.measure(anydb)
    assert result.n_tickets == 2 and result.sources == {"review": 2}
    assert "the newest 2 (at most that many are read)" in result.measured_on()


def test_rollups_include_the_demo_data_and_what_follows_it(anydb: Database) -> None:
    demo.fill(anydb, TAX, settings=Settings(), local=False, actor=LEAD)
    with anydb.read() as s:
        assert reports.demo_calls(s) > 100 and reports.demo_calls(s) == old_demo_calls(s)
        first = rollups.as_utc(s.execute(select(func.min(ModelCall.created_at))).scalar_one()).date()
    rnd = random.Random(99)
    play_history(anydb, rnd, tickets=5, events=20, first=first, days=31)
    assert_every_figure_matches_the_raw_tables(anydb, rnd, first, 31)


def test_a_direct_sonnet_call_stops_counting_as_direct_once_tier1_sees_the_ticket(anydb: Database) -> None:
    day1, day2 = datetime(2026, 11, 30, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    with anydb.transaction() as s:
        tid = queue.import_tickets(s, [(None, "x")], source="t", run_id=None).ticket_ids[0]
        db_calls.record_call(s, tid, None, CallResult(2, TIER2, OK, cost_usd=Decimal("0.01"), created_at=day1))
    with anydb.read() as s:
        assert reports.tier1_tokens_and_direct_tier2(s)["direct_tier2_pico"] == to_pico(Decimal("0.01"))
    with anydb.transaction() as s:
        db_calls.record_call(s, tid, None, CallResult(1, "claude-haiku-5-5", OK, usage=Usage(10, 2), created_at=day2))
    with anydb.read() as s:
        assert reports.tier1_tokens_and_direct_tier2(s) == {"input_tokens": 10, "output_tokens": 2,
                                                            "direct_tier2_pico": 0}
        assert [(r["day"], r["tickets"], r["tier1_tickets"], r["tier2_tickets"]) for r in reports.routing_by_day(s)] \
            == [("2026-11-30", 1, 0, 1), ("2026-12-01", 1, 1, 0)]


def test_call_times_in_other_zones_are_stored_and_counted_on_their_utc_day(anydb: Database) -> None:
    local = datetime(2026, 12, 1, 2, 0, tzinfo=timezone(timedelta(hours=5)))  # 21:00 UTC on 30 November
    with anydb.transaction() as s:
        tid = queue.import_tickets(s, [(None, "x")], source="t", run_id=None).ticket_ids[0]
        db_calls.record_call(s, tid, None, CallResult(1, "claude-haiku-5-5", OK, latency_ms=640, created_at=local))
    with anydb.read() as s:
        assert [r["day"] for r in reports.spend_by_day_from_calls(s)] == ["2026-11-30"]
        assert [r["day"] for r in reports.spend_by_day(s)] == ["2026-11-30"]
        assert reports.latency_histogram(s) == [("claude-haiku-5-5", 640, 1)]


def test_data_versions_move_with_the_data_they_stand_for(anydb: Database) -> None:
    from triage.quality import measure as quality

    with anydb.transaction() as s:
        a, b = queue.import_tickets(s, [(None, "a"), (None, "b")], source="t", run_id=None).ticket_ids
    calls0, labels0 = reporting.data_version(anydb), quality.data_version(anydb)
    with anydb.transaction() as s:
        db_calls.record_call(s, a, None, CallResult(1, "claude-haiku-5-5", OK, category="billing"))
    calls1 = reporting.data_version(anydb)
    assert calls1 != calls0 and quality.data_version(anydb) == labels0  # nobody labelled `a`: Quality unchanged
    with anydb.transaction() as s:
        review.correct(s, b, "account", operator="op", expected_version=s.get_one(Ticket, b).version)
    labels1 = quality.data_version(anydb)
    assert labels1 != labels0 and reporting.data_version(anydb) == calls1
    with anydb.transaction() as s:  # a new answer on a labelled ticket changes what Quality measures
        db_calls.record_call(s, b, None, CallResult(2, TIER2, OK, category="account"))
    assert quality.data_version(anydb) != labels1 and reporting.data_version(anydb) != calls1


def test_percentile_from_buckets_is_exact_below_100_ms_and_within_the_bucket_above() -> None:
    assert rollups.latency_bucket(87) == 87 and rollups.latency_bucket(643) == 640
    assert rollups.latency_bucket(1389) == 1300 and rollups.latency_bucket(2_000_000_000) == 2_000_000_000
    assert [rollups.bucket_width(v) for v in (5, 99, 100, 999, 1000, 12_345)] == [1, 1, 10, 10, 100, 1000]
    values = [12, 12, 40, 41, 97]
    hist = sorted({rollups.latency_bucket(v): values.count(v) for v in values}.items())
    assert reporting.percentile(hist, 0.5) == old_pct(values, 0.5) == 40
    assert reporting.percentile(hist, 0.95) == pytest.approx(old_pct(values, 0.95))
    assert reporting.percentile([(640, 1)], 0.5) == 644.5  # the middle of 640..649
    assert reporting.percentile([], 0.5) == 0.0
