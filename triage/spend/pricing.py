"""Exact cost from the API's `usage` and a dated price table (Decimal, never float)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

from triage.domain import Usage
from triage.errors import UnknownModel

MTOK = Decimal(1_000_000)

@dataclass(frozen=True)
class Band:
    max_prompt_tokens: int | None
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


@dataclass(frozen=True)
class PriceEntry:
    effective_from: date
    bands: tuple[Band, ...]

    def band_for(self, prompt_tokens: int) -> Band:
        for band in self.bands:
            if band.max_prompt_tokens is None or prompt_tokens <= band.max_prompt_tokens:
                return band
        return self.bands[-1]


class PriceRow(TypedDict):
    """One band of one model's price entry, flat, for display: dollars per million tokens."""

    model: str
    effective_from: str  # ISO day
    prompt_band: str  # "<= 200,000" or "any"
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


class PriceTable:
    def __init__(self, data: dict[str, Any], source: str = "triage/config/prices.json"):
        self.source = source
        self.batch_multiplier = Decimal(str(data.get("batch_multiplier", "0.5")))
        self.aliases: dict[str, str] = dict(data.get("aliases", {}))
        self.geo_multipliers = {k: Decimal(str(v)) for k, v in data.get("geo_multipliers", {}).items()}
        self.models: dict[str, list[PriceEntry]] = {}
        for model, entries in data["models"].items():
            parsed = [
                PriceEntry(
                    date.fromisoformat(e["effective_from"]),
                    tuple(
                        Band(
                            b.get("max_prompt_tokens"),
                            *(Decimal(str(b[k])) for k in
                              ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")),
                        )
                        for b in e["bands"]
                    ),
                )
                for e in entries
            ]
            self.models[model] = sorted(parsed, key=lambda p: p.effective_from)

    @classmethod
    def default(cls) -> PriceTable:
        text = resources.files("triage.config").joinpath("prices.json").read_text(encoding="utf-8")
        return cls(json.loads(text))

    @classmethod
    def load(cls, path: str | Path | None) -> PriceTable:
        if path is None:
            return cls.default()
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), source=str(path))

    def canonical(self, model: str) -> str:
        return self.aliases.get(model, model)

    def require(self, model: str, at: date | datetime | None = None) -> None:
        """Raise UnknownModel unless the table prices `model` today (checked before any call is paid for)."""
        self.entry(model, at or datetime.now(UTC))

    def entry(self, model: str, at: date | datetime) -> PriceEntry:
        day = at.date() if isinstance(at, datetime) else at
        entries = self.models.get(self.canonical(model))
        if not entries:
            raise UnknownModel(f"no price for model {model!r} in the price table ({self.source}); add an entry for it "
                               "(USD per million tokens, with its effective date) or set TRIAGE_PRICES to a table that "
                               "has one")
        current = [e for e in entries if e.effective_from <= day]
        if not current:
            raise UnknownModel(f"no price for model {model!r} on {day.isoformat()} in the price table ({self.source})")
        return current[-1]

    def cost(self, model: str, usage: Usage, at: date | datetime) -> Decimal:
        """Dollar cost of one call, exact."""
        scale = self.multiplier(usage.service_tier, usage.inference_geo)
        band = self.entry(model, at).band_for(usage.prompt_tokens)
        total = (
            usage.input_tokens * band.input
            + usage.output_tokens * band.output
            + usage.cache_write_5m_tokens * band.cache_write_5m
            + usage.cache_write_1h_tokens * band.cache_write_1h
            + usage.cache_read_tokens * band.cache_read
        ) / MTOK
        return total * scale

    def multiplier(self, service_tier: str | None, inference_geo: str | None) -> Decimal:
        """What a call's service tier (the batch discount) and inference geo multiply its band's prices by."""
        scale = self.batch_multiplier if service_tier == "batch" else Decimal(1)
        return scale * self.geo_multipliers.get(inference_geo or "", Decimal(1))

    def dearest_cost(self, usage: Usage, at: date | datetime) -> Decimal:
        """What `usage` costs at the dearest price the table has on that day (the most of each model's cost): the
        estimate of a call answered under a model id the table lacks, which is never counted as $0."""
        costs = []
        for model in self.models:
            try:
                costs.append(self.cost(model, usage, at))
            except UnknownModel:  # not priced yet on that day
                continue
        return max(costs, default=Decimal(0))

    def worst_case(self, model: str, input_tokens: int, output_tokens: int, at: date | datetime, *,
                   batch: bool = False, cache_write: str | None = None) -> Decimal:
        """The most a call can cost with at most these many input and output tokens: the band of that prompt
        size, the batch discount only for batch requests, and the dearest inference-geo multiplier. With
        `cache_write` (the dearest TTL of the request's `cache_control` breakpoints, "5m" or "1h"), every input
        token is priced at the cache-write price when that is dearer: a breakpoint may write the whole prefix."""
        band = self.entry(model, at).band_for(input_tokens)
        write = band.input if cache_write is None else band.cache_write_5m if cache_write == "5m" else \
            band.cache_write_1h  # any other TTL: the dearer write price
        total = (input_tokens * max(band.input, write) + output_tokens * band.output) / MTOK
        if batch:
            total *= self.batch_multiplier
        return total * max([Decimal(1), *self.geo_multipliers.values()])

    def as_rows(self) -> list[PriceRow]:
        """Flat rows for display (Settings page, docs)."""
        rows: list[PriceRow] = []
        for model, entries in self.models.items():
            for e in entries:
                for b in e.bands:
                    rows.append(PriceRow(
                        model=model, effective_from=e.effective_from.isoformat(),
                        prompt_band=f"<= {b.max_prompt_tokens:,}" if b.max_prompt_tokens else "any",
                        input=b.input, output=b.output, cache_write_5m=b.cache_write_5m,
                        cache_write_1h=b.cache_write_1h, cache_read=b.cache_read,
                    ))
        return rows
