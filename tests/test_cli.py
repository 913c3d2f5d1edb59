"""End to end: the `triage` CLI against the fake Messages API and a temporary SQLite database."""

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from triage.cli import main
from triage.domain import Usage
from triage.pricing import PriceTable

TICKETS = [
    ("T-1", "I was charged twice for my subscription, please refund"),
    ("T-2", "The app crashes with error 500 when I upload"),
    ("T-3", "I forgot my password and the login link is broken [[conf=0.45]]"),
    ("T-4", "Would be nice to have dark mode, love the product"),
    ("T-5", "Refund my invoice or fix the crash, whichever [[conf=0.3]] [[conf2=0.92]]"),
    ("T-6", "=HYPERLINK(\"http://evil\") my card payment failed"),
]


def write_csv(path, rows=TICKETS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ticket_id", "body"])
        w.writerows(rows)


def expected_total(fake) -> Decimal:
    prices = PriceTable.default()
    now = datetime.now(UTC)
    total = Decimal(0)
    for u in fake.usage_log:
        usage = Usage(u["input_tokens"], u["output_tokens"], u["cache_creation"]["ephemeral_5m_input_tokens"],
                      u["cache_creation"]["ephemeral_1h_input_tokens"], u["cache_read_input_tokens"],
                      u["service_tier"])
        total += prices.cost(u["model"], usage, now)
    return total


def test_classify_csv_then_spend_matches_the_servers_usage(env, fake, tmp_path, capsys):
    src, out = tmp_path / "tickets.csv", tmp_path / "out.csv"
    write_csv(src)
    assert main(["classify", str(src), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["id"] for r in rows] == [t[0] for t in TICKETS]
    for col in ("id", "category", "confidence", "tier", "model", "escalated", "cost_usd", "status"):
        assert col in rows[0]
    by_id = {r["id"]: r for r in rows}
    assert by_id["T-1"]["category"] == "billing" and by_id["T-1"]["escalated"] == "False"
    assert by_id["T-3"]["escalated"] == "True" and by_id["T-3"]["model"] == "claude-sonnet-5-5"
    assert by_id["T-5"]["status"] == "escalated" and by_id["T-5"]["confidence"] == "0.92"
    assert all(r["status"] in ("classified", "escalated") for r in rows)
    assert len(fake.usage_log) == 6 + 2  # one Haiku call each, two escalations
    assert sum(Decimal(r["cost_usd"]) for r in rows) == expected_total(fake)

    capsys.readouterr()
    assert main(["spend", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Decimal(report["total_usd"]).quantize(Decimal("0.01")) == expected_total(fake).quantize(Decimal("0.01"))
    assert Decimal(report["total_usd"]) == expected_total(fake)  # exact, not just to the cent
    assert {r["model"] for r in report["rows"]} == {"claude-haiku-5-5", "claude-sonnet-5-5"}

    assert main(["spend"]) == 0
    table = capsys.readouterr().out
    assert "claude-haiku-5-5" in table and "total" in table


def test_reimport_makes_no_new_calls_and_csv_cells_are_neutralised(env, fake, tmp_path):
    src, out = tmp_path / "tickets.csv", tmp_path / "out.csv"
    write_csv(src)
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "first.jsonl")]) == 0
    calls = len(fake.usage_log)
    assert main(["classify", str(src), "--out", str(out)]) == 0
    assert len(fake.usage_log) == calls
    rows = list(csv.DictReader(open(out)))
    assert all(r["cost_usd"] == "0E-12" or Decimal(r["cost_usd"]) == 0 for r in rows)
    first = [json.loads(line) for line in open(tmp_path / "first.jsonl")]
    assert {r["status"] for r in first} <= {"classified", "needs_review"}
    assert not any(r["escalated"] for r in first)


def test_stdin_jsonl_output_and_sonnet_only(env, fake, monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("my invoice is wrong\nplease add a feature\n"))
    assert main(["classify", "-", "--tier", "sonnet"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["category"] for r in rows] == ["billing", "product_feedback"]
    assert {r["model"] for r in rows} == {"claude-sonnet-5-5"} and len(fake.usage_log) == 2


def test_escalate_by_id_and_below(env, fake, tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text("charged twice refund\nrefund or crash [[conf=0.75]]\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    assert main(["escalate", "--below", "0.8"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["escalated"] and rows[0]["tier"] == "tier2"
    assert main(["escalate", "--id", "1"]) == 0
    assert sum(1 for u in fake.usage_log if "sonnet" in u["model"]) == 2
    assert main(["escalate", "--id", "999"]) == 2


def test_failed_then_retry(env, fake, tmp_path, monkeypatch):
    from tests.fake_anthropic import Error

    src = tmp_path / "t.txt"
    src.write_text("my password reset mail never comes\n")
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "2")
    fake.push(*[Error(529, "overloaded_error", "Overloaded")] * 2)
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 4
    row = json.loads(open(tmp_path / "o.jsonl").readline())
    assert row["status"] == "failed" and "529" in row["reason"]
    assert main(["retry"]) == 0
    assert main(["classify", str(src), "--out", str(tmp_path / "o2.jsonl")]) == 0
    assert json.loads(open(tmp_path / "o2.jsonl").readline())["status"] == "classified"


def test_rejected_key_stops_with_a_clear_message(env, fake, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong")
    src = tmp_path / "t.txt"
    src.write_text("\n".join(f"ticket {i}" for i in range(30)))
    assert main(["classify", str(src), "--concurrency", "2", "--out", str(tmp_path / "o.jsonl")]) == 3
    assert "the API key was rejected" in capsys.readouterr().err
    assert len(fake.requests) <= 2
    rows = [json.loads(line) for line in open(tmp_path / "o.jsonl")]
    assert len(rows) == 30 and {r["status"] for r in rows} == {"pending"}


def test_no_key_and_bad_input_are_explained(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    src = tmp_path / "t.txt"
    src.write_text("hello\n")
    assert main(["classify", str(src), "--tier", "haiku"]) == 3
    assert "No ANTHROPIC_API_KEY is set" in capsys.readouterr().err
    monkeypatch.setenv("ANTHROPIC_API_KEY", "x")
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["classify", str(bad)]) == 2
    assert "--text-column" in capsys.readouterr().err
    assert main(["classify", str(tmp_path / "missing.csv")]) == 2
    assert main(["spend"]) == 0 and "no model calls" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["classify"], ["escalate"], ["spend"], ["retry"], ["worker"], ["db"]])
def test_help_documents_every_command(command):
    out = subprocess.run([sys.executable, "-m", "triage.cli", *command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "usage: triage" in out
    if command == ["classify"]:
        for flag in ("--text-column", "--id-column", "--tier", "--threshold", "--concurrency", "--out"):
            assert flag in out


def test_db_upgrade(db_url, monkeypatch, capsys):
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    assert main(["db", "upgrade"]) == 0 and "latest schema" in capsys.readouterr().out


def test_runs_lists_who_started_what_and_how_it_ended(env, fake, tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes [[conf=0.3]]\n")
    assert main(["classify", str(src), "--operator", "maria", "--out", str(tmp_path / "o.jsonl")]) == 0
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["started_by"], run["status"], run["tickets"], run["new"]) == ("maria", "finished", 2, 2)
    assert run["classified"] == 1 and run["escalated"] == 1 and run["source"].endswith("t.txt")
    assert main(["runs"]) == 0 and "maria" in capsys.readouterr().out


def test_a_monthly_budget_pauses_api_calls_once_reached(env, fake, tmp_path, monkeypatch, capsys):
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes\n")
    monkeypatch.setenv("TRIAGE_MONTHLY_BUDGET_USD", "0.00001")  # about one Haiku call
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0  # under budget when it starts
    calls = len(fake.usage_log)
    src.write_text("please add dark mode\n")
    assert main(["classify", str(src)]) == 5
    assert "reached the monthly budget" in capsys.readouterr().err
    assert len(fake.usage_log) == calls
    assert main(["worker", "--once"]) == 5
    monkeypatch.setenv("TRIAGE_MONTHLY_BUDGET_USD", "100")
    assert main(["worker", "--once"]) == 0 and len(fake.usage_log) == calls + 1


def test_reclassify_calls_the_models_again_and_ignores_old_answers(env, fake, tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "a.jsonl")]) == 0
    first = len(fake.usage_log)
    assert main(["classify", str(src), "--reclassify", "--out", str(tmp_path / "b.jsonl")]) == 0
    assert len(fake.usage_log) == 2 * first  # each ticket asked again, not answered from its old calls
    rows = [json.loads(line) for line in open(tmp_path / "b.jsonl")]
    assert all(Decimal(r["cost_usd"]) > 0 and r["status"] == "classified" for r in rows)
