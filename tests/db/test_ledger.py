"""The spending ledger on SQLite and PostgreSQL: reservations are atomic across connections and processes."""

import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from db.engine import Database
from db.migrate import open_database
from db.models import CallAttempt, ModelCall
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage.domain import from_pico
from triage.errors import BudgetReached
from triage.spend import budget
from triage.work import runs

ROOT = Path(__file__).resolve().parents[2]


def test_reservations_are_atomic_across_connections(anydb: Database) -> None:
    """Sixteen connections reserving at once never reserve past the cap (READ COMMITTED on PostgreSQL would let
    them without the ledger's lock)."""
    guard = budget.BudgetGuard(anydb, budget.Caps.of(1.0))
    granted, refused, errors = [], [], []
    start = threading.Barrier(16)

    def reserve() -> None:
        start.wait()
        for _ in range(3):
            try:
                granted.append(guard.reserve(Decimal("0.1"), 1, "claude-haiku-5-5"))
            except BudgetReached:
                refused.append(1)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=reserve) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(granted) == 10 and len(refused) == 48 - 10
    assert budget.standing(anydb, guard.caps).in_flight == Decimal("1.0")


def test_three_worker_processes_share_one_cap(any_db_url: str) -> None:
    """Three `triage worker --once` processes, eight requests in flight each, on one queue and one cap."""
    cap = Decimal("0.003")
    db = open_database(any_db_url)
    items = [(None, f"ticket {i}: charged twice, refund please") for i in range(150)]
    runs.start_run(db, items, actor=LEAD, source="t", mode="haiku")
    with FakeAnthropic(delay=0.05) as fake:
        env = {**os.environ, "ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.base_url,
               "TRIAGE_DATABASE_URL": any_db_url, "PYTHONPATH": str(ROOT), "TRIAGE_MONTHLY_BUDGET_USD": str(cap)}
        procs = [subprocess.Popen([sys.executable, "-m", "triage.cli", "worker", "--once", "--concurrency", "8"],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        codes = [p.wait(timeout=300) for p in procs]
        errs = [p.communicate()[1] for p in procs]
        assert not fake.invalid
        billed_calls = len(fake.usage_log)
    assert set(codes) <= {0, 5} and 5 in codes, errs
    assert not any("Traceback" in e for e in errs), errs
    with db.read() as s:
        spent = from_pico(s.scalar(select(func.sum(ModelCall.cost_pico))))
        calls = s.scalar(select(func.count()).select_from(ModelCall))
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 0
    assert 0 < spent <= cap and calls == billed_calls
    db.dispose()
