"""What caching the static prefix (system prompt with the taxonomy) saves on input, few-shot off: input cost per
1,000 tickets at 4 and 77 categories, before (the prefix never marked without few-shot, as until issue 25) and
after (marked whenever it surely reaches the model's minimum), one ticket a request and ten.

    .venv/bin/python -m bench.bench_prefix_cache [--tickets 200] [--model claude-haiku-5-5]

Requests go through the official SDK over HTTP to the fake Messages API and its prompt cache (4 characters of the
body's JSON a token; the first request in 5 minutes writes the prefix, the next ones read it), one after another,
as steady traffic does. Input cost = each answer's usage at the price table's input, cache-write and cache-read
prices (output left out: caching does not change it). Before and after run in the same process, same tickets.
Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from unittest import mock

import anthropic

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.taxonomies import many
from triage import taxonomy
from triage.providers.anthropic_provider import AnthropicProvider
from triage.routing import fewshot
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy

PRICES = PriceTable.default()


def texts(n: int) -> list[str]:
    raw = resources.files("triage.samples").joinpath("tickets.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
    return [rows[i % len(rows)] for i in range(n)]


def never_marked(static: str, model: str) -> str | list[dict[str, object]]:
    return static  # before: without few-shot the system prompt went as a plain string


async def measure(tax: Taxonomy, tickets: list[str], per_call: int, model: str) -> tuple[Decimal, int]:
    """Input cost per 1,000 tickets and cache-read tokens, from a fresh fake API (an empty cache)."""
    with FakeAnthropic() as fake:
        client = anthropic.AsyncAnthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0, timeout=30)
        p = AnthropicProvider(client, model, 1, PRICES, base_delay=0.01)
        usages = []
        for i in range(0, len(tickets), per_call):
            chunk = tickets[i:i + per_call]
            if per_call == 1:
                usages.append((await p.classify(chunk[0], tax)).usage)
            else:
                usages.append((await p.classify_group(chunk, tax)).whole.usage)
        await client.close()
        assert not fake.invalid, fake.invalid
    now = datetime.now(UTC)
    cost = sum((PRICES.cost(model, replace(u, output_tokens=0), now) for u in usages if u), Decimal(0))
    reads = 0
    for u in usages:
        reads += u.cache_read_tokens if u else 0
    return cost / len(tickets) * 1000, reads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tickets", type=int, default=200)
    ap.add_argument("--model", default="claude-haiku-5-5")
    args = ap.parse_args()
    tickets = texts(args.tickets)
    print(f"{args.tickets} sample tickets, {args.model}, few-shot off, fake Messages API (input cost only)")
    print(f"{'categories':>10}{'per request':>12}{'before $/1k':>13}{'after $/1k':>12}{'after/before':>13}"
          f"{'cache reads':>13}")
    for tax in (taxonomy.default(), many()):
        for per_call in (1, 10):
            with mock.patch.object(fewshot, "marked", never_marked):
                before, _ = asyncio.run(measure(tax, tickets, per_call, args.model))
            after, reads = asyncio.run(measure(tax, tickets, per_call, args.model))
            print(f"{len(tax.names):>10}{per_call:>12}{before:>13.5f}{after:>12.5f}{after / before:>12.2f}x"
                  f"{reads:>13,}")


if __name__ == "__main__":
    main()
