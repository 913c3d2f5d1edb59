"""The audit trail on SQLite and PostgreSQL: events written with the change, read back newest first together
with the runs people started."""

from datetime import UTC, datetime, timedelta

from db import audit
from db.engine import Database
from db.models import Run


def test_events_and_run_starts_come_back_newest_first_with_who_and_what(anydb: Database) -> None:
    t0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with anydb.transaction() as s:
        s.add(Run(started_by="olga@ops.example.com", source="tickets.csv", mode="auto", n_tickets=3, n_new=2,
                  started_at=t0))
        audit.record(s, actor="lena@example.com", role="lead", event="settings.engine",
                     detail={"changed": {"threshold": [0.7, 0.55]}}, at=t0 + timedelta(minutes=5))
        audit.record(s, actor="lena@example.com", role="lead", event="export.tickets",
                     detail={"rows": 3, "format": "csv", "filter": "every ticket"}, at=t0 + timedelta(minutes=9))
    with anydb.read() as s:
        events = audit.recent(s)
        assert [e["event"] for e in events] == ["export.tickets", "settings.engine", "run.start"]
        assert events[0]["detail"] == {"filter": "every ticket", "format": "csv", "rows": 3}
        assert events[1]["detail"] == {"changed": {"threshold": [0.7, 0.55]}} and events[1]["role"] == "lead"
        assert (events[2]["actor"], events[2]["detail"]["source"], events[2]["detail"]["new"]) == \
            ("olga@ops.example.com", "tickets.csv", 2)
        assert [e["event"] for e in audit.recent(s, limit=1)] == ["export.tickets"]
