"""The validator the fake server applies to every request body must be able to fail."""

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.support.fake_anthropic import FakeAnthropic, batch_problems, request_problems, spec_path
from triage import taxonomy
from triage.providers.anthropic_provider import AnthropicProvider
from triage.spend.pricing import PriceTable

# no client: the request is only built, never sent
NO_CLIENT = AnthropicProvider(None, "claude-haiku-5-5", 1, PriceTable.default())  # type: ignore[arg-type]
GOOD = NO_CLIENT.request_body("My card was charged twice", taxonomy.default())


def test_the_engine_request_body_is_valid() -> None:
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
def test_the_validator_rejects_bad_bodies(mutate: Callable[[dict[str, Any]], object], needle: str) -> None:
    import copy

    body = copy.deepcopy(GOOD)
    mutate(body)
    problems = request_problems(body)
    assert problems and needle in " ".join(problems)


# -- the subset of the spec kept in tests/spec/ -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "tests" / "spec" / "anthropic-messages-schemas.json"
FULL_SPEC = Path(os.environ.get("TRIAGE_SPEC_PATH") or ROOT.parent / "shared" / "spec" / "anthropic-openapi.json")
needs_full_spec = pytest.mark.skipif(not FULL_SPEC.is_file() or FULL_SPEC.resolve() == SUBSET,
                                     reason=f"the full OpenAPI spec is not at {FULL_SPEC} (TRIAGE_SPEC_PATH)")


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(document: dict[str, Any], pointer: str) -> object:
    assert pointer.startswith("#/"), pointer
    node: object = document
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{pointer} does not resolve inside {SUBSET.name}"
        node = node[part]
    return node


def test_the_shipped_subset_is_closed_and_says_where_it_came_from() -> None:
    subset = json.loads(SUBSET.read_text(encoding="utf-8"))
    schemas = subset["components"]["schemas"]
    assert {"CreateMessageParams", "CreateMessageBatchParams"} <= schemas.keys()
    refs = _refs(subset)
    assert len(refs) > 100  # the Messages schemas are deeply nested; a flattened or empty subset is a bug
    for ref in refs:
        _resolve(subset, ref)
    source = subset["x-source"]
    assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]) and source["file"] and source["roots"]


def test_the_fake_validates_against_the_shipped_subset_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_SPEC_PATH", raising=False)
    assert spec_path() == SUBSET


@needs_full_spec
def test_the_subset_is_what_refresh_makes_from_the_full_spec() -> None:
    from tests.spec import refresh

    shipped = json.loads(SUBSET.read_text(encoding="utf-8"))["components"]["schemas"]
    assert refresh.build(FULL_SPEC)["components"]["schemas"] == shipped, \
        f"tests/spec is stale: python tests/spec/refresh.py {FULL_SPEC}"


BATCH = {"requests": [{"custom_id": "t-1", "params": GOOD}]}


@needs_full_spec
@pytest.mark.parametrize("make, check, valid", [
    (lambda: GOOD, request_problems, True),
    (lambda: {**GOOD, "max_tokens": "lots", "bogus": 1}, request_problems, False),
    (lambda: {**GOOD, "messages": [{"role": "robot", "content": [{"type": "image", "source": {}}]}]},
     request_problems, False),
    (lambda: {**GOOD, "tools": [{"name": "x", "input_schema": {"type": "object"}}], "tool_choice": {"type": "no"}},
     request_problems, False),
    (lambda: {**GOOD, "system": [{"type": "text", "text": "s", "cache_control": {"type": "forever"}}]},
     request_problems, False),
    (lambda: BATCH, batch_problems, True),
    (lambda: {"requests": [{"custom_id": 7, "params": {**GOOD, "thinking": {"type": "sometimes"}}}]},
     batch_problems, False),
])
def test_the_subset_validates_exactly_like_the_full_spec(make: Callable[[], dict[str, Any]],
                                                         check: Callable[[dict[str, Any], Path], list[str]],
                                                         valid: bool) -> None:
    body = make()
    problems = check(body, SUBSET)
    assert problems == check(body, FULL_SPEC)
    assert (problems == []) == valid, problems


def test_a_test_that_sends_no_body_needs_no_spec(tmp_path: Path) -> None:
    """A pure unit test runs with the spec gone; a body sent to the fake then fails the test, saying why."""
    missing = tmp_path / "absent.json"
    env = {**os.environ, "TRIAGE_SPEC_PATH": str(missing), "PYTHONPATH": str(ROOT)}
    unit = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/triage/routing/test_parsing.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert unit.returncode == 0, unit.stdout[-2000:]
    with FakeAnthropic() as server, mock.patch.dict(os.environ, {"TRIAGE_SPEC_PATH": str(missing)}):
        request = urllib.request.Request(server.base_url + "/v1/messages", data=json.dumps(GOOD).encode(),
                                         headers={"x-api-key": server.api_key, "content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 400
        assert f"no OpenAPI spec at {missing}" in answer.value.read().decode()
        assert server.invalid
