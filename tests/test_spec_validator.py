"""The validator the fake server applies to every request body must be able to fail."""

import pytest

from tests.fake_anthropic import request_problems
from triage import taxonomy
from triage.pricing import PriceTable
from triage.providers.anthropic_provider import AnthropicProvider

GOOD = AnthropicProvider(None, "claude-haiku-5-5", 1, PriceTable.default()).request_body(
    "My card was charged twice", taxonomy.default())


def test_the_engine_request_body_is_valid():
    assert request_problems(GOOD) == []


@pytest.mark.parametrize("mutate, needle", [
    (lambda b: b.pop("max_tokens"), "max_tokens"),
    (lambda b: b.update(max_tokens="lots"), "max_tokens"),
    (lambda b: b.update(temperature=0), "temperature"),
    (lambda b: b.update(bogus=True), "bogus"),
    (lambda b: b["output_config"]["format"].update(type="xml"), "output_config/format"),
    (lambda b: b["messages"].append({"role": "assistant", "content": "{"}), "prefill"),
    (lambda b: b["messages"][0].update(role="robot"), "robot"),
])
def test_the_validator_rejects_bad_bodies(mutate, needle):
    import copy

    body = copy.deepcopy(GOOD)
    mutate(body)
    problems = request_problems(body)
    assert problems and needle in " ".join(problems)
