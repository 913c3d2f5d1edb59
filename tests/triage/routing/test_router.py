import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from tests.support.fakes import Answer, ScriptedProvider, error
from triage import domain as base
from triage import taxonomy
from triage.domain import CLASSIFIED, ESCALATED, FAILED, NEEDS_REVIEW, CallResult, Outcome
from triage.errors import KeyRejected
from triage.routing.router import Router, decide, should_escalate

TAX = taxonomy.default()


def run(tier1_answers: Iterable[Answer], tier2_answers: Iterable[Answer] = (), mode: str = "auto",
        threshold: float = 0.7, prior: list[CallResult] | None = None
        ) -> tuple[Outcome, ScriptedProvider, ScriptedProvider]:
    t1 = ScriptedProvider(1, "claude-haiku-5-5", tier1_answers)
    t2 = ScriptedProvider(2, "claude-sonnet-5-5", list(tier2_answers))
    out = asyncio.run(Router(t1, t2, TAX, threshold=threshold, mode=mode).classify("ticket", prior=prior))
    return out, t1, t2


def test_confident_tier1_is_final() -> None:
    out, _, t2 = run([("billing", 0.9)])
    assert (out.status, out.category, out.tier, out.escalated) == (CLASSIFIED, "billing", 1, False)
    assert not t2.calls


def test_low_confidence_escalates_and_tier2_wins() -> None:
    out, _, t2 = run([("billing", 0.5)], [("account", 0.9)])
    assert (out.status, out.category, out.tier, out.escalated) == (ESCALATED, "account", 2, True)
    assert len(out.calls) == 2 and len(t2.calls) == 1


def test_threshold_is_configurable_and_strict() -> None:
    assert run([("billing", 0.69)], [("billing", 0.9)], threshold=0.7)[0].escalated
    assert not run([("billing", 0.7)], threshold=0.7)[0].escalated
    assert not run([("billing", 0.5)], threshold=0.4)[0].escalated


@pytest.mark.parametrize("answer", [
    {"category": "unknown", "confidence": 0.99, "outcome": base.UNKNOWN_LABEL},
    {"category": None, "outcome": base.UNPARSED},
    {"category": "billing", "confidence": None, "outcome": base.UNPARSED},
    {"outcome": base.REFUSAL},
    {"outcome": base.TRUNCATED},
])
def test_unusable_tier1_answers_escalate(answer: dict[str, Any]) -> None:
    out, t1, t2 = run([answer], [("technical", 0.95)])
    assert (out.status, out.category, out.confidence, out.tier, out.escalated) == (ESCALATED, "technical", 0.95, 2,
                                                                                    True)
    assert len(t1.calls) == len(t2.calls) == 1


def test_tier2_unsure_or_unusable_needs_review() -> None:
    out, _, _ = run([("billing", 0.3)], [("billing", 0.5)])
    assert (out.status, out.reason, out.tier) == (NEEDS_REVIEW, "confidence 0.50 under the threshold 0.70", 2)
    out, _, _ = run([("billing", 0.3)], [{"outcome": base.REFUSAL, "problem": "the model refused"}])
    assert (out.status, out.category, out.reason) == (NEEDS_REVIEW, None, "the model refused")


def test_tier1_error_is_failed_not_escalated() -> None:
    out, _, t2 = run([error()])
    assert (out.status, out.reason, out.escalated) == (FAILED, "API error 529 after 5 attempts", False)
    assert not t2.calls


def test_failed_escalation_keeps_tier1_label_and_is_retryable() -> None:
    out, _, _ = run([("billing", 0.4)], [error()])
    assert (out.status, out.category, out.tier, out.reason) == (FAILED, "billing", 1, "API error 529 after 5 attempts")


def test_haiku_only_and_sonnet_only_modes() -> None:
    out, _, t2 = run([("billing", 0.2)], mode="haiku")
    assert out.status == NEEDS_REVIEW and not t2.calls
    out, t1, _ = run([], [("billing", 0.9)], mode="sonnet")
    assert out.status == CLASSIFIED and out.tier == 2 and not t1.calls and not out.escalated


def test_prior_calls_are_reused_not_repeated() -> None:
    first, _, _ = run([("billing", 0.4)], [error()])
    again, t1, t2 = run([], [("billing", 0.9)], prior=[c for c in first.calls if c.answered])
    assert not t1.calls and len(t2.calls) == 1
    assert (again.status, again.category, again.tier, len(again.calls)) == (ESCALATED, "billing", 2, 2)


def test_rejected_key_raises_to_stop_the_run() -> None:
    with pytest.raises(KeyRejected, match="rejected"):
        run([error(base.AUTH, "the API key was rejected (401)")])


def test_escalate_on_demand_and_decide_edge_cases() -> None:
    t1 = ScriptedProvider(1, "h", [("billing", 0.95)])
    t2 = ScriptedProvider(2, "s", [("account", 0.9)])
    router = Router(t1, t2, TAX)
    first = asyncio.run(router.classify("x"))
    assert first.status == CLASSIFIED
    out = asyncio.run(router.escalate("x", first.calls))
    assert out.status == ESCALATED and out.category == "account"
    assert (decide([], 0.7).status, decide([], 0.7).reason) == ("pending", None)
    assert not should_escalate(first.calls[0], 0.7) and should_escalate(first.calls[0], 0.96)
    with pytest.raises(ValueError, match="tier must be one of auto, haiku, sonnet"):
        Router(t1, t2, TAX, mode="gpt")
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        Router(t1, t2, TAX, threshold=1.5)
