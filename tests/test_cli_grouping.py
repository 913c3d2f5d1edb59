"""`--per-call N` on the command line (classify, escalate, retry, worker), TRIAGE_PER_CALL, and what spend and
quality then report. The real CLI against the fake Messages API and a temporary SQLite database."""

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from db.migrate import open_database
from db.models import ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Error, FakeAnthropic, keyword_label
from tests.test_cli import expected_total
from triage.cli import main
from triage.domain import from_pico
from triage.errors import InputError
from triage.settings import Settings
from triage.work import runs

TEXTS = ["I was charged twice on my invoice", "I cannot log in to my account", "the app shows an error on start",
         "I wish you had dark mode", "my invoice is wrong", "password reset never arrives",
         "refund the charge, the app shows an error"]  # the last: two subjects, tier 1 is unsure


def write(tmp_path: Path, texts: Sequence[str] = TEXTS) -> str:
    path = tmp_path / "t.txt"
    path.write_text("\n".join(texts) + "\n")
    return str(path)


def group_sizes(fake: FakeAnthropic, model: str = "haiku") -> list[int]:
    return [r["body"]["messages"][0]["content"].count('<ticket id="') or 1 for r in fake.requests
            if r.get("status") == 200 and model in r["body"]["model"]]


def calls(db_url: str) -> list[ModelCall]:
    db = open_database(db_url)
    with db.read() as s:
        rows = list(s.scalars(select(ModelCall)))
    db.dispose()
    return rows


def test_classify_per_call_groups_tier_1_and_tier_2_and_costs_add_up(env: dict[str, str], fake: FakeAnthropic,
                                                                     db_url: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path), "--per-call", "4", "--per-call-sonnet", "2"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["category"] for r in out] == [keyword_label(t)[0] for t in TEXTS]
    assert sorted(group_sizes(fake)) == [3, 4] and group_sizes(fake, "sonnet") == [1]  # one unsure: alone
    rows = calls(db_url)
    assert sum((from_pico(r.cost_pico) for r in rows), 0) == expected_total(fake)
    assert sorted({(r.group_size, r.tier) for r in rows}) == [(1, 2), (3, 1), (4, 1)]
    assert main(["spend", "--json"]) == 0
    spend = json.loads(capsys.readouterr().out)
    assert [(r["tier"], r["requests"], r["calls"]) for r in spend["rows"]] == [(1, 2, 7), (2, 1, 1)]


def test_the_environment_sets_the_default_and_the_flag_wins(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_PER_CALL", "7")
    assert main(["classify", write(tmp_path), "--tier", "haiku"]) == 0
    assert group_sizes(fake) == [7]
    fake.requests.clear()
    assert main(["classify", write(tmp_path), "--tier", "haiku", "--reclassify", "--per-call", "1"]) == 0
    assert group_sizes(fake) == [1] * 7


@pytest.mark.parametrize("value", ["0", "51"])
def test_a_size_out_of_range_is_refused_before_anything_is_sent(env: dict[str, str], fake: FakeAnthropic,
                                                                tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                value: str) -> None:
    assert main(["classify", write(tmp_path), "--per-call", value]) == 2
    assert "--per-call is a whole number from 1 to 50" in capsys.readouterr().err
    assert fake.requests == []
    with pytest.raises(InputError, match="TRIAGE_PER_CALL is a whole number from 1 to 50"):
        Settings.from_env({"TRIAGE_PER_CALL": value})


def batch_groups(fake: FakeAnthropic) -> list[int]:
    """Tickets per request of every Message Batch the fake received."""
    return [r["params"]["messages"][0]["content"].count('<ticket id="') or 1 for b in fake.batches.values()
            for r in b["requests"]]


def test_batch_requests_carry_several_tickets_and_the_money_adds_up(env: dict[str, str], fake: FakeAnthropic,
                                                                    db_url: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path), "--batch", "--poll", "0.05", "--per-call", "3"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["category"] for r in out] == [keyword_label(t)[0] for t in TEXTS]
    assert batch_groups(fake) == [3, 3, 1]  # a group of one is the single-ticket request
    assert [r["status"] for r in out][-1] == "escalated"  # unsure in the batch: Sonnet live
    rows = calls(db_url)
    assert sum((from_pico(r.cost_pico) for r in rows), 0) == expected_total(fake)
    batch_rows = [r for r in rows if r.service_tier == "batch"]
    assert sorted(r.group_size for r in batch_rows) == [1, 3, 3, 3, 3, 3, 3]
    assert len({r.request_id for r in batch_rows}) == 3


def test_batch_tickets_without_a_clean_answer_are_asked_again_alone_live(env: dict[str, str], fake: FakeAnthropic,
                                                                         db_url: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    texts = [TEXTS[0], TEXTS[1], TEXTS[2] + " [[skip]]", TEXTS[3], TEXTS[4] + " [[twice]]", TEXTS[5]]
    fake.group_faults.extend(["refuse"])  # the first group's answer is refused as a whole
    assert main(["classify", write(tmp_path, texts), "--tier", "haiku", "--batch", "--poll", "0.05",
                 "--per-call", "2"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["category"] for r in out] == [keyword_label(t)[0] for t in texts]
    assert batch_groups(fake) == [2, 2, 2]
    live = [r["body"]["messages"][0]["content"] for r in fake.requests if r["path"] == "/v1/messages"]
    assert all(c.startswith("<ticket>\n") for c in live)  # each asked again alone
    assert sorted(live) == sorted(f"<ticket>\n{texts[i]}\n</ticket>" for i in (0, 1, 2, 4))  # refused, skipped, twice
    rows = calls(db_url)
    assert sum((from_pico(r.cost_pico) for r in rows), 0) == expected_total(fake)


def test_escalate_retry_and_worker_take_per_call(env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake.push(*[Error(400, "invalid_request_error", "scripted")])  # the first group fails: its tickets fail
    assert main(["classify", write(tmp_path, TEXTS[:6]), "--tier", "haiku", "--per-call", "3"]) == 4
    assert main(["retry", "--per-call", "3"]) == 0  # the failed three, asked again as one request
    assert group_sizes(fake)[-1] == 3
    db = open_database(db_url)
    with db.read() as s:
        ids = list(s.scalars(select(Ticket.id).order_by(Ticket.id)))
    assert main(["escalate", "--id", *map(str, ids), "--per-call", "6"]) == 0
    assert group_sizes(fake, "sonnet") == [6]
    imp = runs.start_run(db, [(None, t + " again") for t in TEXTS[:5]], source="t", actor=LEAD, mode="haiku")
    assert main(["worker", "--once", "--per-call", "5"]) == 0
    assert group_sizes(fake)[-1] == 5
    with db.read() as s:
        assert {t.category for t in s.scalars(select(Ticket).where(Ticket.id.in_(imp.ticket_ids)))} == {
            keyword_label(t)[0] for t in TEXTS[:5]}
        run = s.get(Run, imp.run_id)
        assert run is not None and run.per_call is None  # queued without a size: the worker's own
    db.dispose()


def test_a_run_keeps_its_size_whoever_finishes_it(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                  tmp_path: Path) -> None:
    db = open_database(db_url)
    imp = runs.start_run(db, [(None, t) for t in TEXTS[:6]], source="t", actor=LEAD, mode="haiku", per_call=2)
    assert main(["worker", "--once"]) == 0  # this worker's default is 1; the run asked for 2
    assert group_sizes(fake) == [2, 2, 2]
    with db.read() as s:
        assert {t.status for t in s.scalars(select(Ticket).where(Ticket.id.in_(imp.ticket_ids)))} == {"classified"}
    db.dispose()


def test_quality_reports_accuracy_by_group_size(env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path, TEXTS[:4]), "--tier", "haiku", "--per-call", "4"]) == 0
    capsys.readouterr()
    labels = tmp_path / "labels.csv"
    labels.write_text("text,label\n" + "".join(f"{t},{keyword_label(t)[0]}\n" for t in TEXTS[:4]))
    assert main(["label", str(labels), "--operator", "olga", "--no-retrain"]) == 0
    capsys.readouterr()
    assert main(["quality", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["by_group_size"] == [{"tier": 1, "name": "Haiku", "tickets_per_request": "2-5", "n": 4,
                                        "accuracy": 1.0, "ece": pytest.approx(0.07), "mean_confidence": 0.93}]
    assert main(["quality"]) == 0
    assert "by tickets per request" in capsys.readouterr().out
