"""Tier 1 through the Message Batches API (fake server, real SDK): half price, exact, escalations live."""

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal

from tests.fake_anthropic import Error, batch_problems
from triage.cli import main
from triage.domain import Usage
from triage.pricing import PriceTable

TICKETS = [("B-1", "I was charged twice, please refund"), ("B-2", "The app crashes on upload"),
           ("B-3", "refund or crash? [[conf=0.4]]")]


def write(path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows(TICKETS)


def test_batch_is_half_price_and_unsure_tickets_escalate_live(env, fake, tmp_path, capsys):
    fake.batch_polls = 2  # "in_progress" twice before it ends
    src, out = tmp_path / "t.csv", tmp_path / "o.jsonl"
    write(src)
    assert main(["classify", str(src), "--batch", "--poll", "0.05", "--out", str(out)]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["B-1"]["status"] == "classified" and rows["B-3"]["status"] == "escalated"
    assert rows["B-3"]["model"] == "claude-sonnet-5-5"
    batch_usage = [u for u in fake.usage_log if u["service_tier"] == "batch"]
    live = [u for u in fake.usage_log if u["service_tier"] == "standard"]
    assert len(batch_usage) == 3 and len(live) == 1 and "sonnet" in live[0]["model"]
    prices, now = PriceTable.default(), datetime.now(UTC)

    def cost(u):
        return prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"], service_tier=u["service_tier"]),
                           now)

    haiku_full = prices.cost("claude-haiku-5-5", Usage(batch_usage[0]["input_tokens"],
                                                       batch_usage[0]["output_tokens"]), now)
    assert cost(batch_usage[0]) == haiku_full / 2
    assert sum(Decimal(r["cost_usd"]) for r in rows.values()) == sum(cost(u) for u in fake.usage_log)
    capsys.readouterr()
    assert main(["spend", "--json"]) == 0
    assert Decimal(json.loads(capsys.readouterr().out)["total_usd"]) == sum(cost(u) for u in fake.usage_log)
    assert main(["collect"]) == 0  # nothing left waiting


def test_submit_now_collect_later_and_errored_requests_are_retryable(env, fake, tmp_path, capsys):
    src = tmp_path / "t.csv"
    write(src)
    assert main(["classify", str(src), "--batch", "--no-wait"]) == 0
    assert "triage collect" in capsys.readouterr().err
    assert main(["classify", str(src), "--out", str(tmp_path / "again.jsonl")]) == 0  # held: not sent again
    assert not any(r["body"] and r["path"] == "/v1/messages" for r in fake.requests)
    fake.push(Error(500, "api_error", "internal"))  # the first result line errors
    assert main(["collect", "--poll", "0.05"]) == 4
    assert "1 failed" in capsys.readouterr().err
    assert main(["retry"]) == 0


def test_batch_bodies_are_validated():
    assert batch_problems({"requests": []})  # at least one request
    bad = {"requests": [{"custom_id": "x", "params": {"model": "m", "max_tokens": 1, "temperature": 0,
                                                      "messages": [{"role": "user", "content": "hi"}]}}]}
    assert any("temperature" in p for p in batch_problems(bad))
