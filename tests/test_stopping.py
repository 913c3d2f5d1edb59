"""Stopping cleanly: real `python -m triage.cli` processes against the fake API with slow replies, stopped with
SIGTERM, SIGINT or SIGKILL mid-run. What the fake API billed is compared with what the database holds."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.migrate import open_database
from db.models import CallAttempt, ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Error, FakeAnthropic
from triage.cli import main
from triage.domain import Usage, from_pico
from triage.spend.pricing import PriceTable
from triage.work import runs

ROOT = Path(__file__).resolve().parents[1]
N = 40


def billed(fake: FakeAnthropic) -> tuple[int, Decimal]:
    prices, now = PriceTable.default(), datetime.now(UTC)
    return len(fake.usage_log), sum((prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"]), now)
                                     for u in fake.usage_log), Decimal(0))


def on_the_books(db: Database) -> tuple[int, Decimal]:
    with db.read() as s:
        n, pico = s.execute(select(func.count(), func.coalesce(func.sum(ModelCall.cost_pico), 0))
                            .where(ModelCall.outcome != "error")).one()
    return n, from_pico(pico)


def start(env: dict[str, str], *args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "triage.cli", *args], env={**env, "PYTHONPATH": str(ROOT)},
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_calls(db: Database, proc: subprocess.Popen[str], n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_the_books(db)[0] >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no calls recorded in time")


def prepare(command: str, env: dict[str, str], fake: FakeAnthropic, db: Database, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Queue the work `command` will do; return its arguments."""
    text = "\n".join(f"ticket {i}: I was charged twice, please refund" for i in range(N)) + "\n"
    if command == "classify":
        src = tmp_path / "t.txt"
        src.write_text(text)
        return ["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")]
    if command == "worker":
        runs.start_run(db, actor=LEAD, items=[(None, t) for t in text.splitlines()], source="queued", mode="haiku")
        return ["worker"]
    src = tmp_path / "t.txt"
    src.write_text(text)
    if command == "retry":
        monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "1")
        fake.push(*[Error(529, "overloaded_error", "Overloaded")] * N)
        assert main(["classify", str(src), "--tier", "haiku"]) == 4
        return ["retry"]
    assert main(["classify", str(src), "--tier", "haiku"]) == 0  # escalate: Haiku has labelled them
    return ["escalate", "--below", "1.0"]


@pytest.mark.parametrize("command,sig", [("classify", signal.SIGTERM), ("classify", signal.SIGINT),
                                         ("worker", signal.SIGTERM), ("retry", signal.SIGTERM),
                                         ("escalate", signal.SIGINT)])
def test_a_signal_stops_cleanly_and_every_billed_call_is_recorded(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  command: str, sig: signal.Signals) -> None:
    db = open_database(db_url)
    args = prepare(command, env, fake, db, tmp_path, monkeypatch)
    before = on_the_books(db)[0]
    fake.delay = 1.0  # every answer takes a second: there are calls in flight when the signal lands
    proc = start(dict(os.environ), *args, "--concurrency", "4")
    wait_for_calls(db, proc, before + 4)
    proc.send_signal(sig)
    stopped_at = time.monotonic()
    err = proc.communicate(timeout=60)[1]
    assert time.monotonic() - stopped_at < 15, "the wait for calls in flight is bounded"
    assert proc.returncode == 128 + sig, err
    assert f"stopped by signal {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert on_the_books(db) == billed(fake), "every call the API billed is recorded, none twice"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 0, "no call left open or lost"
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.claimed_by.is_not(None))) == 0
        if command != "worker":
            run = s.scalars(select(Run).order_by(Run.id.desc())).first()
            assert run is not None
            assert (run.status, run.message) == ("stopped", f"stopped by signal {signal.Signals(sig).name}")
        if command != "escalate":
            left = s.scalars(select(Ticket).where(Ticket.status == "pending")).all()
            said = [("stopped by signal" in (t.status_reason or "")) for t in left]
            assert left and (any(said) if command == "worker" else all(said))  # a worker's queue is everyone's
    fake.delay = 0
    assert main(["worker", "--once"]) == 0
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
        tier1 = s.execute(select(ModelCall.ticket_id, func.count()).where(ModelCall.tier == 1,
                                                                          ModelCall.outcome != "error")
                          .group_by(ModelCall.ticket_id)).all()
        assert len(tier1) == N and max(n for _, n in tier1) == 1, "nothing was bought twice"
    db.dispose()


def test_a_second_signal_cuts_the_calls_in_flight_off_and_books_them_as_probably_billed(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(db_url)
    items = [(None, f"ticket {i}: refund me") for i in range(N)]
    runs.start_run(db, items, actor=LEAD, source="queued", mode="haiku")
    fake.delay = 0.5
    proc = start(dict(os.environ), "worker", "--once", "--concurrency", "4")
    wait_for_calls(db, proc, 4)
    fake.delay = 20  # the calls now in flight would keep the worker waiting
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert "calls were cut off in flight" in err
    with db.read() as s:
        lost = s.scalars(select(CallAttempt)).all()
        assert lost and {a.state for a in lost} == {"lost"}
        assert all(a.note is not None and "stopped by signal SIGTERM" in a.note for a in lost)
    capsys.readouterr()
    assert main(["spend"]) == 0
    assert f"in {len(lost)} interrupted calls (estimated" in capsys.readouterr().out
    db.dispose()


def test_after_sigkill_the_restart_books_the_lost_calls_as_probably_billed(env: dict[str, str], fake: FakeAnthropic,
                                                                           db_url: str, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(db_url)
    src = tmp_path / "t.txt"
    src.write_text("\n".join(f"ticket {i}: charged twice, refund" for i in range(60)) + "\n")
    fake.delay = 1.0
    proc = start(dict(os.environ), "classify", str(src), "--tier", "haiku", "--concurrency", "8")
    wait_for_calls(db, proc, 8)
    deadline = time.monotonic() + 30
    while len(fake.requests) < on_the_books(db)[0] + 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # requests have reached the API and wait for their answers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.5)  # the fake answers (and bills) the requests that were in flight
    killed_billed = billed(fake)
    recorded = on_the_books(db)
    with db.read() as s:
        in_flight = s.scalars(select(func.count()).select_from(CallAttempt).where(CallAttempt.state == "open")).one()
    assert in_flight >= 1, "each request in flight was recorded as an attempt before it was sent"
    assert recorded[0] < killed_billed[0] <= recorded[0] + in_flight

    fake.delay = 0
    capsys.readouterr()
    assert main(["worker", "--once"]) == 0
    assert "calls of a process that is gone were in flight" in capsys.readouterr().err
    with db.read() as s:
        lost = s.scalars(select(CallAttempt)).all()
        assert len(lost) == in_flight and {a.state for a in lost} == {"lost"}
        estimate = from_pico(sum(a.estimated_pico for a in lost))
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
    unrecorded = killed_billed[1] - recorded[1]
    assert 0 < unrecorded <= estimate, "the estimate covers what was billed and lost"
    assert main(["spend", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["interrupted_calls"] == in_flight and Decimal(report["interrupted_estimate_usd"]) == estimate
    assert Decimal(report["total_usd"]) + estimate >= billed(fake)[1], "spend + estimate covers every bill"
    assert main(["spend"]) == 0
    assert f"plus up to ${estimate:.6f} in {in_flight} interrupted calls (estimated" in capsys.readouterr().out
    db.dispose()
