"""In-memory providers for router and service tests (fakes at the boundary; no HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from triage import domain as base
from triage.domain import CallResult, Usage
from triage.routing.gate import Reservation
from triage.taxonomy import Taxonomy

# a scripted answer: (category, confidence), or CallResult keyword arguments (`outcome` among them)
Answer = tuple[str, float] | dict[str, Any]


class ScriptedProvider:
    """Answers from a list of (category, confidence) or CallResult kwargs dicts, or a function of the text."""

    def __init__(self, tier: int, model: str, answers: Iterable[Answer] | None = None,
                 fn: Callable[[str], Answer | None] | None = None) -> None:
        self.tier, self.model = tier, model
        self.answers = list(answers or [])
        self.fn = fn
        self.calls: list[str] = []

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        return Decimal("0.001") * self.tier

    async def classify(self, text: str, taxonomy: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        self.calls.append(text)
        spec = self.fn(text) if self.fn else self.answers.pop(0)
        assert spec is not None, f"no answer scripted for {text!r}"
        if isinstance(spec, tuple):
            spec = {"category": spec[0], "confidence": spec[1]}
        spec = dict(spec)
        outcome = spec.pop("outcome", base.OK)
        return CallResult(self.tier, self.model, outcome, usage=Usage(100, 10),
                          cost_usd=Decimal("0.001") * self.tier, **spec)


def error(kind: base.ErrorKind = base.TRANSIENT, message: str = "API error 529 after 5 attempts") -> dict[str, Any]:
    return {"outcome": base.ERROR, "error_kind": kind, "error": message}
