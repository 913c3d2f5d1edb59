"""Operator-labelled tickets and their stored vectors, for the few-shot examples of tier 1 (triage.local.retrieval)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TypedDict

from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.orm import Session

from db import rollups
from db.models import FEWSHOT_OR_CACHED, CacheDaily, Correction, ModelCall, SpendDaily, Ticket, TicketVector


def operator_labelled(s: Session, categories: Sequence[str]) -> list[tuple[int, str, str, str | None]]:
    """(ticket id, text, label, text hash) of every ticket carrying an operator's label from the taxonomy, by id."""
    rows = s.execute(select(Ticket.id, Ticket.text, Ticket.category, Ticket.text_hash)
                     .where(Ticket.label_source == "operator", Ticket.category.in_(list(categories)),
                            Ticket.text != "")  # an erased ticket (db/privacy.py) is no example
                     .order_by(Ticket.id))
    return [(r.id, r.text, r.category or "", r.text_hash) for r in rows]


def same_text(s: Session, text_hash: str, model: str) -> tuple[list[int], bytes | None]:
    """The tickets whose normalised text hashes to `text_hash`, and a stored vector of one of them (the embedding
    depends on the text alone), or None when none is stored."""
    ids = list(s.scalars(select(Ticket.id).where(Ticket.text_hash == text_hash).order_by(Ticket.id)))
    vector = s.scalar(select(TicketVector.vector).where(TicketVector.ticket_id.in_(ids), TicketVector.model == model)
                      .limit(1)) if ids else None
    return ids, vector


def labels_stamp(s: Session) -> tuple[int, int]:
    """Changes whenever an operator label does (every label is an append-only corrections row): how many rows
    and the newest id. Not the `labels` data version, which also moves with every call on a labelled ticket."""
    n, newest = s.execute(select(func.count(Correction.id), func.max(Correction.id))).one()
    return int(n or 0), int(newest or 0)


class FewShotSums(TypedDict):
    """Calls that carried few-shot examples or used the prompt cache, summed per day, model, tier, with examples
    or not, service tier and inference geo ('' for none); the prompt's size class apart (`CacheRow`, `BandRow`)."""

    day: str
    model: str
    tier: int
    with_examples: int  # 1: sent with examples
    service_tier: str
    inference_geo: str
    calls: int
    examples: int
    input_tokens: int
    output_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    cost_pico: int


class CacheRow(FewShotSums):
    """A cache_daily row: prompt sizes in classes of thousands of tokens."""

    prompt_kilo: int


class BandRow(FewShotSums):
    """The same sums per price band: the index of the first band limit the prompt fits under."""

    band: int


def _fewshot_sums(s: Session, size: ColumnElement[int], start: date | None, end: date | None,
                  ) -> list[tuple[FewShotSums, int]]:
    """Calls that carried labelled examples or used the prompt cache (from `start` to `end`, UTC days, when
    given), summed per day, model, tier, with examples or not, service tier, inference geo ('' for none) and
    `size` (a class of prompt sizes), through the partial index ix_model_calls_fewshot: calls with neither are
    not touched. Each with its prompt's `size` class."""
    day = rollups.day_sql(s).label("day")
    shots = case((ModelCall.examples.is_not(None), 1), else_=0).label("with_examples")
    keys = (day, ModelCall.model, ModelCall.tier, shots, func.coalesce(ModelCall.service_tier, "").label("st"),
            func.coalesce(ModelCall.inference_geo, "").label("geo"), size.label("size"))
    q = (select(*keys, func.count().label("calls"), func.sum(func.coalesce(ModelCall.examples, 0)).label("examples"),
                *(func.sum(c).label(c.key) for c in (ModelCall.input_tokens, ModelCall.output_tokens,
                                                     ModelCall.cache_write_5m_tokens, ModelCall.cache_write_1h_tokens,
                                                     ModelCall.cache_read_tokens, ModelCall.cost_pico)))
         .where(FEWSHOT_OR_CACHED).group_by(*keys))
    q = rollups.within_days(q, start, end)
    return [(FewShotSums(day=str(r.day), model=r.model, tier=r.tier, with_examples=int(r.with_examples),
                         service_tier=r.st, inference_geo=r.geo, calls=int(r.calls or 0),
                         examples=int(r.examples or 0), input_tokens=int(r.input_tokens or 0),
                         output_tokens=int(r.output_tokens or 0),
                         cache_write_5m_tokens=int(r.cache_write_5m_tokens or 0),
                         cache_write_1h_tokens=int(r.cache_write_1h_tokens or 0),
                         cache_read_tokens=int(r.cache_read_tokens or 0), cost_pico=int(r.cost_pico or 0)),
             int(r.size)) for r in s.execute(q)]


def _prompt() -> ColumnElement[int]:
    return (ModelCall.input_tokens + ModelCall.cache_write_5m_tokens + ModelCall.cache_write_1h_tokens
            + ModelCall.cache_read_tokens)


def examples_and_cache(s: Session, start: date, end: date, band_limits: Sequence[int]) -> list[BandRow]:
    """Straight from the calls, for any price bands: the sums `cache_by_day` reads, with the prompt's class the
    index of the first of `band_limits` (the price table's max_prompt_tokens) it fits under ("band"; len(limits)
    above them all), so every group is priced by one band."""
    limits = sorted(set(band_limits))
    prompt = _prompt()
    band = case(*[(prompt <= lim, i) for i, lim in enumerate(limits)], else_=len(limits)) if limits else literal(0)
    return [BandRow(**sums, band=size) for sums, size in _fewshot_sums(s, band, start, end)]


def cache_by_day_from_calls(s: Session, start: date | None = None, end: date | None = None) -> list[CacheRow]:
    """The cache_daily rows, straight from the calls (migration 0016, rebuilds, the property tests)."""
    return [CacheRow(**sums, prompt_kilo=size)
            for sums, size in _fewshot_sums(s, rollups.prompt_kilo_sql(_prompt()), start, end)]


def cache_by_day(s: Session, start: date, end: date) -> list[CacheRow]:
    """The cache_daily rows of these days (UTC): what the Spend page's few-shot and cache figures are built from."""
    q = select(CacheDaily).where(CacheDaily.day >= start.isoformat(), CacheDaily.day <= end.isoformat())
    return [CacheRow(day=r.day, model=r.model, tier=r.tier, with_examples=r.with_examples,
                     service_tier=r.service_tier, inference_geo=r.inference_geo, calls=r.calls, examples=r.examples,
                     input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                     cache_write_5m_tokens=r.cache_write_5m_tokens, cache_write_1h_tokens=r.cache_write_1h_tokens,
                     cache_read_tokens=r.cache_read_tokens, cost_pico=r.cost_pico, prompt_kilo=r.prompt_kilo)
            for r in s.scalars(q)]


def tier1_totals(s: Session, start: date, end: date) -> dict[str, dict[str, int]]:
    """Per model, tier 1's calls, prompt tokens (input and cache) and cost over these days (the daily rollup)."""
    q = (select(SpendDaily.model, func.sum(SpendDaily.calls),
                func.sum(SpendDaily.input_tokens + SpendDaily.cache_tokens), func.sum(SpendDaily.cost_pico))
         .where(SpendDaily.tier == 1, SpendDaily.day >= start.isoformat(), SpendDaily.day <= end.isoformat())
         .group_by(SpendDaily.model))
    return {m: {"calls": int(c or 0), "prompt_tokens": int(t or 0), "cost_pico": int(p or 0)}
            for m, c, t, p in s.execute(q)}





def operator_labelled_count(categories: Sequence[str]) -> Select[int]:
    """How many tickets carry an operator's label from these categories: count(*), so PostgreSQL answers from
    ix_tickets_label_source_category alone (count(id) made it visit every labelled ticket's row: 0.68 s against
    0.02 s at 3M tickets)."""
    return (select(func.count()).select_from(Ticket)
            .where(Ticket.label_source == "operator", Ticket.category.in_(list(categories))))


def count_operator_labelled(s: Session, categories: Sequence[str]) -> int:
    return int(s.scalar(operator_labelled_count(categories)) or 0)
