"""The dashboard's background worker: idle it makes no pass, new work still starts at once (wake) or within a
poll (queued by another process), and it stops cleanly, also when the server exits in the middle of a pass."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dashboard.worker import BackgroundWorker
from db import ledger, queue
from db import runs as db_runs
from db.engine import Database
from db.models import CallAttempt, ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage.settings import Settings
from triage.work import runs, services
from triage.work.host import hostname

ROOT = Path(__file__).resolve().parents[1]


def tickets(n: int, tag: str = "t") -> list[tuple[str | None, str]]:
    return [(None, f"{tag} {i}: I was charged twice, please refund invoice {i}") for i in range(n)]


def settings(fake: FakeAnthropic, **kw: Any) -> Settings:
    return Settings(api_key=fake.api_key, base_url=fake.base_url, **kw)


def wait_for(what: Callable[[], bool], timeout: float = 60.0) -> float:
    """Seconds until `what` held (fails after `timeout`)."""
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


def count(db: Database, *where: Any, of: Any = Ticket) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(of).where(*where)) or 0)


def pending(db: Database) -> int:
    return count(db, Ticket.status == "pending")


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the worker's full passes started (services.work_once, what an idle worker must not call)."""
    started: list[float] = []
    real = services.work_once

    def counted(*args: Any, **kw: Any) -> Any:
        started.append(time.monotonic())
        return real(*args, **kw)

    monkeypatch.setattr(services, "work_once", counted)
    return started


@pytest.fixture
def worker(db: Database, fake: FakeAnthropic) -> Iterator[Callable[..., BackgroundWorker]]:
    made: list[BackgroundWorker] = []

    def make(**kw: Any) -> BackgroundWorker:
        w = BackgroundWorker(db, settings(fake, concurrency=kw.pop("concurrency", 4)), **kw).start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


# -- idle cost and latency -----------------------------------------------------------------------------------------

def test_an_idle_worker_makes_no_pass_until_there_is_work(db: Database, fake: FakeAnthropic,
                                                          worker: Callable[..., BackgroundWorker],
                                                          passes: list[float]) -> None:
    w = worker(poll_seconds=0.05)
    wait_for(lambda: len(passes) == 1)  # the first pass, at start (recovery after a restart)
    time.sleep(1.0)  # ~20 polls with nothing to do
    assert len(passes) == 1 and not fake.requests
    queued = time.monotonic()
    runs.start_run(db, actor=LEAD, items=tickets(3), source="cli", mode="haiku")  # another process: no wake
    wait_for(lambda: pending(db) == 0)
    assert len(passes) >= 2 and passes[1] - queued < 1.0  # picked up at the next poll
    assert len(fake.usage_log) == 3 and w.status.last_error is None


def test_work_queued_elsewhere_waits_at_most_a_poll_and_woken_work_none(db: Database, fake: FakeAnthropic,
                                                                        worker: Callable[..., BackgroundWorker],
                                                                        passes: list[float]) -> None:
    w = worker(poll_seconds=1.0)
    wait_for(lambda: len(passes) == 1)
    time.sleep(0.3)
    queued = time.monotonic()
    runs.start_run(db, actor=LEAD, items=tickets(1, "elsewhere"), source="cli", mode="haiku")
    wait_for(lambda: len(passes) == 2)
    assert passes[1] - queued <= 1.0 + 0.5  # the poll interval (and some scheduling slack on a busy box)
    wait_for(lambda: pending(db) == 0)
    time.sleep(0.2)
    queued = time.monotonic()
    runs.start_run(db, actor=LEAD, items=tickets(1, "here"), source="dashboard", mode="haiku")
    w.wake()  # the Classify page's click
    wait_for(lambda: len(passes) == 3)
    assert passes[2] - queued < 0.3  # at once, not at the next poll
    wait_for(lambda: pending(db) == 0)


def test_an_idle_worker_still_sees_escalations_dead_workers_and_runs_to_finish(db: Database, fake: FakeAnthropic,
                                                                               worker: Callable[..., BackgroundWorker],
                                                                               passes: list[float]) -> None:
    imp = runs.start_run(db, actor=LEAD, items=tickets(2), source="dashboard", mode="haiku")
    worker(poll_seconds=0.05)
    wait_for(lambda: pending(db) == 0)
    with db.transaction() as s:  # an escalation asked for from another dashboard process
        queue.request_escalation(s, [imp.ticket_ids[0]])
    wait_for(lambda: count(db, ModelCall.tier == 2, of=ModelCall) == 1)
    wait_for(lambda: pending(db) == 0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{hostname()}:{int(dead.stdout)}"
    with db.transaction() as s:  # a worker on this host was killed holding a ticket and a call in flight
        run_id = db_runs.create_run(s, started_by="cli", source="cli", mode="haiku", threshold=0.7)
        queue.import_tickets(s, tickets(1, "held"), source="cli", run_id=run_id)
        queue.claim_pending(s, gone, 1, run_id)
        ledger.reserve(s, estimated_pico=1000, tier=1, model="claude-haiku-4-5", kind="call", worker=gone,
                       ticket_id=None, run_id=run_id)
    wait_for(lambda: pending(db) == 0)  # its claim released and the ticket classified, no wake
    assert count(db, CallAttempt.state == ledger.LOST, of=CallAttempt) == 1
    with db.transaction() as s:  # a run whose tickets were all known already: nothing to classify, it ends
        empty = db_runs.create_run(s, started_by="cli", source="cli", mode="haiku", threshold=0.7)
    wait_for(lambda: count(db, Run.id == empty, Run.status == "finished", of=Run) == 1)
    n = len(passes)
    time.sleep(0.5)
    assert len(passes) == n  # and idle again


# -- stopping --------------------------------------------------------------------------------------------------

def on_the_books(db: Database, fake: FakeAnthropic) -> None:
    """No lost work: no ticket claimed or failed, no reservation left open, and every request the fake API
    received is either a recorded call or a reservation booked as lost."""
    assert count(db, Ticket.claimed_by.is_not(None)) == 0
    assert count(db, Ticket.status == "failed") == 0
    assert count(db, CallAttempt.state == ledger.OPEN, of=CallAttempt) == 0
    sent, recorded = sent_calls(fake), count(db, of=ModelCall)
    assert recorded <= sent <= recorded + count(db, CallAttempt.state == ledger.LOST, of=CallAttempt)


def sent_calls(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if r["path"].split("?")[0] == "/v1/messages")


def test_stop_mid_pass_lets_the_calls_in_flight_finish_and_releases_the_rest(db: Database, fake: FakeAnthropic,
                                                                             worker: Callable[..., BackgroundWorker],
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    fake.delay = 1.0
    runs.start_run(db, actor=LEAD, items=tickets(40), source="dashboard", mode="haiku")
    w = worker(stop_grace=5.0)
    wait_for(lambda: sent_calls(fake) >= 4)  # 4 calls in flight
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        w.stop()
    assert time.monotonic() - started < 4.0  # the calls in flight returned (1 s): no 40-ticket pass waited for
    assert not w._thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    on_the_books(db, fake)
    assert count(db, CallAttempt.state == ledger.LOST, of=CallAttempt) == 0  # all of them answered and recorded
    assert 4 <= count(db, Ticket.status != "pending") < 40
    with db.read() as s:
        assert {t.status_reason for t in s.scalars(select(Ticket).where(Ticket.status == "pending"))} <= {
            None, "the dashboard server is stopping"}
        assert s.scalars(select(Run.status)).one() == "running"  # its tickets wait for the next worker


def test_stop_cuts_off_calls_slower_than_the_grace_and_books_them_lost(db: Database, fake: FakeAnthropic,
                                                                       worker: Callable[..., BackgroundWorker]) -> None:
    fake.delay = 30.0
    runs.start_run(db, actor=LEAD, items=tickets(10), source="dashboard", mode="haiku")
    w = worker(stop_grace=0.5)
    wait_for(lambda: sent_calls(fake) >= 1)
    started = time.monotonic()
    w.stop()
    assert time.monotonic() - started < 5.0 and not w._thread.is_alive()
    assert count(db, CallAttempt.state == ledger.LOST, of=CallAttempt) >= 1  # probably billed, answer lost
    assert count(db, of=ModelCall) == 0
    on_the_books(db, fake)
    assert pending(db) == 10


SERVER_EXITS = textwrap.dedent("""
    import atexit, logging, os, sys, time
    from sqlalchemy import func, select
    from db.migrate import open_database
    from db.models import CallAttempt
    from dashboard.worker import BackgroundWorker
    from triage.settings import Settings

    logging.basicConfig(level=logging.INFO)  # what Streamlit's log would show
    db = open_database(os.environ["TRIAGE_DATABASE_URL"])
    worker = BackgroundWorker(db, Settings(api_key=os.environ["ANTHROPIC_API_KEY"], concurrency=4,
                                            base_url=os.environ["ANTHROPIC_BASE_URL"]),
                              stop_grace=float(os.environ["GRACE"])).start()
    while True:  # as in the dashboard: the main thread ends (streamlit stopped) while calls are in flight
        with db.read() as s:
            if s.scalar(select(func.count()).select_from(CallAttempt).where(CallAttempt.state == "open")) >= 1:
                break
        time.sleep(0.02)
    print("in flight", flush=True)
    atexit.register(time.sleep, 1.5)  # the server's own teardown takes a moment (the worker thread runs on meanwhile)
""")


@pytest.mark.parametrize("delay, grace", [(0.05, 5.0), (1.0, 5.0), (30.0, 0.5)],
                         ids=["fast-answers", "answers-in-grace", "cut-off"])
def test_the_server_exiting_mid_pass_stops_the_worker_quietly(db: Database, db_url: str, fake: FakeAnthropic,
                                                              delay: float, grace: float) -> None:
    fake.delay = delay
    runs.start_run(db, actor=LEAD, items=tickets(40), source="dashboard", mode="haiku")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRIAGE_DATABASE_URL": db_url, "ANTHROPIC_API_KEY": fake.api_key,
           "ANTHROPIC_BASE_URL": fake.base_url, "GRACE": str(grace)}
    done = subprocess.run([sys.executable, "-c", SERVER_EXITS], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "in flight" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    on_the_books(db, fake)
    lost = count(db, CallAttempt.state == ledger.LOST, of=CallAttempt)
    assert (lost == 0) if delay < grace else (lost >= 1 and count(db, of=ModelCall) == 0)
    left = count(db, Ticket.status == "pending")
    assert (left < 40) if delay < grace else (left == 40)  # answered within the grace: recorded and kept
