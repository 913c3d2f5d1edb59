import pytest

from triage import taxonomy
from triage.domain import UNKNOWN
from triage.routing.parsing import normalise_confidence, parse_answer

TAX = taxonomy.default()


def test_clean_json() -> None:
    p = parse_answer('{"reason": "double charge", "category": "billing", "confidence": 0.91}', TAX)
    assert (p.category, p.confidence, p.reason, p.problem) == ("billing", 0.91, "double charge", None)


def test_prose_around_json_and_code_fences() -> None:
    text = 'Sure, here you go:\n```json\n{"category": "technical", "confidence": 0.8, "reason": "crash"}\n```\nBye'
    p = parse_answer(text, TAX)
    assert (p.category, p.confidence, p.problem) == ("technical", 0.8, None)


def test_braces_in_prose_before_the_json_are_skipped() -> None:
    p = parse_answer('Note {this} first. {"category": "account", "confidence": 0.7, "reason": "r"}', TAX)
    assert (p.category, p.confidence, p.reason, p.problem) == ("account", 0.7, "r", None)


@pytest.mark.parametrize("raw, expected", [
    ("Billing", "billing"), (" product feedback ", "product_feedback"), ("PRODUCT-FEEDBACK", "product_feedback"),
    ("shipping", UNKNOWN), ("", UNKNOWN),
])
def test_labels_are_normalised_and_outsiders_become_unknown(raw: str, expected: str) -> None:
    p = parse_answer(f'{{"category": "{raw}", "confidence": 0.9, "reason": ""}}', TAX)
    assert (p.category, p.confidence) == (expected, 0.9)
    assert p.problem == (f"label {raw!r} is not in the taxonomy" if expected == UNKNOWN else None)


@pytest.mark.parametrize("raw, expected", [
    (0.4, 0.4), (1, 1.0), (0, 0.0), ("0.75", 0.75), ("85%", 0.85), (85, 0.85),
    (-0.1, None), (250, None), ("high", None), (None, None), (True, None), (float("nan"), None),
])
def test_confidence_normalisation(raw: object, expected: float | None) -> None:
    got = normalise_confidence(raw)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_missing_confidence_is_flagged() -> None:
    p = parse_answer('{"category": "billing", "reason": "r"}', TAX)
    assert (p.category, p.confidence, p.problem) == ("billing", None, "confidence None missing or out of range")


def test_json_without_a_category_is_unreadable_and_label_is_accepted_for_it() -> None:
    p = parse_answer('{"confidence": 0.9, "reason": "r"}', TAX)
    assert (p.category, p.confidence, p.problem) == (None, None, "JSON has no category")
    p = parse_answer('{"label": "Account", "confidence": 0.9, "reason": "r"}', TAX)
    assert (p.category, p.confidence, p.problem) == ("account", 0.9, None)


def test_no_json_at_all() -> None:
    p = parse_answer("I cannot help with that.", TAX)
    assert (p.category, p.confidence, p.problem) == (None, None, "no JSON object in the answer")
    p = parse_answer("Category: Billing. I am fairly sure.", TAX)
    assert (p.category, p.confidence, p.problem) == ("billing", None, "answer was prose, label read from text")
