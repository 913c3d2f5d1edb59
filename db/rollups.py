"""Per-day rollups kept in step with model_calls in the same transaction as each call, so report pages cost
what the days shown cost, not what the history holds. `db.reports` reads them; `db.reports.rebuild_rollups`
recomputes them from the calls (the migration that created them, bulk loads, audits).

What each rollup counts, per UTC day (the definitions the raw `*_from_calls` queries in db.reports use):
- spend_daily (day, model, tier): calls, tokens, exact cost; tokens of answered calls; demo calls and their cost.
- routing_daily (day): tickets with at least one call that day (any tier / tier 1 / tier 2), so a ticket with
  calls on two days counts on both; and the cost of that day's tier-2 calls on tickets that have no tier-1 call
  at all (when a ticket's first tier-1 call arrives, its earlier tier-2 costs leave that sum, on their days).
- latency_daily (day, model, bucket): answered live calls per latency bucket (see `latency_bucket`).
And, not per day: labelled_answers, each operator-labelled ticket's latest answered call per tier, and
quality_totals, those answers' contribution to every Quality figure (`quality_contribution`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, case, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import (
    Base,
    DataVersion,
    LabelledAnswer,
    LatencyDaily,
    ModelCall,
    QualityTotal,
    RoutingDaily,
    SpendDaily,
    Ticket,
)
from triage.domain import ERROR

DEMO_REQUEST_PREFIX = "demo_"  # simulated calls written by `triage demo`
LABELS = "labels"  # bumped by an operator label, or a call on a ticket an operator labelled
REBUILDS = "rebuilds"  # bumped by every rebuild of the rollups
BATCH = "batch"  # service tier of Message Batches calls: no per-request latency


def as_utc(when: datetime) -> datetime:
    """Stored times are UTC: an aware time is converted, a naive one (SQLite hands those back) is UTC already."""
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def day_of(when: datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%d")


def latency_bucket(ms: int) -> int:
    """The latency rounded down to two significant digits: 87 -> 87, 643 -> 640, 1389 -> 1300."""
    if ms < 100:
        return ms
    step = bucket_width(ms)
    return ms // step * step


def bucket_width(ms: int) -> int:
    """How many milliseconds the bucket holding `ms` spans: 1 under 100 ms, then 10% to 1% of the value."""
    return 1 if ms < 100 else 10 ** (len(str(ms)) - 2)


def latency_bucket_sql(ms: ColumnElement[int] | InstrumentedAttribute[int]) -> ColumnElement[int]:
    """`latency_bucket` in SQL (integer division), for rebuilding latency_daily from the calls."""
    steps = [(10 ** (d + 1), 10 ** (d - 1)) for d in range(2, 9)]  # below 10^(d+1): step 10^(d-1)
    return case((ms < 100, ms), *[(ms < below, ms // step * step) for below, step in steps],
                else_=ms // 10**8 * 10**8)  # 10 digits: the most a 32-bit integer holds


def counts_latency(row: ModelCall) -> bool:
    return row.outcome != ERROR and row.service_tier != BATCH


def add_call(s: Session, row: ModelCall) -> None:
    """Add one just-inserted call to every rollup (call inside the transaction that inserted it)."""
    day = day_of(row.created_at)
    answered = row.outcome != ERROR
    demo = (row.request_id or "").startswith(DEMO_REQUEST_PREFIX)
    _bump(s, SpendDaily, {"day": day, "model": row.model, "tier": row.tier}, {
        "calls": 1, "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
        "cache_tokens": row.cache_read_tokens + row.cache_write_5m_tokens + row.cache_write_1h_tokens,
        "cost_pico": row.cost_pico, "answered_input_tokens": row.input_tokens if answered else 0,
        "answered_output_tokens": row.output_tokens if answered else 0, "demo_calls": int(demo),
        "demo_cost_pico": row.cost_pico if demo else 0})
    if counts_latency(row):
        _bump(s, LatencyDaily, {"day": day, "model": row.model, "bucket_ms": latency_bucket(row.latency_ms)},
              {"calls": 1})
    # the ticket's row lock serialises calls on one ticket, so "its first call of the day" is exact under
    # concurrent writers (PostgreSQL; SQLite has one writer at a time)
    label_source, truth = s.execute(select(Ticket.label_source, Ticket.category).where(Ticket.id == row.ticket_id)
                                    .with_for_update(key_share=True)).one()
    others = s.execute(select(ModelCall.tier, ModelCall.created_at, ModelCall.cost_pico)
                       .where(ModelCall.ticket_id == row.ticket_id, ModelCall.id != row.id)).all()
    tiers_that_day = {o.tier for o in others if day_of(o.created_at) == day}
    seen_by_tier1 = any(o.tier == 1 for o in others)
    direct: dict[str, int] = defaultdict(int)
    if row.tier == 2 and not seen_by_tier1:
        direct[day] += row.cost_pico
    if row.tier == 1 and not seen_by_tier1:  # its earlier tier-2 calls were not direct after all
        for o in others:
            if o.tier == 2:
                direct[day_of(o.created_at)] -= o.cost_pico
    _bump(s, RoutingDaily, {"day": day}, {
        "tickets": int(not tiers_that_day), "tier1_tickets": int(row.tier == 1 and 1 not in tiers_that_day),
        "tier2_tickets": int(row.tier == 2 and 2 not in tiers_that_day), "direct_tier2_pico": direct.pop(day, 0)})
    for other_day, delta in direct.items():
        if delta:
            _bump(s, RoutingDaily, {"day": other_day}, {"tickets": 0, "tier1_tickets": 0, "tier2_tickets": 0,
                                                        "direct_tier2_pico": delta})
    if label_source == "operator":
        if answered and truth is not None:  # an operator's label is never empty
            _set_answer(s, row, truth)
        bump_version(s, LABELS)


def _set_answer(s: Session, row: ModelCall, truth: str) -> None:
    """The call becomes its tier's answer on a labelled ticket, unless a later call already is."""
    before = quality_contribution(*_answers_of(s, row.ticket_id))
    insert_ = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(LabelledAnswer).values(ticket_id=row.ticket_id, tier=row.tier, call_id=row.id, truth=truth,
                                          label=row.category, confidence=row.confidence, cost_pico=row.cost_pico)
    s.execute(stmt.on_conflict_do_update(
        index_elements=["ticket_id", "tier"], where=LabelledAnswer.call_id < stmt.excluded.call_id,
        set_={k: getattr(stmt.excluded, k) for k in ("call_id", "label", "confidence", "cost_pico")}))
    _retotal(s, before, quality_contribution(*_answers_of(s, row.ticket_id)))


def label_ticket(s: Session, ticket_id: int, truth: str) -> None:
    """An operator labelled the ticket (first time or again): its answers now stand next to `truth`."""
    before = quality_contribution(*_answers_of(s, ticket_id))
    s.execute(delete(LabelledAnswer).where(LabelledAnswer.ticket_id == ticket_id))
    s.execute(insert(LabelledAnswer).from_select(
        ["ticket_id", "tier", "call_id", "truth", "label", "confidence", "cost_pico"],
        latest_answers(ticket_id, truth)))
    _retotal(s, before, quality_contribution(*_answers_of(s, ticket_id)))
    bump_version(s, LABELS)


# --- quality totals: the Quality page's figures as counts over every labelled answer ---------------------------

QUALITY_EDGES = [i * 0.1 for i in range(10)] + [1.0]  # numpy.linspace(0, 1, 11), float for float
THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]  # the what-if's escalation thresholds
CONFIDENCE_UNITS = 10**12  # confidence sums are kept as integers: adding and removing answers never drifts
Answer = tuple[str | None, float | None, int]  # (label, confidence, cost_pico) of a tier's latest answer
Totals = dict[str, tuple[int, int, int, int]]  # key -> (n, confidence units, right, cost_pico)


def reliability_bin(conf: float) -> int:
    """[lo, hi) bins, the last [lo, 1] (the reliability chart); -1 outside [0, 1]."""
    e = QUALITY_EDGES
    return next((i for i in range(len(e) - 1) if e[i] <= conf and (conf < e[i + 1] or i == len(e) - 2
                                                                   and conf <= e[i + 1])), -1)


def calibration_bin(conf: float) -> int:
    """(lo, hi] bins, the first [0, hi] (expected calibration error, as triage.local.head computes it)."""
    e = QUALITY_EDGES
    return next((i for i in range(len(e) - 1) if (conf > e[i] if i else conf >= e[i]) and conf <= e[i + 1]), -1)


def first_threshold_above(conf: float) -> int:
    """Index of the lowest what-if threshold over `conf` (len(THRESHOLDS) if none): escalated at t_i iff <= i."""
    return next((i for i, t in enumerate(THRESHOLDS) if conf < t), len(THRESHOLDS))


def quality_contribution(answers: dict[int, Answer], truth: str | None) -> Totals:
    """One labelled ticket's share of every Quality figure, keyed:
    - "tickets": the ticket (it has an answer)
    - "bins:<tier>:<reliability bin>:<calibration bin>": an answer with a label (confidence, right)
    - "pairs:<first threshold above>:<has Sonnet>:<Haiku right>:<Sonnet right>:<both labelled>:<labels differ>":
      its tier-1 answer with a label (Haiku's cost), next to its tier-2 answer
    - "sonnet": its tier-2 answer (cost). A missing confidence counts as 0."""
    out: Totals = {}

    def add(key: str, units: int = 0, right: int = 0, cost: int = 0) -> None:
        n, u, r, c = out.get(key, (0, 0, 0, 0))
        out[key] = (n + 1, u + units, r + right, c + cost)

    if not answers:
        return out
    add("tickets")
    for tier, (label, conf, cost) in sorted(answers.items()):
        c = conf or 0.0
        if label is not None:
            add(f"bins:{tier}:{reliability_bin(c)}:{calibration_bin(c)}", round(c * CONFIDENCE_UNITS),
                int(label == truth))
        if tier == 2:
            add("sonnet", cost=cost)
    haiku, sonnet = answers.get(1), answers.get(2)
    if haiku is not None and haiku[0] is not None:
        s_label = sonnet[0] if sonnet is not None else None
        flags = (int(sonnet is not None), int(haiku[0] == truth), int(s_label is not None and s_label == truth),
                 int(bool(haiku[0]) and bool(s_label)), int(s_label is not None and haiku[0] != s_label))
        add(f"pairs:{first_threshold_above(haiku[1] or 0.0)}:" + ":".join(map(str, flags)), cost=haiku[2])
    return out


def add_totals(into: Totals, more: Totals, sign: int = 1) -> Totals:
    for key, (n, units, right, cost) in more.items():
        n0, units0, right0, cost0 = into.get(key, (0, 0, 0, 0))
        into[key] = (n0 + sign * n, units0 + sign * units, right0 + sign * right, cost0 + sign * cost)
    return into


def _answers_of(s: Session, ticket_id: int) -> tuple[dict[int, Answer], str | None]:
    rows = s.execute(select(LabelledAnswer.tier, LabelledAnswer.label, LabelledAnswer.confidence,
                            LabelledAnswer.cost_pico, LabelledAnswer.truth)
                     .where(LabelledAnswer.ticket_id == ticket_id)).all()
    return {r.tier: (r.label, r.confidence, int(r.cost_pico)) for r in rows}, (rows[0].truth if rows else None)


def _retotal(s: Session, before: Totals, after: Totals) -> None:
    for key, (n, units, right, cost) in add_totals(dict(after), before, -1).items():
        if n or units or right or cost:
            _bump(s, QualityTotal, {"key": key}, {"n": n, "confidence_units": units, "right": right,
                                                  "cost_pico": cost})
        if n < 0:  # the ticket left this key: drop it once nothing is left in it
            s.execute(delete(QualityTotal).where(QualityTotal.key == key, QualityTotal.n == 0))


def latest_answers(ticket_id: int | None = None, truth: str | None = None) -> Select[*tuple[Any, ...]]:
    """SELECT of (ticket, tier, call, truth, label, confidence, cost): the latest answered call per tier of one
    labelled ticket, or (ticket_id None) of every ticket an operator labelled."""
    latest = select(func.max(ModelCall.id)).where(ModelCall.outcome != ERROR)
    if ticket_id is not None:
        latest = latest.where(ModelCall.ticket_id == ticket_id)
    else:
        latest = latest.join(Ticket, Ticket.id == ModelCall.ticket_id).where(Ticket.label_source == "operator")
    latest = latest.group_by(ModelCall.ticket_id, ModelCall.tier)
    q = select(ModelCall.ticket_id, ModelCall.tier, ModelCall.id,
               (Ticket.category if truth is None else literal(truth, String(64))).label("truth"),
               ModelCall.category, ModelCall.confidence, ModelCall.cost_pico).where(ModelCall.id.in_(latest))
    return q.join(Ticket, Ticket.id == ModelCall.ticket_id) if truth is None else q


def bump_version(s: Session, name: str) -> None:
    _bump(s, DataVersion, {"name": name}, {"version": 1})


def version(s: Session, name: str) -> int:
    return int(s.scalar(select(DataVersion.version).where(DataVersion.name == name)) or 0)


def calls_version(s: Session) -> tuple[int, int]:
    """Changes with every committed call (the calls counted in spend_daily: days x models rows, not calls)
    and with every rebuild. Not max(id): PostgreSQL sequences can commit out of order."""
    return int(s.scalar(select(func.coalesce(func.sum(SpendDaily.calls), 0))) or 0), version(s, REBUILDS)


def _bump(s: Session, table: type[Base], keys: dict[str, Any], deltas: dict[str, int]) -> None:
    """Insert the row, or add `deltas` to the one already there (atomic on both backends)."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**keys, **deltas)
    s.execute(stmt.on_conflict_do_update(
        index_elements=list(keys), set_={k: getattr(table, k) + getattr(stmt.excluded, k) for k in deltas}))
