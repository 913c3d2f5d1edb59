"""A run's mode travels with its tickets, and every command ends with an exit code that tells the truth."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import queue
from db.engine import Database
from db.migrate import open_database
from db.models import ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Error, FakeAnthropic
from triage.cli import main
from triage.settings import Settings
from triage.work import classify, runs, services

ROOT = Path(__file__).resolve().parents[1]
UNSURE = [(None, f"ticket {i}: refund or crash? [[conf=0.3]]") for i in range(6)]  # auto would ask Sonnet


def sonnet_requests(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if r["body"] and "sonnet" in r["body"]["model"])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- item 3: the run's mode and threshold, whoever processes its tickets ----------------------------------------

def test_a_haiku_run_drained_by_the_cli_worker_makes_no_sonnet_call(env: dict[str, str], fake: FakeAnthropic,
                                                                    db_url: str) -> None:
    db = open_database(db_url)
    imp = runs.start_run(db, actor=LEAD, items=UNSURE, source="dashboard", mode="haiku")
    assert main(["worker", "--once"]) == 0
    assert sonnet_requests(fake) == 0 and len(fake.usage_log) == 6
    with db.read() as s:
        assert {t.status for t in s.scalars(select(Ticket))} == {"needs_review"}  # unsure, and not escalated
        run = s.get(Run, imp.run_id)
        assert run is not None and run.status == "finished"  # a worker-drained run ends too
    db.dispose()


def test_a_haiku_run_drained_by_the_dashboard_worker_makes_no_sonnet_call(fake: FakeAnthropic, db: Database) -> None:
    runs.start_run(db, actor=LEAD, items=UNSURE, source="dashboard", mode="haiku", threshold=0.9)
    report = asyncio.run(services.work_once(db, Settings(api_key=fake.api_key, base_url=fake.base_url)))
    assert report.processed == 6 and sonnet_requests(fake) == 0
    with db.read() as s:
        assert {t.status_reason for t in s.scalars(select(Ticket))} == {"confidence 0.30 under the threshold 0.90"}


def test_a_killed_haiku_run_finished_by_a_worker_makes_no_sonnet_call(env: dict[str, str], fake: FakeAnthropic,
                                                                      db_url: str, tmp_path: Path) -> None:
    src = tmp_path / "t.txt"
    src.write_text("\n".join(f"ticket {i}: refund or crash? [[conf=0.3]]" for i in range(40)) + "\n")
    db = open_database(db_url)
    fake.delay = 0.5
    proc = subprocess.Popen([sys.executable, "-m", "triage.cli", "classify", str(src), "--tier", "haiku",
                             "--concurrency", "4"], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with db.read() as s:
            if s.scalars(select(func.count()).select_from(ModelCall)).one() >= 4:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fake.delay = 0
    assert main(["worker", "--once"]) == 0
    assert sonnet_requests(fake) == 0
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status != "needs_review")) == 0
    db.dispose()


def test_a_local_run_picked_up_by_an_api_worker_is_classified_locally(env: dict[str, str], fake: FakeAnthropic,
                                                                      db_url: str) -> None:
    db = open_database(db_url)
    items = [(None, "I was charged twice, refund me"), (None, "the app crashes on start")]
    imp = runs.start_run(db, items, actor=LEAD, source="no key", mode="local")
    assert main(["worker", "--once"]) == 0
    assert not fake.requests, "a run that asked for the local tier never reaches the API"
    with db.read() as s:
        assert {t.label_source for t in s.scalars(select(Ticket))} == {"tier0"}
        run = s.get(Run, imp.run_id)
        assert run is not None and run.status == "finished"
    db.dispose()


def test_a_retry_keeps_the_mode_of_the_run_that_failed(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "1")
    src = tmp_path / "t.txt"
    src.write_text("\n".join(t for _, t in UNSURE) + "\n")
    fake.push(*[Error(529, "overloaded_error", "Overloaded")] * 6)
    assert main(["classify", str(src), "--tier", "haiku"]) == 4
    capsys.readouterr()
    assert main(["retry"]) == 0  # unsure answers wait for review: nothing failed, nothing pending
    assert sonnet_requests(fake) == 0
    db = open_database(db_url)
    with db.read() as s:
        retry = s.scalars(select(Run).where(Run.source == "retry")).one()
        assert (retry.mode, retry.status, retry.n_tickets) == ("haiku", "finished", 6)
    db.dispose()


# -- item 5: exit codes -------------------------------------------------------------------------------------------

def test_rerunning_classify_after_a_crash_finishes_the_dead_process_tickets(env: dict[str, str], fake: FakeAnthropic,
                                                                            db_url: str, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.txt"
    src.write_text("\n".join(f"ticket {i}: refund please" for i in range(10)) + "\n")
    db = open_database(db_url)
    items = [(None, f"ticket {i}: refund please") for i in range(10)]
    runs.start_run(db, items, actor=LEAD, source=str(src), mode="haiku")
    with db.transaction() as s:  # a classify that was killed holding every ticket
        assert len(queue.claim_pending(s, f"{socket.gethostname()}:{dead_pid()}", 10)) == 10
    assert main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")]) == 0
    assert "released 10 tickets held by a process that is gone" in capsys.readouterr().err
    assert {json.loads(line)["status"] for line in open(tmp_path / "o.jsonl")} == {"classified"}
    db.dispose()


def test_tickets_held_by_a_live_process_mean_a_non_zero_exit(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classify, "HELD_WAIT_S", 1.0)  # classify waits this long for them, then says so
    src = tmp_path / "t.txt"
    src.write_text("ticket a: refund please\nticket b: the app crashes\n")
    db = open_database(db_url)
    runs.start_run(db, actor=LEAD, items=[(None, "ticket a: refund please")], source="other", mode="haiku")
    other = f"{socket.gethostname()}:{os.getppid()}"  # alive, and not this process
    with db.transaction() as s:
        queue.claim_pending(s, other, 10)
    capsys.readouterr()
    assert main(["classify", str(src), "--tier", "haiku"]) == 4
    err = capsys.readouterr().err
    assert f"1 of these tickets are being classified by another process ({other})" in err
    assert "1 tickets are still pending" in err and "done:" not in err
    db.dispose()


def _held_by_another_live_process(db_url: str, src: Path) -> tuple[Database, int]:
    src.write_text("ticket a: refund please\nticket b: the app crashes\n")
    db = open_database(db_url)
    runs.start_run(db, actor=LEAD, items=[(None, "ticket a: refund please")], source="other", mode="haiku")
    with db.transaction() as s:
        (held,) = queue.claim_pending(s, f"{socket.gethostname()}:{os.getppid()}", 10)  # alive, not this process
    return db, held.ticket_id


@pytest.mark.parametrize("other_finishes", [True, False], ids=["the other finishes", "the other gives it back"])
def test_classify_waits_for_its_tickets_another_live_process_holds(env: dict[str, str], fake: FakeAnthropic,
                                                                   db_url: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   other_finishes: bool) -> None:
    db, ticket_id = _held_by_another_live_process(db_url, tmp_path / "t.txt")

    def other_process() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # classify's own ticket is done: it waits for this one now
            with db.read() as s:
                if s.scalar(select(func.count()).select_from(Ticket).where(Ticket.run_id == 2,
                                                                          Ticket.status != "pending")):
                    break
            time.sleep(0.05)
        time.sleep(1.0)
        with db.transaction() as s:
            t = s.get_one(Ticket, ticket_id)
            if other_finishes:
                t.status, t.category, t.confidence, t.label_source = "classified", "billing", 0.9, "tier1"
            t.claimed_by, t.claimed_at = None, None

    import threading
    thread = threading.Thread(target=other_process)
    thread.start()
    capsys.readouterr()
    code = main(["classify", str(tmp_path / "t.txt"), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")])
    thread.join()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "waiting for 1 of these tickets that another process is classifying" in err and "done:" in err
    rows = {r["ticket_id"]: r for r in map(json.loads, open(tmp_path / "o.jsonl"))}
    assert {r["status"] for r in rows.values()} == {"classified"} and rows[ticket_id]["category"] == "billing"
    asked = [r for r in fake.requests if r["body"] and "ticket a" in json.dumps(r["body"])]
    assert len(asked) == (0 if other_finishes else 1)  # given back: this run classified it itself
    db.dispose()


@pytest.mark.parametrize("flags,message", [(["--concurrency", "0"], "--concurrency must be at least 1"),
                                           (["--out", "results.xlsx"], "--out must end in .jsonl or .csv"),
                                           (["--threshold", "1.5"], "--threshold is a confidence")])
def test_bad_arguments_are_refused_before_anything_is_stored_or_billed(env: dict[str, str], fake: FakeAnthropic,
                                                                       db_url: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       flags: list[str], message: str) -> None:
    src = tmp_path / "t.txt"
    src.write_text("refund please\n")
    assert main(["classify", str(src), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not fake.requests
    db = open_database(db_url)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
    db.dispose()


@pytest.mark.parametrize("command", [["worker", "--once", "--concurrency", "0"], ["retry", "--concurrency", "-1"],
                                     ["escalate", "--id", "1", "--concurrency", "0"]])
def test_every_command_refuses_a_bad_concurrency(env: dict[str, str], fake: FakeAnthropic,
                                                 capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert main(command) == 2
    assert "--concurrency must be at least 1" in capsys.readouterr().err and not fake.requests


@pytest.mark.parametrize("ident", ["99999999999999999999", "0", "-3"])
def test_an_impossible_ticket_id_is_a_clear_error(env: dict[str, str], fake: FakeAnthropic,
                                                  capsys: pytest.CaptureFixture[str], ident: str) -> None:
    assert main(["escalate", "--id", ident]) == 2
    err = capsys.readouterr().err
    assert f"no ticket with id {ident}" in err and "Traceback" not in err and "Overflow" not in err


def test_retry_and_worker_drained_runs_end_finished(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "1")
    src = tmp_path / "t.txt"
    src.write_text("refund please\nthe app crashes\n")
    fake.push(Error(529, "overloaded_error", "Overloaded"))
    assert main(["classify", str(src), "--tier", "haiku"]) == 4
    assert main(["retry"]) == 0
    db = open_database(db_url)
    runs.start_run(db, actor=LEAD, items=[(None, "please add dark mode")], source="dashboard", mode="haiku")
    assert main(["worker", "--once"]) == 0
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    statuses = {r["source"].rsplit("/", 1)[-1]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert statuses == {"t.txt": "finished", "retry": "finished", "dashboard": "finished"}
    db.dispose()
