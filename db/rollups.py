"""Per-day rollups kept in step with model_calls in the same transaction as each call, so report pages cost
what the days shown cost, not what the history holds. `db.reports` reads them; `db.reports.rebuild_rollups`
recomputes them from the calls (the migration that created them, bulk loads, audits).

What each rollup counts, per UTC day (the definitions the raw `*_from_calls` queries in db.reports use):
- spend_daily (day, model, tier): calls, tokens, exact cost; tokens of answered calls; demo calls and their cost.
- routing_daily (day): production tickets with at least one call that day (any tier / tier 1 / tier 2), so a
  ticket with calls on two days counts on both; and the cost of that day's tier-2 calls on production tickets that
  have no tier-1 call at all (when a ticket's first tier-1 call arrives, its earlier tier-2 costs leave that sum,
  on their days).
- latency_daily (day, model, bucket): answered live calls on production tickets per latency bucket (see
  `latency_bucket`).
Production: a ticket whose purpose is production (`tickets.purpose`, 0025): a pilot's sample and `triage eval`'s
gold tickets are not the team's traffic, so they move neither the tickets a day (the Spend page, the review budget's
reviews a day) nor the escalation rate nor the latency; their calls are real spend and stay in spend_daily (the
Spend page says how much of it was a pilot's). Rows written before 0026 counted them; 0026 rebuilt both tables.
- cache_daily (day, model, tier, with examples, service tier, geo, prompt thousands): calls that carried few-shot
  examples or used the prompt cache, their examples, tokens and exact cost (see `prompt_kilo`).
And, not per day: labelled_answers, each operator-labelled ticket's latest answered call per tier, with few-shot
examples and without.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, case, delete, func, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import (
    Base,
    CacheDaily,
    DataVersion,
    LabelledAnswer,
    LatencyDaily,
    ModelCall,
    RoutingDaily,
    SpendDaily,
    Ticket,
)
from triage.domain import ERROR, PRODUCTION

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


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def midnight(day: date) -> datetime:
    """The UTC midnight that starts `day`."""
    return datetime.combine(day, datetime.min.time(), UTC)


def within_days(q: SelectT, start: date | None, end: date | None,
                column: InstrumentedAttribute[datetime] = ModelCall.created_at) -> SelectT:
    """`q` limited to rows whose `column` falls on the UTC days `start` to `end` (either open when None)."""
    if start is not None:
        q = q.where(column >= midnight(start))
    if end is not None:
        q = q.where(column < midnight(end + timedelta(days=1)))
    return q


def day_sql(s: Session) -> ColumnElement[str]:
    """A call's UTC day (YYYY-MM-DD) in SQL, per backend: what `day_of` gives in Python."""
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", ModelCall.created_at), "YYYY-MM-DD")
    return func.substr(ModelCall.created_at, 1, 10)  # SQLite stores ISO text: the first 10 chars are the day


def latency_bucket_sql(ms: ColumnElement[int] | InstrumentedAttribute[int]) -> ColumnElement[int]:
    """`latency_bucket` in SQL (integer division), for rebuilding latency_daily from the calls."""
    steps = [(10 ** (d + 1), 10 ** (d - 1)) for d in range(2, 9)]  # below 10^(d+1): step 10^(d-1)
    return case((ms < 100, ms), *[(ms < below, ms // step * step) for below, step in steps],
                else_=ms // 10**8 * 10**8)  # 10 digits: the most a 32-bit integer holds


def prompt_kilo(prompt_tokens: int) -> int:
    """The prompt's size class in cache_daily: 1-1,000 tokens -> 0, 1,001-2,000 -> 1, ...; 0 tokens -> -1. A price
    band whose limit is a whole number of thousands (100,000) never splits a class: class k's prompts are all
    at most 1,000 x (k + 1) tokens, and all above 1,000 x k."""
    return (prompt_tokens - 1) // 1000


def prompt_kilo_sql(prompt: ColumnElement[int]) -> ColumnElement[int]:
    """`prompt_kilo` in SQL (integer division truncates towards zero in SQL, so 0 is its own case)."""
    return case((prompt <= 0, -1), else_=(prompt - 1) // 1000)


def prompt_tokens(row: ModelCall) -> int:
    return row.input_tokens + row.cache_write_5m_tokens + row.cache_write_1h_tokens + row.cache_read_tokens


def fewshot_or_cached(row: ModelCall) -> bool:
    """What db.models.FEWSHOT_OR_CACHED selects in SQL: the calls cache_daily counts."""
    return (row.examples is not None or row.cache_read_tokens > 0 or row.cache_write_5m_tokens > 0
            or row.cache_write_1h_tokens > 0)


def counts_latency(row: ModelCall) -> bool:
    return row.outcome != ERROR and row.service_tier != BATCH


def add_call(s: Session, row: ModelCall) -> None:
    """Add one just-inserted call to every rollup (call inside the transaction that inserted it)."""
    day = day_of(row.created_at)
    answered = row.outcome != ERROR
    demo = (row.request_id or "").startswith(DEMO_REQUEST_PREFIX)
    _bump(s, SpendDaily, {"day": day, "model": row.model, "tier": row.tier}, {
        "calls": 1, "requests": int(row.group_position == 1), "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_tokens": row.cache_read_tokens + row.cache_write_5m_tokens + row.cache_write_1h_tokens,
        "cost_pico": row.cost_pico, "answered_input_tokens": row.input_tokens if answered else 0,
        "answered_output_tokens": row.output_tokens if answered else 0, "demo_calls": int(demo),
        "demo_cost_pico": row.cost_pico if demo else 0})
    if fewshot_or_cached(row):
        _bump(s, CacheDaily, {"day": day, "model": row.model, "tier": row.tier,
                              "with_examples": int(row.examples is not None), "service_tier": row.service_tier or "",
                              "inference_geo": row.inference_geo or "", "prompt_kilo": prompt_kilo(prompt_tokens(row))},
              {"calls": 1, "examples": row.examples or 0, "input_tokens": row.input_tokens,
               "output_tokens": row.output_tokens, "cache_write_5m_tokens": row.cache_write_5m_tokens,
               "cache_write_1h_tokens": row.cache_write_1h_tokens, "cache_read_tokens": row.cache_read_tokens,
               "cost_pico": row.cost_pico})
    # the ticket's row lock serialises calls on one ticket, so "its first call of the day" is exact under
    # concurrent writers (PostgreSQL; SQLite has one writer at a time)
    label_source, truth, purpose = s.execute(select(Ticket.label_source, Ticket.category, Ticket.purpose)
                                             .where(Ticket.id == row.ticket_id).with_for_update(key_share=True)).one()
    if (purpose or PRODUCTION) == PRODUCTION:  # a pilot's or an eval's call: not traffic (see the docstring)
        _production(s, row, day)
    if label_source == "operator":
        if answered and truth is not None:  # an operator's label is never empty
            _set_answer(s, row, truth)
        bump_version(s, LABELS)


def _production(s: Session, row: ModelCall, day: str) -> None:
    """The call's share of routing_daily and latency_daily: a call on a production ticket."""
    if counts_latency(row):
        _bump(s, LatencyDaily, {"day": day, "model": row.model, "bucket_ms": latency_bucket(row.latency_ms)},
              {"calls": 1})
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


ANSWER_COLUMNS = ["ticket_id", "tier", "with_examples", "call_id", "truth", "label", "confidence", "cost_pico",
                  "model", "outcome", "examples"]  # labelled_answers, in the order latest_answers selects them


def _set_answer(s: Session, row: ModelCall, truth: str) -> None:
    """The call becomes its tier's answer (with or without examples) on a labelled ticket, unless a later call
    already is."""
    insert_ = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_(LabelledAnswer).values(
        ticket_id=row.ticket_id, tier=row.tier, with_examples=int(row.examples is not None), call_id=row.id,
        truth=truth, label=row.category, confidence=row.confidence, cost_pico=row.cost_pico, model=row.model,
        outcome=row.outcome, examples=row.examples)
    s.execute(stmt.on_conflict_do_update(
        index_elements=["ticket_id", "tier", "with_examples"], where=LabelledAnswer.call_id < stmt.excluded.call_id,
        set_={k: getattr(stmt.excluded, k) for k in ANSWER_COLUMNS[3:] if k != "truth"}))


def label_ticket(s: Session, ticket_id: int, truth: str) -> None:
    """An operator labelled the ticket (first time or again): its answers now stand next to `truth`."""
    s.execute(delete(LabelledAnswer).where(LabelledAnswer.ticket_id == ticket_id))
    s.execute(insert(LabelledAnswer).from_select(ANSWER_COLUMNS, latest_answers([ticket_id], truth)))
    bump_version(s, LABELS)


def unlabel_ticket(s: Session, ticket_id: int) -> None:
    """The ticket's operator label was undone and it has none left: its answers no longer stand next to one."""
    s.execute(delete(LabelledAnswer).where(LabelledAnswer.ticket_id == ticket_id))
    bump_version(s, LABELS)


def label_tickets(s: Session, ticket_ids: Sequence[int]) -> None:
    """Operators labelled these tickets in bulk (a label import; their new label is already on the ticket row):
    their answers now stand next to it. Two statements per call, whatever the number of tickets."""
    ids = list(ticket_ids)
    if not ids:
        return
    s.execute(delete(LabelledAnswer).where(LabelledAnswer.ticket_id.in_(ids)))
    s.execute(insert(LabelledAnswer).from_select(ANSWER_COLUMNS, latest_answers(ids)))
    bump_version(s, LABELS)


def latest_answers(ticket_ids: Sequence[int] | None = None, truth: str | None = None) -> Select[*tuple[Any, ...]]:
    """SELECT of labelled_answers rows (ANSWER_COLUMNS): the latest answered call per tier, with examples and
    without, of these tickets, or (ticket_ids None) of every ticket an operator labelled. The truth is `truth`
    when given, else the ticket's label."""
    shots = case((ModelCall.examples.is_not(None), 1), else_=0)
    latest = select(func.max(ModelCall.id)).where(ModelCall.outcome != ERROR)
    if ticket_ids is not None:
        latest = latest.where(ModelCall.ticket_id.in_(list(ticket_ids)))
    else:
        latest = latest.join(Ticket, Ticket.id == ModelCall.ticket_id).where(Ticket.label_source == "operator")
    latest = latest.group_by(ModelCall.ticket_id, ModelCall.tier, shots)
    q = select(ModelCall.ticket_id, ModelCall.tier, shots.label("with_examples"), ModelCall.id,
               (Ticket.category if truth is None else literal(truth, String(64))).label("truth"),
               ModelCall.category, ModelCall.confidence, ModelCall.cost_pico, ModelCall.model, ModelCall.outcome,
               ModelCall.examples).where(ModelCall.id.in_(latest))
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
