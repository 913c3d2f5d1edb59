"""What asking for priority costs: the same one-ticket Haiku requests with and without the priority fields.

    PYTHONPATH=. .venv/bin/python -m bench.bench_priority [--model claude-haiku-5-5]

On the 315 sample tickets (triage/samples/tickets.jsonl) and the default taxonomy: the input is the system prompt,
the output schema and the ticket's block as the request carries them (`triage.routing.prompts`), the output the
answer the fake API (tests/support/fake_anthropic.py) gives for the ticket, with the scale's two fields and
without. Tokens at 4 characters each (the fake's count; `count_tokens` against a live key is the exact figure),
priced with the project's price table. The baseline, in the same run, is the requests without the priority parts
(the scale's lines in the system prompt and the two schema fields, the two answer fields). Not a test.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal

from tests.support.fake_anthropic import ticket_answer
from triage import taxonomy as taxonomy_mod
from triage.demo import load_samples
from triage.domain import Usage
from triage.routing import prompts
from triage.spend.pricing import PriceTable

CHARS_PER_TOKEN = 4


def _without_priority(system: str, schema: dict[str, object], tax: taxonomy_mod.Taxonomy) -> tuple[str, str]:
    levels = "Priorities, most urgent first:\n" + "\n".join(f"- {p.name}: {p.description}" for p in tax.priorities)
    plain = (system.replace(levels + "\n", "").replace(" and one priority", "")
             .replace("; then priority and priority_confidence from 0 to 1 that the priority is right", ""))
    fields = schema["properties"]
    assert isinstance(fields, dict)
    props = {k: v for k, v in fields.items() if not k.startswith("priority")}
    bare = {**schema, "properties": props, "required": ["reason", "category", "confidence"]}
    return plain, json.dumps(bare)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="claude-haiku-5-5")
    args = ap.parse_args()
    tax = taxonomy_mod.default()
    prices = PriceTable.load(None)
    system, schema = prompts.system_prompt(tax), prompts.output_schema(tax)
    plain_system, plain_schema = _without_priority(system, schema, tax)
    texts = [r["text"] for r in load_samples()]
    now = datetime.now(UTC)
    totals: dict[str, list[Decimal | int]] = {"with": [Decimal(0), 0, 0], "without": [Decimal(0), 0, 0]}
    for text in texts:
        block = prompts.user_message(text)
        for name, sys_text, schema_text, levels in (
                ("with", system, json.dumps(schema), tax.priority_names),
                ("without", plain_system, plain_schema, None)):
            tokens_in = (len(sys_text) + len(schema_text) + len(block)) // CHARS_PER_TOKEN
            tokens_out = max(1, len(json.dumps(ticket_answer(text, args.model, levels))) // CHARS_PER_TOKEN)
            t = totals[name]
            t[0] = Decimal(t[0]) + prices.cost(args.model, Usage(tokens_in, tokens_out), now)
            t[1] = int(t[1]) + tokens_in
            t[2] = int(t[2]) + tokens_out
    per = Decimal(1000) / len(texts)
    for name in ("without", "with"):
        cost, tin, tout = totals[name]
        print(f"{name:>8} priority: {int(tin) / len(texts):6.0f} input + {int(tout) / len(texts):5.1f} output tokens a "
              f"ticket, ${Decimal(cost) * per:.4f} per 1,000 one-ticket requests")
    added = Decimal(totals["with"][0]) - Decimal(totals["without"][0])
    ratio = Decimal(totals["with"][0]) / Decimal(totals["without"][0])
    more_out = (int(totals["with"][2]) - int(totals["without"][2])) / len(texts)
    more_in = (int(totals["with"][1]) - int(totals["without"][1])) / len(texts)
    print(f"priority adds ${added * per:.4f} per 1,000 tickets on {args.model}: {ratio:.2f}x the requests without it "
          f"({len(texts)} sample tickets; output +{more_out:.1f} tokens, input +{more_in:.0f} tokens a ticket)")


if __name__ == "__main__":
    main()
