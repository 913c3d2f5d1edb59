"""Several writers at once, and a worker killed mid-run."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from db.migrate import open_database
from db.models import Correction, ModelCall, Ticket
from tests.support.actors import LEAD, op
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.errors import Conflict
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()
ROOT = Path(__file__).resolve().parents[2]


class SlowProvider(ScriptedProvider):
    async def classify(self, text, tax):
        await asyncio.sleep(0.002)
        return await super().classify(text, tax)


def test_eight_operators_correcting_while_a_worker_writes(anydb):
    seeded = runs.start_run(anydb, [(None, f"seed {i}") for i in range(40)], source="seed", actor=LEAD)
    router = Router(SlowProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.9)),
                    SlowProvider(2, "claude-sonnet-5-5", fn=lambda t: ("billing", 0.9)), TAX)
    asyncio.run(pipeline.process_queue(anydb, router, run_id=seeded.run_id))
    work = runs.start_run(anydb, [(None, f"work {i}") for i in range(300)], source="work", actor=LEAD)
    errors, saved, conflicts = [], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def operator(n):
        rnd = random.Random(n)
        while not stop.is_set():
            tid = rnd.choice(seeded.ticket_ids + work.ticket_ids[:40])
            label = rnd.choice(TAX.names)
            try:
                with anydb.read() as s:
                    version = s.get(Ticket, tid).version
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
            t = s.get(Ticket, tid)
            assert (t.category, t.label_source) == (label, "operator")
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
    assert len(saved) > 20


def test_worker_killed_mid_run_is_finished_by_a_restart_without_double_billing(any_db_url):
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
                done = s.scalar(select(func.count()).select_from(ModelCall))
            if done >= 8:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with db.read() as s:
            left = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending"))
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
