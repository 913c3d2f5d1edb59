"""SQLite under contention: many processes starting on a new database, and a write lock held past the busy
timeout while a billed answer waits to be recorded."""

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.migrate import open_database
from db.models import ModelCall, Ticket
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider
from triage import taxonomy
from triage.domain import CallResult
from triage.routing.gate import Reservation
from triage.routing.router import Router
from triage.taxonomy import Taxonomy
from triage.work import pipeline, runs

ROOT = Path(__file__).resolve().parents[2]
TAX = taxonomy.default()

STARTER = """
import os, sys, time
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
from db.migrate import open_database
open_database(sys.argv[1]).dispose()
"""


def test_twelve_processes_starting_together_on_a_new_database_all_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, url, str(go)], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(12)]
    time.sleep(3)  # every process has imported SQLAlchemy and Alembic and waits at the line
    go.touch()
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    failed = [err for code, err in results if code != 0]
    assert not failed, failed[0][-2000:]
    db = open_database(url)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0026_production_rollups"
    db.dispose()


class LockingProvider(ScriptedProvider):
    """Answers (the API has billed it) while another process holds the database's write lock for `hold` s."""

    def __init__(self, path: str, hold: float) -> None:
        super().__init__(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.95))
        self.path, self.hold = path, hold
        self.released = threading.Event()

    async def classify(self, text: str, tax: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        locked = threading.Event()

        def hold_lock() -> None:
            other = sqlite3.connect(self.path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(self.hold)
            other.execute("COMMIT")
            other.close()
            self.released.set()

        threading.Thread(target=hold_lock, daemon=True).start()
        locked.wait()
        return await super().classify(text, tax)


def test_an_answer_is_recorded_even_when_the_database_stays_locked_past_the_busy_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_BUSY_TIMEOUT_S", "0.2")
    path = tmp_path / "busy.db"
    db = open_database(f"sqlite:///{path}")
    imp = runs.start_run(db, actor=LEAD, items=[(None, "I was charged twice")], source="t")
    provider = LockingProvider(str(path), hold=1.5)  # more than seven busy timeouts
    router = Router(provider, ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("billing", 0.9)), TAX)
    report = asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    assert provider.released.is_set()
    assert report.states == {"classified": 1}, "the billed answer was recorded, the ticket not marked failed"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ModelCall)) == 1
        ticket = s.get(Ticket, imp.ticket_ids[0])
        assert ticket is not None and ticket.category == "billing"
    db.dispose()
