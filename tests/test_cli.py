"""End to end: the `triage` CLI against the fake Messages API and a temporary SQLite database."""

import argparse
import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import Database
from db.migrate import open_database
from db.models import ModelCall
from tests.support.fake_anthropic import Error, FakeAnthropic, Reply
from triage.cli import main
from triage.cli.parser import build_parser
from triage.domain import Usage
from triage.spend.pricing import PriceTable

TICKETS = [
    ("T-1", "I was charged twice for my subscription, please refund"),
    ("T-2", "The app crashes with error 500 when I upload"),
    ("T-3", "I forgot my password and the login link is broken [[conf=0.45]]"),
    ("T-4", "Would be nice to have dark mode, love the product"),
    ("T-5", "Refund my invoice or fix the crash, whichever [[conf=0.3]] [[conf2=0.92]]"),
    ("T-6", "=HYPERLINK(\"http://evil\") my card payment failed"),
]
COLUMNS = ["id", "ticket_id", "category", "confidence", "priority", "language", "team", "tier", "model", "escalated",
           "cost_usd", "status", "reason"]


def write_csv(path: Path, rows: list[tuple[str, str]] = TICKETS) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ticket_id", "body"])
        w.writerows(rows)


def expected_total(fake: FakeAnthropic) -> Decimal:
    prices = PriceTable.default()
    now = datetime.now(UTC)
    total = Decimal(0)
    for u in fake.usage_log:
        usage = Usage(u["input_tokens"], u["output_tokens"], u["cache_creation"]["ephemeral_5m_input_tokens"],
                      u["cache_creation"]["ephemeral_1h_input_tokens"], u["cache_read_input_tokens"],
                      u["service_tier"])
        total += prices.cost(u["model"], usage, now)
    return total


def db_calls(db_url: str) -> list[ModelCall]:
    db = open_database(db_url)
    try:
        with db.read() as s:
            return list(s.scalars(select(ModelCall).order_by(ModelCall.id)))
    finally:
        db.dispose()


def test_classify_csv_then_spend_matches_the_servers_usage(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "tickets.csv", tmp_path / "out.csv"
    write_csv(src)
    assert main(["classify", str(src), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == COLUMNS  # the columns docs/cli.md documents, in its order
    assert [r["id"] for r in rows] == [t[0] for t in TICKETS]
    by_id = {r["id"]: r for r in rows}
    assert {i: r["status"] for i, r in by_id.items()} == {"T-1": "classified", "T-2": "classified",
                                                           "T-3": "escalated", "T-4": "classified",
                                                           "T-5": "escalated", "T-6": "classified"}
    assert by_id["T-1"]["category"] == "billing" and by_id["T-1"]["escalated"] == "False"
    assert by_id["T-3"]["escalated"] == "True" and by_id["T-3"]["model"] == "claude-sonnet-5-5"
    assert by_id["T-5"]["confidence"] == "0.92"
    assert len(fake.usage_log) == 6 + 2  # one Haiku call each, two escalations
    assert sum(Decimal(r["cost_usd"]) for r in rows) == expected_total(fake)

    capsys.readouterr()
    assert main(["spend", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Decimal(report["total_usd"]) == expected_total(fake)  # exact, not just to the cent
    assert {r["model"] for r in report["rows"]} == {"claude-haiku-5-5", "claude-sonnet-5-5"}

    assert main(["spend"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-1].split() == ["total", "8", f"{expected_total(fake):.6f}"]  # calls, then dollars
    assert {line.split()[1] for line in table[1:-1]} == {"claude-haiku-5-5", "claude-sonnet-5-5"}


def test_reimport_makes_no_new_calls_costs_nothing_and_keeps_the_labels(env: dict[str, str], fake: FakeAnthropic,
                                                                        tmp_path: Path) -> None:
    src, out = tmp_path / "tickets.csv", tmp_path / "out.csv"
    write_csv(src)
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "first.jsonl")]) == 0
    calls = len(fake.usage_log)
    assert main(["classify", str(src), "--out", str(out)]) == 0
    assert len(fake.usage_log) == calls
    rows = list(csv.DictReader(open(out)))
    assert [r["cost_usd"] for r in rows] == ["0"] * len(TICKETS)  # a plain zero, never 0E-12
    first = [json.loads(line) for line in open(tmp_path / "first.jsonl")]
    assert {r["id"]: r["status"] for r in first} == {"T-1": "classified", "T-2": "classified",
                                                     "T-3": "needs_review", "T-4": "classified",
                                                     "T-5": "needs_review", "T-6": "classified"}
    assert not any(r["escalated"] for r in first)
    assert [(r["category"], r["status"]) for r in rows] == [(r["category"], r["status"]) for r in first]


FORMULA_IDS = ["=1+2", "+SUM(A1:A9)", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0", "T-9"]
EVIL_REASON = '=HYPERLINK("http://evil.example","click")'


def test_csv_out_neutralises_cells_a_spreadsheet_would_run_as_formulas(env: dict[str, str], fake: FakeAnthropic,
                                                                       tmp_path: Path) -> None:
    src, out, jsonl = tmp_path / "tickets.csv", tmp_path / "out.csv", tmp_path / "out.jsonl"
    write_csv(src, [(ticket_id, f"my card payment failed, case {n}") for n, ticket_id in enumerate(FORMULA_IDS)])
    fake.responder = lambda body: Reply(json_body={"reason": EVIL_REASON, "category": "billing", "confidence": 0.9})
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        header, *cells = list(csv.reader(f))
    assert header == COLUMNS
    assert [row[0] for row in cells] == ["'=1+2", "'+SUM(A1:A9)", "'-2+3", "'@SUM(A1)", "'=cmd|' /C calc'!A0",
                                         "T-9"]
    assert [row[COLUMNS.index("reason")] for row in cells] == ["'" + EVIL_REASON] * len(FORMULA_IDS)
    assert [row[COLUMNS.index("category")] for row in cells] == ["billing"] * len(FORMULA_IDS)
    # JSONL is data, not a spreadsheet: the same rows keep their values as they are
    assert main(["classify", str(src), "--out", str(jsonl)]) == 0
    rows = [json.loads(line) for line in open(jsonl)]
    assert [r["id"] for r in rows] == FORMULA_IDS and [r["reason"] for r in rows] == [EVIL_REASON] * 6


def test_stdin_jsonl_output_and_sonnet_only(env: dict[str, str], fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("my invoice is wrong\nplease add a feature\n"))
    assert main(["classify", "-", "--tier", "sonnet"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["category"] for r in rows] == ["billing", "product_feedback"]
    assert {r["model"] for r in rows} == {"claude-sonnet-5-5"} and len(fake.usage_log) == 2


def test_escalate_by_id_and_below(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.txt"
    src.write_text("charged twice refund\nrefund or crash [[conf=0.75]]\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    assert main(["escalate", "--below", "0.8"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["ticket_id"] == 2 and rows[0]["escalated"] and rows[0]["tier"] == "tier2"
    assert main(["escalate", "--id", "1"]) == 0
    assert sum(1 for u in fake.usage_log if "sonnet" in u["model"]) == 2
    capsys.readouterr()
    assert main(["escalate", "--id", "999"]) == 2
    assert "999" in capsys.readouterr().err
    assert sum(1 for u in fake.usage_log if "sonnet" in u["model"]) == 2


def test_failed_then_retry(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "t.txt"
    src.write_text("my password reset mail never comes\n")
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "2")
    fake.push(*[Error(529, "overloaded_error", "Overloaded")] * 2)
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 4
    row = json.loads(open(tmp_path / "o.jsonl").readline())
    assert row["status"] == "failed" and row["reason"].startswith("API error 529 after 2 attempts")
    assert [r["status"] for r in fake.requests] == [529, 529]
    assert main(["retry"]) == 0
    assert [r["status"] for r in fake.requests] == [529, 529, 200]  # one new call, for the failed ticket
    assert main(["classify", str(src), "--out", str(tmp_path / "o2.jsonl")]) == 0
    again = json.loads(open(tmp_path / "o2.jsonl").readline())
    assert (again["status"], again["category"], again["cost_usd"]) == ("classified", "account", "0")
    assert len(fake.requests) == 3  # the re-import was answered from the database


def test_a_ticket_whose_every_attempt_times_out_fails_with_the_reason(env: dict[str, str], fake: FakeAnthropic,
                                                                      db_url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "3")
    src = tmp_path / "t.txt"
    src.write_text("my invoice is wrong [[slow=2.5]]\n")
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")]) == 4
    row = json.loads(open(tmp_path / "o.jsonl").readline())
    assert row["status"] == "failed" and row["reason"].startswith("API timed out after 3 attempts")
    assert len(fake.requests) == 3  # max_attempts, then it gave up
    (call,) = db_calls(db_url)
    assert (call.attempts, call.error_kind, call.cost_pico) == (3, "transient", 0)


def test_timeouts_are_retried_and_the_answer_is_recorded(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "3")
    slow = Reply(json_body={"reason": "late", "category": "technical", "confidence": 0.99}, delay=2.5)
    fake.push(slow, slow)  # the first two attempts time out; the third gets the keyword model's answer
    src = tmp_path / "t.txt"
    src.write_text("my invoice is wrong\n")
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")]) == 0
    row = json.loads(open(tmp_path / "o.jsonl").readline())
    assert (row["status"], row["category"], row["confidence"]) == ("classified", "billing", 0.93)
    assert len(fake.requests) == 3
    (call,) = db_calls(db_url)
    assert (call.attempts, call.outcome, call.category) == (3, "ok", "billing") and call.cost_pico > 0


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_stops_at_once_with_a_clear_message(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], status: int) -> None:
    if status == 401:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong")  # the fake answers 401 to a key it does not know
    else:  # a key the API knows, without permission here
        fake.responder = lambda body: Error(403, "permission_error", "Your API key does not have permission")
    src = tmp_path / "t.txt"
    src.write_text("\n".join(f"ticket {i}" for i in range(30)))
    assert main(["classify", str(src), "--concurrency", "2", "--out", str(tmp_path / "o.jsonl")]) == 3
    assert f"stopped: the API key was rejected ({status})" in capsys.readouterr().err
    # only the requests already in flight, each sent once: no retry, no retry storm
    assert 1 <= len(fake.requests) <= 2 and {r["status"] for r in fake.requests} == {status}
    assert len({r["body"]["messages"][0]["content"] for r in fake.requests}) == len(fake.requests)
    rows = [json.loads(line) for line in open(tmp_path / "o.jsonl")]
    assert len(rows) == 30 and {r["status"] for r in rows} == {"pending"}


def test_no_key_and_bad_input_are_explained(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
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
    assert capsys.readouterr().err == f"error: no such file: {tmp_path / 'missing.csv'}\n"
    assert main(["spend"]) == 0 and capsys.readouterr().out == "no model calls recorded yet\n"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every `triage COMMAND`, read from the parser itself, so a new command cannot be left out."""
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def squash(text: str) -> str:
    return "".join(text.split())  # help text is re-wrapped to the terminal's width


def test_top_level_help_lists_every_command_with_what_it_does() -> None:
    out = subprocess.run([sys.executable, "-m", "triage.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("usage: triage")
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {a.dest: a.help for a in sub._choices_actions}
    assert set(summaries) == set(subcommands()) and len(summaries) >= 11
    for name, summary in summaries.items():
        assert summary, f"`triage {name}` has no one-line help"
        assert re.search(rf"^\s+{name}\s", out, re.MULTILINE), name
        assert squash(summary) in squash(out), name


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_help_documents_every_option_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: triage {command}")
    for action in subcommands()[command]._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"`triage {command} {name}` has no help text"
        assert squash(action.help) in squash(out), name
        for flag in action.option_strings:
            assert re.search(rf"(^|\s){re.escape(flag)}\b", out), flag
        if not action.option_strings:  # a positional argument, shown by name or as its choices
            shown = action.metavar or ("{" + ",".join(action.choices) + "}" if action.choices else action.dest)
            assert isinstance(shown, str), shown  # one name, not a tuple of them
            assert re.search(rf"^\s+{re.escape(shown)}\s", out, re.MULTILINE), shown


def test_the_docs_show_every_command() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    block = page.split("# The command line", 1)[1].split("```", 2)[1]
    assert set(re.findall(r"^triage (\w+)", block, re.MULTILINE)) == set(subcommands())


def test_db_upgrade(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    assert main(["db", "upgrade"]) == 0 and "latest schema" in capsys.readouterr().out


def test_runs_lists_who_started_what_and_how_it_ended(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes [[conf=0.3]]\n")
    assert main(["classify", str(src), "--operator", "maria", "--out", str(tmp_path / "o.jsonl")]) == 0
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["started_by"], run["status"], run["tickets"], run["new"]) == ("maria", "finished", 2, 2)
    assert run["classified"] == 1 and run["escalated"] == 1 and run["source"].endswith("t.txt")
    assert main(["runs"]) == 0
    (line,) = capsys.readouterr().out.splitlines()[1:]
    assert line.split()[3:10] == ["maria", "finished", "2", "1", "1", "0", "0"]


def test_reclassify_calls_the_models_again_and_ignores_old_answers(env: dict[str, str], fake: FakeAnthropic,
                                                                   tmp_path: Path) -> None:
    src = tmp_path / "t.txt"
    src.write_text("refund my invoice\nthe app crashes\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "a.jsonl")]) == 0
    first = len(fake.usage_log)
    assert main(["classify", str(src), "--reclassify", "--out", str(tmp_path / "b.jsonl")]) == 0
    assert len(fake.usage_log) == 2 * first  # each ticket asked again, not answered from its old calls
    rows = [json.loads(line) for line in open(tmp_path / "b.jsonl")]
    assert all(Decimal(r["cost_usd"]) > 0 and r["status"] == "classified" for r in rows)


def settings_state(db: Database) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """What `triage settings set` may write: the stored settings and the audit trail."""
    from db.models import AuditEvent, Setting

    with db.read() as s:
        return ([(r.key, r.value) for r in s.scalars(select(Setting).order_by(Setting.key))],
                [(e.actor, e.event, e.detail) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))])


def test_settings_lists_every_setting_in_force_and_where_it_comes_from(cli_db: Database,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.actors import lead
    from triage import settings as config

    monkeypatch.setenv("TRIAGE_MONTHLY_BUDGET_USD", "50")
    monkeypatch.setenv("TRIAGE_THRESHOLD", "0.8")  # a lead's saved threshold wins over the environment
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-never-shown")
    config.save_engine(cli_db, actor=lead("maria"), threshold=0.6)
    assert main(["settings", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {f.name for f in dataclasses.fields(config.Settings)} | {"taxonomy"}
    assert shown["threshold"] == {"value": 0.6, "source": "database", "env": "TRIAGE_THRESHOLD", "editable": True}
    assert shown["monthly_budget_usd"] == {"value": 50.0, "source": "environment", "env": "TRIAGE_MONTHLY_BUDGET_USD",
                                           "editable": True}
    assert shown["per_call"] == {"value": 1, "source": "default", "env": "TRIAGE_PER_CALL", "editable": True}
    assert shown["concurrency"]["editable"] is False and shown["api_key"]["value"] == "set"
    assert shown["taxonomy"] == {"value": ["billing", "technical", "product_feedback", "account"],
                                 "source": "default", "env": "TRIAGE_TAXONOMY", "editable": False}
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "sk-never-shown" not in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert lines["threshold"].split() == ["threshold", "*", "database", "0.6"]
    assert lines["monthly_budget_usd"].split() == ["monthly_budget_usd", "*", "environment",
                                                   "(TRIAGE_MONTHLY_BUDGET_USD)", "50.0"]
    assert lines["concurrency"].split() == ["concurrency", "default", "8"]


def test_settings_set_saves_audits_and_another_process_sees_it(cli_db: Database, db_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "set", "monthly_budget_usd", "25.5", "--operator", "maria"]) == 0
    assert "monthly_budget_usd: 0 -> 25.5, saved by maria" in capsys.readouterr().out
    assert main(["settings", "set", "per_call_sonnet", "5"]) == 0
    assert main(["settings", "set", "per_call_sonnet", "none", "--operator", "lee"]) == 0  # the same as per_call
    assert main(["settings", "set", "tier1_model", " claude-haiku-5-5 "]) == 0
    stored, audit = settings_state(cli_db)
    (engine,) = [json.loads(v) for k, v in stored if k == "engine"]
    assert engine == {"monthly_budget_usd": 25.5, "per_call_sonnet": None, "tier1_model": "claude-haiku-5-5"}
    assert [(who, event) for who, event, _ in audit][:3] == [("maria", "settings.engine")] + \
        [(audit[1][0], "settings.engine"), ("lee", "settings.engine")]
    assert audit[1][0].startswith("cli:")
    assert json.loads(audit[0][2])["changed"] == {"monthly_budget_usd": [0, 25.5]}
    assert json.loads(audit[2][2])["changed"] == {"per_call_sonnet": [5, None]}

    seen = subprocess.run([sys.executable, "-m", "triage.cli", "settings", "--json"], capture_output=True,
                          text=True, check=True, env={**os.environ, "TRIAGE_DATABASE_URL": db_url}).stdout
    assert json.loads(seen)["monthly_budget_usd"] == {"value": 25.5, "source": "database",
                                                      "env": "TRIAGE_MONTHLY_BUDGET_USD", "editable": True}


@pytest.mark.parametrize("name, value, message", [
    ("thresh", "0.5", "not a setting a lead can save: thresh. The settings are: threshold, tier1_model, "
                      "tier2_model, monthly_budget_usd, daily_budget_usd, fewshot_k, per_call, per_call_sonnet"),
    ("concurrency", "3", "concurrency comes from the environment (TRIAGE_CONCURRENCY)"),
    ("threshold", "1.5", "the threshold is a confidence between 0 and 1"),
    ("threshold", "high", "the threshold must be a number, not 'high'"),
    ("monthly_budget_usd", "-1", "the monthly budget is a dollar amount, 0 for none"),
    ("daily_budget_usd", "nan", "the daily budget must be a finite number"),
    ("monthly_budget_usd", "inf", "the monthly budget must be a finite number"),
    ("per_call", "0", "tickets per call is a whole number from 1 to 50"),
    ("per_call_sonnet", "2.5", "tickets per call is a whole number from 1 to 50"),
    ("fewshot_k", "99", "few-shot examples must be a whole number from 0 (off) to 20"),
    ("tier2_model", "no-such-model", "no price for model 'no-such-model'"),
    ("tier1_model", " ", "a model id cannot be empty"),
])
def test_settings_set_refuses_a_bad_name_or_value_and_writes_nothing(cli_db: Database,
                                                                     capsys: pytest.CaptureFixture[str], name: str,
                                                                     value: str, message: str) -> None:
    before = settings_state(cli_db)
    assert main(["settings", "set", name, value, "--operator", "maria"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert settings_state(cli_db) == before
