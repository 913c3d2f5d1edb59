"""Tier 1 through the Message Batches API (fake server, real SDK): half price, exact, escalations live."""

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal

from tests.support.fake_anthropic import Error, batch_problems
from triage.cli import main
from triage.domain import Usage
from triage.spend.pricing import PriceTable

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
    assert main(["collect"]) == 0
    assert capsys.readouterr().err == "no batches waiting\n"  # collected once, never twice


def test_submit_now_collect_later_and_errored_requests_are_retryable(env, fake, tmp_path, capsys):
    src = tmp_path / "t.csv"
    write(src)
    assert main(["classify", str(src), "--batch", "--no-wait"]) == 0
    assert "triage collect" in capsys.readouterr().err
    assert main(["classify", str(src), "--out", str(tmp_path / "again.jsonl")]) == 4  # held: not sent again
    assert "wait for the Message Batch of run 1" in capsys.readouterr().err
    held = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in held] == [("B-1", "pending"), ("B-2", "pending"), ("B-3", "pending")]
    assert [r["path"] for r in fake.requests] == ["/v1/messages/batches"]
    fake.push(Error(500, "api_error", "internal"))  # the first result line errors
    assert main(["collect", "--poll", "0.05"]) == 4
    err = capsys.readouterr().err
    assert "1 failed" in err and "run 1: 1 classified, 1 escalated, 1 failed" in err
    assert [r["body"]["model"] for r in fake.requests[1:]] == ["claude-sonnet-5-5"]  # B-3's escalation, live
    assert main(["retry"]) == 0
    assert [r["body"]["model"] for r in fake.requests[1:]] == ["claude-sonnet-5-5", "claude-haiku-5-5"]  # B-1, live
    assert main(["classify", str(src), "--out", str(tmp_path / "final.jsonl")]) == 0
    final = [json.loads(line) for line in (tmp_path / "final.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"], r["category"]) for r in final] == [
        ("B-1", "classified", "billing"), ("B-2", "classified", "technical"), ("B-3", "escalated", "billing")]


def test_batch_bodies_are_validated():
    assert batch_problems({"requests": []}) == ["requests: [] should be non-empty"]
    good = {"requests": [{"custom_id": "x", "params": {"model": "m", "max_tokens": 1,
                                                       "messages": [{"role": "user", "content": "hi"}]}}]}
    assert batch_problems(good) == []
    good["requests"][0]["params"]["temperature"] = 0
    assert batch_problems(good) == ["requests/0/params: temperature: Extra inputs are not permitted"]
