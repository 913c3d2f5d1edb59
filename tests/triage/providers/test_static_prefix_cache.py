"""The static prefix (system prompt with the taxonomy) is marked for the prompt cache whenever it reaches the
model's minimum, few-shot on or off, one ticket or several, Haiku and Sonnet: through the official SDK over HTTP
to the fake Messages API (every body validated against the spec), which writes the prefix on the first call and
reads it on the next ones; the Spend page's figures show the saving."""

import asyncio
from datetime import UTC, datetime, timedelta

import anthropic
import pytest

from db.engine import Database
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.taxonomies import first, many
from triage import taxonomy
from triage.domain import CallResult
from triage.providers.anthropic_provider import AnthropicProvider
from triage.routing import fewshot, prompts
from triage.routing.grouping import GroupCall
from triage.settings import Settings
from triage.spend import fewshot as spend_fewshot
from triage.spend.pricing import PriceTable
from triage.work import runs, services

MANY = many()
PRICES = PriceTable.default()


def client(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0, timeout=10)


def ticket(i: int) -> str:
    key = MANY.names[i % len(MANY.names)]
    return f"ticket {i}: something about {key.replace('_', ' ')} [[label={key}]]"


def test_the_prefix_is_marked_only_when_it_surely_reaches_the_minimum() -> None:
    big, small = prompts.system_prompt(MANY), prompts.system_prompt(taxonomy.default())
    assert prompts.surely_at_least(big) >= 512 > prompts.surely_at_least(small)
    for model in ("claude-haiku-5-5", "claude-sonnet-5-5"):
        p = prompts.request_prefix(big, None, model)
        assert p.cached and p.system == [{"type": "text", "text": big, "cache_control": {"type": "ephemeral"}}]
        assert p.examples is None and not p.leading
        assert prompts.request_prefix(small, None, model) == prompts.Prefix(small)  # byte for byte as before
    assert prompts.request_prefix(big, fewshot.Shots(), "claude-haiku-5-5").cached  # no examples yet: the same
    # a model whose minimum is unknown is assumed at 1,024 tokens
    sizes = [prompts.surely_at_least(prompts.system_prompt(first(n))) for n in range(2, 78)]
    marked = [prompts.request_prefix(prompts.system_prompt(first(n)), None, "claude-future-9").cached
              for n in range(2, 78)]
    assert marked == [size >= 1024 for size in sizes] and any(marked) and not all(marked)


@pytest.mark.parametrize("model", ["claude-haiku-5-5", "claude-sonnet-5-5"])
def test_a_77_category_run_without_few_shot_reads_the_prefix_from_the_cache_after_the_first_call(fake: FakeAnthropic,
                                                                                                 model: str) -> None:
    async def go() -> tuple[list[CallResult], list[GroupCall]]:
        p = AnthropicProvider(client(fake), model, 1, PRICES, base_delay=0.01)
        single = [await p.classify(ticket(i), MANY) for i in range(3)]
        grouped = [await p.classify_group([ticket(i) for i in range(j, j + 4)], MANY) for j in (10, 20)]
        await p.client.close()
        return single, grouped

    single, grouped = asyncio.run(go())
    assert not fake.invalid, fake.invalid  # every body as the API's spec wants it
    bodies = [r["body"] for r in fake.requests]
    assert len(bodies) == 5 and all(b["system"][0]["cache_control"] == {"type": "ephemeral"} for b in bodies)
    assert len({str(b["system"]) for b in bodies}) == 1  # the same bytes single or grouped
    assert [r.category for r in single] == [MANY.names[i] for i in range(3)]
    log = fake.usage_log
    written = log[0]["cache_creation_input_tokens"]
    assert written >= 512 and log[0]["cache_read_input_tokens"] == 0
    assert [(u["cache_creation_input_tokens"], u["cache_read_input_tokens"]) for u in log[1:]] == [(0, written)] * 4
    assert single[1].usage.cache_read_tokens == written and single[0].usage.cache_write_5m_tokens == written
    assert all(g.whole.usage.cache_read_tokens == written for g in grouped)
    assert single[1].cost_usd < single[0].cost_usd  # the read is priced as one


def test_a_short_taxonomy_is_sent_as_before_and_caches_nothing(fake: FakeAnthropic) -> None:
    async def go() -> None:
        p = AnthropicProvider(client(fake), "claude-haiku-5-5", 1, PRICES, base_delay=0.01)
        for i in range(2):
            await p.classify(f"my invoice is wrong {i}", taxonomy.default())
        await p.client.close()

    asyncio.run(go())
    assert all(isinstance(r["body"]["system"], str) for r in fake.requests)
    assert all(u["cache_creation_input_tokens"] == u["cache_read_input_tokens"] == 0 for u in fake.usage_log)


def test_the_spend_page_shows_what_the_cache_saved_on_a_77_category_run(fake: FakeAnthropic, db: Database) -> None:
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, fewshot_k=0)
    router = services.build_router(settings, MANY, db=db, client=client(fake), mode="haiku")
    started = runs.start_run(db, [(None, ticket(i)) for i in range(6)], source="test", actor=LEAD, mode="haiku")
    assert started.run_id is not None
    report = services.classify_run(db, router, started.run_id, actor=LEAD, concurrency=1)
    assert report.processed == 6 and not fake.invalid
    today = datetime.now(UTC).date()
    spent = spend_fewshot.measure(db, today - timedelta(days=1), today + timedelta(days=1), PRICES)
    written = fake.usage_log[0]["cache_creation_input_tokens"]
    assert spent.read_tokens == 5 * written and spent.write_tokens == written
    assert spent.saved > 0 and not spent.examples  # saved without a single example
