"""Two worker processes racing over the same alerts, on SQLite and on PostgreSQL: each event is recorded once (its
UNIQUE key) and reaches a real local webhook receiver exactly once (the claim's compare-and-set), also when the
receiver fails twice first and the retries race too."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.migrate import open_database
from db.models import AlertAttempt, AlertEvent
from tests.support.actors import LEAD
from tests.support.receivers import WebhookReceiver
from tests.triage.alerts.conftest import add_tickets
from triage.alerts import config

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import os, sys, time
from datetime import datetime, timedelta
url, go, t0, me = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3]), sys.argv[4]
from db.migrate import open_database
from triage.alerts import service
db = open_database(url, migrate=False)

def wait(*paths):
    while not all(os.path.exists(p) for p in paths):
        time.sleep(0.005)

wait(go)
for i in range(6):  # each round a minute later: the backed-off retries come due and race as well
    if i:  # both on the same simulated minute: one process racing minutes ahead would see the other's fresh claim
        wait(f"{go}.{i - 1}.a", f"{go}.{i - 1}.b")  # as older than the lease, which no real clock does
    now = t0 + timedelta(seconds=61 * i)
    service.check_now(db, now=now)
    service.deliver_now(db, now=now)
    open(f"{go}.{i}.{me}", "w").close()
db.dispose()
"""


def test_two_workers_racing_send_each_alert_exactly_once(any_db_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    db = open_database(any_db_url)
    go = tmp_path / "go"
    with WebhookReceiver(fail_first=2, delay=0.1) as hook:
        config.save(db, actor=LEAD, enabled=True, webhook_url=hook.url, review_queue_over=0,
                    now=datetime.now(UTC) - timedelta(minutes=1))
        ids = add_tickets(db, [{"priority": "urgent", "team": team} for team in ("Ops", "Billing", "Sales")])
        t0 = datetime.now(UTC)
        env = {"PYTHONPATH": str(ROOT), "TRIAGE_ALERT_PRIVATE_HOSTS": "1", "PATH": "/usr/bin:/bin"}
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, any_db_url, str(go), t0.isoformat(), me],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for me in ("a", "b")]
        time.sleep(2)  # both have imported everything and wait at the line
        go.touch()
        results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
        assert [code for code, _ in results] == [0, 0], [err[-2000:] for _, err in results]
        assert sorted(hook.keys()) == sorted(f"urgent:{i}#1" for i in ids)  # each exactly once
        assert len(hook.refused) == 2
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AlertEvent)) == 3
        assert s.scalar(select(func.count()).select_from(AlertAttempt)) == 5  # 3 delivered, 2 refused first
        workers = set(s.scalars(select(AlertAttempt.worker)))
    assert len(workers) >= 1  # usually both: each took some deliveries
    db.dispose()
