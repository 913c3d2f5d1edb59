"""The priority scale: asked in the same request as the category (one structured answer), read per ticket, never
guessed; the category stays what routing trusts."""

import json
from typing import Any

import pytest

from tests.support.fake_anthropic import request_problems
from triage import taxonomy
from triage.routing import grouping, prompts
from triage.routing.parsing import parse_answer
from triage.taxonomy import Taxonomy, TaxonomyError

TAX = taxonomy.default()


def test_the_default_scale_has_four_levels_with_descriptions_in_the_prompt_and_schema() -> None:
    assert TAX.priority_names == ["urgent", "high", "normal", "low"]
    system = prompts.system_prompt(TAX)
    for p in TAX.priorities:
        assert f"- {p.name}: {p.description}" in system
    schema = prompts.output_schema(TAX)
    assert schema["properties"]["priority"]["enum"] == TAX.priority_names
    assert {"priority", "priority_confidence"} <= set(schema["required"])
    item = grouping.output_schema(TAX)["properties"]["answers"]["items"]
    assert item["properties"]["priority"]["enum"] == TAX.priority_names and "priority" in item["required"]


def test_a_team_renames_its_scale_and_it_round_trips_but_the_default_stays_implied() -> None:
    assert "priorities" not in TAX.to_dict()  # stored taxonomies are unchanged
    mine = Taxonomy.from_dict({**TAX.to_dict(), "priorities": [{"name": "p1", "description": "now"},
                                                              {"name": "p2", "description": "later"}]})
    assert mine.priority_names == ["p1", "p2"]
    assert Taxonomy.from_dict(mine.to_dict()) == mine
    assert prompts.output_schema(mine)["properties"]["priority"]["enum"] == ["p1", "p2"]


@pytest.mark.parametrize("levels", [[{"name": "only", "description": "x"}],
                                    [{"name": "unknown", "description": "x"}, {"name": "b", "description": "y"}],
                                    [{"name": "a", "description": ""}, {"name": "b", "description": "y"}],
                                    [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]])
def test_a_broken_scale_is_refused(levels: list[dict[str, str]]) -> None:
    with pytest.raises(TaxonomyError):
        Taxonomy.from_dict({**TAX.to_dict(), "priorities": levels})


def test_priority_is_read_with_its_own_confidence_and_never_spoils_the_category() -> None:
    p = parse_answer('{"reason": "r", "category": "billing", "confidence": 0.9, "priority": "Urgent", '
                     '"priority_confidence": "80%"}', TAX)
    assert (p.category, p.priority, p.priority_confidence, p.problem) == ("billing", "urgent", 0.8, None)
    for odd in ('"priority": "critical", "priority_confidence": 0.9', '"priority": "high"', ''):
        comma = ", " if odd else ""
        p = parse_answer('{"reason": "r", "category": "billing", "confidence": 0.9' + comma + odd + '}', TAX)
        assert (p.category, p.confidence, p.problem) == ("billing", 0.9, None)
        assert (p.priority, p.priority_confidence) == (None, None)  # unknown, not guessed


def _entry(k: int, category: str, priority: str) -> dict[str, Any]:
    return {"id": k, "reason": "r", "category": category, "confidence": 0.9, "priority": priority,
            "priority_confidence": 0.7}


def test_grouped_priorities_follow_their_ids_under_shuffled_missing_and_repeated_positions() -> None:
    entries = [_entry(3, "account", "low"), _entry(1, "billing", "urgent"), _entry(4, "technical", "high"),
               _entry(4, "technical", "low"), _entry(9, "billing", "urgent")]  # 2 missing, 4 twice, 9 invented
    read = grouping.read(json.dumps({"answers": entries}), TAX, 5)
    assert {k: (a.category, a.priority) for k, a in read.answers.items()} == {1: ("billing", "urgent"),
                                                                               3: ("account", "low")}
    assert set(read.problems) == {2, 4, 5}  # asked again alone, never given a neighbour's priority
    assert read.stray


def test_every_request_body_still_passes_the_api_spec() -> None:
    from triage.providers.anthropic_provider import AnthropicProvider
    from triage.spend.pricing import PriceTable

    provider = AnthropicProvider(None, "claude-haiku-5-5", 1, PriceTable.default())  # type: ignore[arg-type]
    for body in (provider.request_body("the site is down", TAX), provider.group_request_body(["a", "b"], TAX)):
        assert request_problems(body) == []
