"""In-memory providers for router and service tests (fakes at the boundary; no HTTP)."""

from __future__ import annotations

from decimal import Decimal

from triage import domain as base
from triage.domain import CallResult, Usage
from triage.taxonomy import Taxonomy


class ScriptedProvider:
    """Answers from a list of (category, confidence) or CallResult kwargs dicts, or a function of the text."""

    def __init__(self, tier: int, model: str, answers=None, fn=None) -> None:
        self.tier, self.model = tier, model
        self.answers = list(answers or [])
        self.fn = fn
        self.calls: list[str] = []

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        return Decimal("0.001") * self.tier

    async def classify(self, text: str, taxonomy: Taxonomy, *, paid=None) -> CallResult:
        self.calls.append(text)
        spec = self.fn(text) if self.fn else self.answers.pop(0)
        if isinstance(spec, tuple):
            spec = {"category": spec[0], "confidence": spec[1]}
        spec = dict(spec)
        outcome = spec.pop("outcome", base.OK)
        return CallResult(self.tier, self.model, outcome, usage=Usage(100, 10),
                          cost_usd=Decimal("0.001") * self.tier, **spec)


def error(kind=base.TRANSIENT, message: str = "API error 529 after 5 attempts"):
    return {"outcome": base.ERROR, "error_kind": kind, "error": message}
