"""Several writers at once, and a worker killed mid-run."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import ledger, queue
from db.engine import Database
from db.migrate import open_database
from db.models import Correction, ModelCall, Ticket
from tests.support.actors import LEAD, op
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.domain import CallResult, worker_pid
from triage.errors import Conflict
from triage.routing.gate import Reservation
from triage.routing.router import Router
from triage.settings import Settings
from triage.taxonomy import Taxonomy
from triage.work import pipeline, runs, services
from triage.work.host import hostname, pid_alive

TAX = taxonomy.default()
ROOT = Path(__file__).resolve().parents[2]


class SlowProvider(ScriptedProvider):
    async def classify(self, text: str, tax: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        await asyncio.sleep(0.002)
        return await super().classify(text, tax)


def test_eight_operators_correcting_while_a_worker_writes(anydb: Database) -> None:
    seeded = runs.start_run(anydb, [(None, f"seed {i}") for i in range(40)], source="seed", actor=LEAD)
    router = Router(SlowProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.9)),
                    SlowProvider(2, "claude-sonnet-5-5", fn=lambda t: ("billing", 0.9)), TAX)
    asyncio.run(pipeline.process_queue(anydb, router, run_id=seeded.run_id))
    work = runs.start_run(anydb, [(None, f"work {i}") for i in range(300)], source="work", actor=LEAD)
    errors, saved, conflicts = [], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def operator(n: int) -> None:
        rnd = random.Random(n)
        while not stop.is_set():
            tid = rnd.choice(seeded.ticket_ids + work.ticket_ids[:40])
            label = rnd.choice(TAX.names)
            try:
                with anydb.read() as s:
                    version = s.get_one(Ticket, tid).version
                review.correct(anydb, tid, label, actor=op(f"op{n}"), expected_version=version, taxonomy=TAX)
                with lock:
                    saved.append((tid, label))
            except Conflict:
                with lock:
                    conflicts.append(tid)
            except Exception as exc:
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=operator, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    report = asyncio.run(pipeline.process_queue(anydb, router, run_id=work.run_id, concurrency=8))
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]
    assert report.processed == 300 and set(report.states) <= {"classified"}
    with anydb.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == len(saved)
        last = {}
        for c in s.scalars(select(Correction).order_by(Correction.id)):
            last[c.ticket_id] = c.new_label
        for tid, label in last.items():  # no lost update: every ticket shows its latest correction
            ticket = s.get_one(Ticket, tid)
            assert (ticket.category, ticket.label_source) == (label, "operator")
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
    assert len(saved) > 20


def test_worker_killed_mid_run_is_finished_by_a_restart_without_double_billing(any_db_url: str) -> None:
    db = open_database(any_db_url)
    n = 60
    runs.start_run(db, [(None, f"ticket {i} I was charged twice") for i in range(n)], source="crash", actor=LEAD)
    with FakeAnthropic(delay=0.15) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url,
               "TRIAGE_DATABASE_URL": any_db_url, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "triage.cli", "worker", "--once", "--concurrency", "4"]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.read() as s:
                done = s.scalars(select(func.count()).select_from(ModelCall)).one()
            if done >= 8:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with db.read() as s:
            left = s.scalars(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")).one()
        assert 0 < left < n, "the kill should land mid-run"
        restart = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        assert not fake.invalid
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
        per_ticket = s.execute(select(ModelCall.ticket_id, func.count()).where(ModelCall.tier == 1)
                               .group_by(ModelCall.ticket_id)).all()
        assert len(per_ticket) == n and max(c for _, c in per_ticket) == 1
    db.dispose()


LEASE_S = 1.5  # the claims' lease in the tests below (10 minutes in use); a worker renews every tenth of it


def _claim(db: Database, worker: str) -> list[int]:
    with db.transaction() as s:
        return [c.ticket_id for c in queue.claim_pending(s, worker, 10)]


def test_a_call_outliving_the_lease_keeps_its_ticket_and_a_killed_worker_loses_it_after_the_lease(
        any_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call waits longer than the lease (the fake API is slow; 429s waited out do the same): the worker renews
    its claim meanwhile, so another worker's pass does not send the ticket again. Killed, it stops renewing: the
    claim is taken over once the lease has run out, not before."""
    monkeypatch.setattr(queue, "LEASE", timedelta(seconds=LEASE_S))  # this process (the second worker)
    db = open_database(any_db_url)
    imp = runs.start_run(db, [(None, "I was charged twice, please refund [[slow=30]]")], source="slow", actor=LEAD,
                         mode="haiku")
    with FakeAnthropic() as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url,
               "TRIAGE_DATABASE_URL": any_db_url, "PYTHONPATH": str(ROOT), "TRIAGE_CLAIM_LEASE_S": str(LEASE_S)}
        first = subprocess.Popen([sys.executable, "-m", "triage.cli", "worker", "--once"], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not fake.requests and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.05)
            assert fake.requests, f"the first worker sent nothing: {first.communicate()[1] if first.poll() else ''}"
            time.sleep(2 * LEASE_S)  # the call is still out, well past the lease
            router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url), TAX, mode="haiku",
                                           db=db)
            second = services.run(router, pipeline.process_queue(db, router, worker="second:1:b"))
            assert second.processed == 0 and len(fake.requests) == 1  # not taken, not sent again
            with db.read() as s:
                held = s.get(Ticket, imp.ticket_ids[0])
                assert held is not None
                holder = held.claimed_by
            assert holder is not None
            assert holder == f"{hostname()}:{first.pid}:{holder.rsplit(':', 1)[-1]}"  # host:pid:start
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        killed = time.monotonic()
        assert _claim(db, "third:1:c") == []  # its last renewal is fresh: the lease has not run out yet
        with db.read() as s:  # on its own host, a dead worker is still known by its pid (recovery frees it at once)
            assert queue.dead_claimers(s, hostname(), pid_alive) == [holder]
            assert ledger.needs_recovery(s, hostname(), pid_alive)  # and its call in flight is booked as lost
        taken: list[int] = []
        while not taken and time.monotonic() - killed < 30:
            time.sleep(0.1)
            taken = _claim(db, "third:1:c")
        assert taken == imp.ticket_ids and time.monotonic() - killed >= LEASE_S - 0.5
    db.dispose()


IDENTITY = ("import os, socket; os.getpid = lambda: 1; socket.gethostname = lambda: 'box'; "
            "from triage.work.host import worker_name; print(worker_name(), worker_name())")


def test_two_processes_with_the_same_host_and_pid_have_different_worker_names() -> None:
    """Two containers with the same hostname, each its worker as pid 1: each process start is a worker of its own
    (a name shared would let one release the other's claims and book its calls in flight as lost)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    names = [subprocess.run([sys.executable, "-c", IDENTITY], env=env, capture_output=True, text=True,
                            check=True).stdout.split() for _ in range(2)]
    (a, a_again), (b, _) = names
    assert a == a_again  # one name for the whole process
    assert a != b and a.startswith("box:1:") and b.startswith("box:1:")
    assert worker_pid(a, "box") == worker_pid(b, "box") == 1 and worker_pid(a, "other") is None
