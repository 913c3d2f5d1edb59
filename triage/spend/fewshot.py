"""What few-shot examples cost and what the prompt cache saved, for the Spend page: exact, from the calls' usage
and the dated price table, over the page's dates.

- The examples' cost is measured, not assumed: tier 1's mean cost and prompt tokens per call with examples
  against the same model's calls without, over the same days (different tickets: a difference of means).
- The cache's saving is exact: every cache read priced at the input price of its call's band and day minus what
  it was billed at the read price, less what cache writes cost above the input price."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.orm import Session

from db import fewshot as db_fewshot
from db.engine import Database
from triage.domain import from_pico
from triage.errors import UnknownModel
from triage.spend.pricing import MTOK, PriceTable


@dataclass
class ExamplesCost:
    model: str
    calls: int  # tier-1 calls that carried examples
    examples: int  # examples in them, summed
    prompt_tokens: int  # input + cache writes + cache reads of those calls
    cost: Decimal
    calls_without: int  # the same model's tier-1 calls without examples, same days
    prompt_tokens_without: int
    cost_without: Decimal

    @property
    def extra_tokens_per_call(self) -> float | None:
        if not self.calls or not self.calls_without:
            return None
        return self.prompt_tokens / self.calls - self.prompt_tokens_without / self.calls_without

    @property
    def extra_cost(self) -> Decimal | None:
        """What the calls with examples cost beyond as many calls at the mean cost without (negative: cheaper,
        when the cached prefix costs less than the uncached system prompt alone)."""
        if not self.calls or not self.calls_without:
            return None
        return self.cost - self.cost_without / self.calls_without * self.calls


@dataclass
class FewShotSpend:
    examples: list[ExamplesCost] = field(default_factory=list)
    read_tokens: int = 0
    read_cost: Decimal = Decimal(0)  # what the cache reads were billed
    read_at_input: Decimal = Decimal(0)  # what the same tokens would have cost as plain input
    write_tokens: int = 0
    write_cost: Decimal = Decimal(0)
    write_at_input: Decimal = Decimal(0)
    unpriced_calls: int = 0  # calls under a model the price table lacks: left out of the saving

    @property
    def saved(self) -> Decimal:
        """Reads' discount minus writes' premium: what the cache saved, net."""
        return (self.read_at_input - self.read_cost) - (self.write_cost - self.write_at_input)

    @property
    def empty(self) -> bool:
        return not self.examples and not self.read_tokens and not self.write_tokens


def band_limits(prices: PriceTable) -> list[int]:
    """Every prompt-size limit of the price table's bands, ascending."""
    return sorted({b.max_prompt_tokens for entries in prices.models.values() for e in entries for b in e.bands
                   if b.max_prompt_tokens is not None})


def size_in_band(band: int, limits: list[int]) -> int:
    """A prompt size inside band `band` of `limits` (db.fewshot.examples_and_cache's index): the band's own
    limit, or one past the last limit for the open band above them all."""
    if band < len(limits):
        return limits[band]
    return limits[-1] + 1 if limits else 0


def groups(s: Session, start: date, end: date, prices: PriceTable) -> list[tuple[db_fewshot.FewShotSums, int]]:
    """The few-shot and cache sums of these days, each with a prompt size in the one price band every call of its
    group was priced in: from the cache_daily rollup (its prompt classes are thousands of tokens, so exact while
    every band limit is a whole number of thousands), else straight from the calls."""
    limits = band_limits(prices)
    if all(lim % 1000 == 0 for lim in limits):
        return [(r, 1000 * (r["prompt_kilo"] + 1)) for r in db_fewshot.cache_by_day(s, start, end)]
    return [(r, size_in_band(r["band"], limits)) for r in db_fewshot.examples_and_cache(s, start, end, limits)]


def measure(db: Database, start: date, end: date, prices: PriceTable | None = None) -> FewShotSpend:
    prices = prices or PriceTable.default()
    with db.read() as s:
        rows = groups(s, start, end, prices)
        totals = db_fewshot.tier1_totals(s, start, end)
    out = FewShotSpend()
    with_examples: dict[str, dict[str, int]] = {}
    for g, size in rows:
        if g["tier"] == 1 and g["with_examples"]:
            acc = with_examples.setdefault(g["model"], {"calls": 0, "examples": 0, "prompt": 0, "cost": 0})
            acc["calls"] += g["calls"]
            acc["examples"] += g["examples"]
            acc["prompt"] += (g["input_tokens"] + g["cache_write_5m_tokens"] + g["cache_write_1h_tokens"]
                              + g["cache_read_tokens"])
            acc["cost"] += g["cost_pico"]
        writes = g["cache_write_5m_tokens"] + g["cache_write_1h_tokens"]
        if not writes and not g["cache_read_tokens"]:
            continue
        try:
            band = prices.entry(g["model"], date.fromisoformat(g["day"])).band_for(size)
        except UnknownModel:
            out.unpriced_calls += g["calls"]
            continue
        scale = prices.multiplier(g["service_tier"], g["inference_geo"])
        out.read_tokens += g["cache_read_tokens"]
        out.read_cost += g["cache_read_tokens"] * band.cache_read / MTOK * scale
        out.read_at_input += g["cache_read_tokens"] * band.input / MTOK * scale
        out.write_tokens += writes
        out.write_cost += (g["cache_write_5m_tokens"] * band.cache_write_5m
                           + g["cache_write_1h_tokens"] * band.cache_write_1h) / MTOK * scale
        out.write_at_input += writes * band.input / MTOK * scale
    for model, acc in sorted(with_examples.items()):
        total = totals.get(model, {"calls": 0, "prompt_tokens": 0, "cost_pico": 0})
        out.examples.append(ExamplesCost(
            model, acc["calls"], acc["examples"], acc["prompt"], from_pico(acc["cost"]),
            total["calls"] - acc["calls"], total["prompt_tokens"] - acc["prompt"],
            from_pico(total["cost_pico"] - acc["cost"])))
    return out
