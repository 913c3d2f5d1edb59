"""Reads that run on every poll or page view go through an index, so their cost does not grow with the tickets
stored (SQLite's EXPLAIN QUERY PLAN names the index; the answers are checked too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from db import fewshot, queue
from db.engine import Database
from db.models import Ticket


def plan(s: Session, stmt: ClauseElement) -> str:
    compiled = stmt.compile(s.get_bind(), compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    params = tuple(compiled.params[k] for k in compiled.positiontup or ())
    rows = s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
    return " | ".join(r[-1] for r in rows)


def test_an_idle_poll_finds_a_free_ticket_by_two_index_probes_however_many_are_held(db: Database) -> None:
    with db.transaction() as s:
        ids = queue.import_tickets(s, [(None, f"held {i}") for i in range(3000)], source="t", run_id=None).ticket_ids
        s.execute(update(Ticket).values(claimed_by="other:1", claimed_at=datetime.now(UTC)))
    with db.read() as s:
        assert not queue.free_pending(s)  # all 3,000 held by a live worker
        for probe in queue.free_pending_probes():
            assert "USING COVERING INDEX ix_tickets_status_claimed" in plan(s, probe)
    with db.transaction() as s:  # one claim's lease ran out: that ticket is free again
        s.execute(update(Ticket).where(Ticket.id == ids[-1])
                  .values(claimed_at=datetime.now(UTC) - queue.LEASE - timedelta(seconds=1)))
    with db.read() as s:
        assert queue.free_pending(s) and queue.work_waiting(s)
    with db.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id == ids[-1]).values(claimed_at=datetime.now(UTC)))
        s.execute(update(Ticket).where(Ticket.id == ids[0]).values(claimed_by=None, claimed_at=None))
    with db.read() as s:
        assert queue.free_pending(s)


def test_the_settings_page_counts_operator_labels_through_an_index(db: Database) -> None:
    with db.transaction() as s:
        ids = queue.import_tickets(s, [(None, f"ticket {i}") for i in range(50)], source="t", run_id=None).ticket_ids
        s.execute(update(Ticket).where(Ticket.id.in_(ids[:7])).values(label_source="operator", category="billing"))
        s.execute(update(Ticket).where(Ticket.id.in_(ids[7:9])).values(label_source="operator", category="gone"))
        s.execute(update(Ticket).where(Ticket.id.in_(ids[9:20])).values(label_source="tier1", category="billing"))
    with db.read() as s:
        assert fewshot.count_operator_labelled(s, ["billing", "account"]) == 7
        count = fewshot.operator_labelled_count(["billing", "account"])
        assert "USING COVERING INDEX ix_tickets_label_source_category" in plan(s, count)
