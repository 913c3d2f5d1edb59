"""Importing a file: bulk statements (a big file is a few hundred statements, not one per ticket) with the
semantics kept: dedupe by content hash, known tickets requeued only in requeue states, held tickets left alone,
the reclassify cut-off."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select, update

from db import queue
from db.engine import Database
from db.models import Run, Ticket
from tests.support.actors import LEAD
from triage.work import runs


def count_statements(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a, **k: seen.append(1))
    return seen


def test_a_big_import_is_a_few_bulk_statements(anydb: Database) -> None:
    items = [(f"ID-{i}", f"ticket number {i}: my invoice is wrong") for i in range(12_000)]
    seen = count_statements(anydb)
    first = runs.start_run(anydb, items, source="big.csv", actor=LEAD)
    assert len(first.new_ids) == 12_000 and len(set(first.ticket_ids)) == 12_000
    assert len(seen) < 60, len(seen)  # one INSERT per ticket would be 12,000
    seen.clear()
    again = runs.start_run(anydb, items, source="big.csv", actor=LEAD)
    assert again.new_ids == [] and again.known_ids == first.ticket_ids and len(seen) < 60, len(seen)
    with anydb.read() as s:
        run = s.get_one(Run, again.run_id)
        assert (run.n_tickets, run.n_new) == (12_000, 0)
        stored = {i: e for i, e in s.execute(select(Ticket.id, Ticket.external_id))}
    assert [stored[i] for i in first.ticket_ids[:3]] == ["ID-0", "ID-1", "ID-2"]


def test_reimport_requeues_only_what_it_should(anydb: Database) -> None:
    first = runs.start_run(anydb, [("A", "alpha"), ("B", "beta"), ("C", "gamma"), ("D", "delta"), ("A", " alpha ")],
                           source="f", actor=LEAD)
    assert len(first.new_ids) == 4 and first.ticket_ids[0] == first.ticket_ids[4]  # duplicate inside the file
    a, b, c, d = first.ticket_ids[:4]
    now = datetime.now(UTC)
    with anydb.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id == a).values(status="classified"))
        s.execute(update(Ticket).where(Ticket.id == b).values(status="failed"))
        s.execute(update(Ticket).where(Ticket.id == c).values(claimed_by="w:1", claimed_at=now))  # in flight
        s.execute(update(Ticket).where(Ticket.id == d).values(claimed_by="batch:x",  # held by a batch
                                                              claimed_at=now + timedelta(hours=20)))
    again = runs.start_run(anydb, [("A", "alpha"), ("B", "beta"), ("C", "gamma"), ("D", "delta"), ("E", "eps")],
                           source="f", actor=LEAD)
    with anydb.read() as s:
        rows = {t.id: t for t in s.scalars(select(Ticket))}
    assert (rows[a].status, rows[a].run_id) == ("classified", first.run_id)  # decided: left alone
    assert (rows[b].status, rows[b].run_id) == ("pending", again.run_id)  # failed: queued again
    assert (rows[c].claimed_by, rows[c].run_id) == ("w:1", first.run_id)  # held by a worker: left alone
    assert (rows[d].claimed_by, rows[d].run_id) == ("batch:x", first.run_id)  # held by a batch: left alone
    assert len(again.new_ids) == 1 and again.known_ids == [a, b, c, d]
    with anydb.transaction() as s:
        redo = queue.import_tickets(s, [("A", "alpha")], source="f", run_id=None, reclassify=True)
        assert redo.known_ids == [a]
    with anydb.read() as s:
        t = s.get_one(Ticket, a)
        assert t.status == "pending" and t.first_call_id >= 1  # earlier calls are history only
