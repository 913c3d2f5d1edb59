"""Erasure and retention on SQLite and PostgreSQL alike (issue 21): text, reasons and vectors go, labels and
costs stay, spend lines are the same; retention finds tickets by their last activity in either database."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from db import vectors
from db.engine import Database
from db.models import ModelCall, Ticket, TicketVector
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider
from triage import privacy, taxonomy
from triage.routing.router import Router
from triage.spend.reports import spend
from triage.work import pipeline, runs

TAX = taxonomy.default()


def seed(db: Database) -> list[int]:
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.95)),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("billing", 0.9)), TAX)
    imp = runs.start_run(db, [(None, t) for t in ("Ms Quillfeather was charged twice", "refund for Mr Ostrander",
                                                  "the app crashes")], source="seed", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.transaction() as s:
        vectors.store(s, {tid: b"\x00" * 16 for tid in imp.ticket_ids}, "m")
        s.execute(update(ModelCall).values(reason="quotes the ticket"))
    return imp.ticket_ids


def test_erase_and_retention_on_either_database(anydb: Database) -> None:
    ids = seed(anydb)
    with anydb.read() as s:
        labels = {t.id: (t.status, t.category, t.confidence) for t in s.scalars(select(Ticket))}
    lines = spend(anydb)
    done = privacy.erase_tickets(anydb, ids[:1], actor=LEAD)
    assert done.tickets == [ids[0]] and done.vectors == 1 and done.reasons >= 1 and done.scrubbed
    with anydb.read() as s:
        t = s.get_one(Ticket, ids[0])
        assert t.text == "" and s.get(TicketVector, ids[0]) is None
        assert {c.reason for c in s.scalars(select(ModelCall).where(ModelCall.ticket_id == ids[0]))} == {None}
        assert {t.id: (t.status, t.category, t.confidence) for t in s.scalars(select(Ticket))} == labels
        assert s.get_one(Ticket, ids[1]).text == "refund for Mr Ostrander"
    assert spend(anydb) == lines

    assert privacy.idle_tickets(anydb, 30) == []  # all active today
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with anydb.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id == ids[1]).values(created_at=long_ago, updated_at=long_ago))
        s.execute(update(ModelCall).where(ModelCall.ticket_id == ids[1]).values(created_at=long_ago))
    assert privacy.idle_tickets(anydb, 30) == [ids[1]]  # the erased one is not found again
    assert privacy.purge(anydb, 30, actor=LEAD, dry_run=True).tickets == [ids[1]]
    assert privacy.purge(anydb, 30, actor=LEAD).tickets == [ids[1]]
    assert privacy.idle_tickets(anydb, 30) == [] and spend(anydb) == lines
