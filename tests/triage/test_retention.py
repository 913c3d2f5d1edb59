"""Retention (issue 21, item 3): with `retention_days` set, `triage purge` erases (as `triage erase --yes`) the
tickets whose last activity is older than that, `--dry-run` says which and changes nothing, and the dashboard's
background worker applies it at most once an hour. Tickets are backdated in a real SQLite database."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from dashboard.worker import RETENTION, BackgroundWorker
from db.engine import Database
from db.models import AuditEvent, Correction, ModelCall, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import privacy
from triage.cli import main
from triage.settings import Settings, save_engine

OLD, RECENT = "old ticket about an invoice refund", "recent ticket about a login"


def seed(env: dict[str, str], db: Database, tmp_path: Path) -> dict[str, int]:
    """Four classified tickets: two idle for 100 days, one created 100 days ago but corrected yesterday, one new."""
    src = tmp_path / "t.txt"
    src.write_text(f"{OLD} 1\n{OLD} 2\nold but corrected lately about billing\n{RECENT}\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    with db.read() as s:
        ids = {t.text: t.id for t in s.scalars(select(Ticket))}
    long_ago = datetime.now(UTC) - timedelta(days=100)
    backdated = [ids[f"{OLD} 1"], ids[f"{OLD} 2"], ids["old but corrected lately about billing"]]
    with db.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id.in_(backdated)).values(created_at=long_ago, updated_at=long_ago))
        s.execute(update(ModelCall).where(ModelCall.ticket_id.in_(backdated)).values(created_at=long_ago))
        s.add(Correction(ticket_id=ids["old but corrected lately about billing"], previous_label="billing",
                         new_label="billing", operator="maria", created_at=datetime.now(UTC) - timedelta(days=1)))
    return ids


def texts(db: Database) -> dict[int, str]:
    with db.read() as s:
        return {t.id: t.text for t in s.scalars(select(Ticket))}


def test_purge_erases_only_the_tickets_idle_past_retention(env: dict[str, str], fake: FakeAnthropic, db: Database,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = seed(env, db, tmp_path)
    assert main(["purge"]) == 0  # retention off by default: nothing happens
    assert "retention is off" in capsys.readouterr().out
    assert main(["settings", "set", "retention_days", "30"]) == 0
    capsys.readouterr()
    before = texts(db)
    assert main(["purge", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and sorted(dry["tickets"]) == sorted([ids[f"{OLD} 1"], ids[f"{OLD} 2"]])
    assert texts(db) == before  # a dry run changes nothing
    assert main(["purge", "--operator", "cron"]) == 0
    assert "erased 2 ticket(s)" in capsys.readouterr().out
    after = texts(db)
    assert after[ids[f"{OLD} 1"]] == after[ids[f"{OLD} 2"]] == ""
    assert after[ids["old but corrected lately about billing"]] == "old but corrected lately about billing"
    assert after[ids[RECENT]] == RECENT
    with db.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == privacy.PURGE)).all()
        assert all(t.category for t in s.scalars(select(Ticket)))  # labels stay
    assert event.actor == "cron" and json.loads(event.detail)["tickets"] == 2
    assert main(["purge"]) == 0 and "erased 0 ticket(s)" in capsys.readouterr().out  # nothing left to erase


def test_the_worker_applies_retention_at_most_once_an_hour(env: dict[str, str], fake: FakeAnthropic, db: Database,
                                                           tmp_path: Path) -> None:
    ids = seed(env, db, tmp_path)
    save_engine(db, actor=LEAD, retention_days=30)
    worker = BackgroundWorker(db, Settings())  # not started: its steps are called one by one
    worker._apply_retention()
    assert texts(db)[ids[f"{OLD} 1"]] == "" and worker.status.last_error is None
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with db.transaction() as s:  # the recent ticket falls idle too
        s.execute(update(Ticket).where(Ticket.id == ids[RECENT]).values(created_at=long_ago, updated_at=long_ago))
        s.execute(update(ModelCall).where(ModelCall.ticket_id == ids[RECENT]).values(created_at=long_ago))
    worker._apply_retention()  # within the hour: not again
    assert texts(db)[ids[RECENT]] == RECENT
    assert worker._retention_at is not None
    worker._retention_at -= 3600  # an hour later
    worker._apply_retention()
    assert texts(db)[ids[RECENT]] == ""
    with db.read() as s:
        actors = {e.actor for e in s.scalars(select(AuditEvent).where(AuditEvent.event == privacy.PURGE))}
    assert actors == {RETENTION.identity}
