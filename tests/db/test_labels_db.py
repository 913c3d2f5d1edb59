"""Label imports on SQLite and PostgreSQL: migration 0011 fills the text hash of older tickets, and an import
matches, writes, audits and is idempotent on both backends."""

from sqlalchemy import select, text

from db.engine import Database
from db.migrate import open_database, upgrade
from db.models import Correction, Ticket, text_hash
from tests.support.actors import LEAD, lead, op
from triage import ingest, labels, taxonomy
from triage.work import runs

TAX = taxonomy.default()


def test_migration_0011_fills_the_text_hash_of_existing_tickets(any_db_url: str) -> None:
    upgrade(any_db_url, "0006")
    db = open_database(any_db_url, migrate=False)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO tickets (id, text, source, content_hash, created_at, updated_at, status, "
                          "escalated, disagree, corrected, version, first_call_id, escalation_requested) VALUES "
                          "(1, '  my   invoice\nis wrong ', 's', 'h1', '2026-11-01 10:00:00', '2026-11-01 10:00:00', "
                          "'classified', false, false, true, 2, 0, false)"))
        conn.execute(text("INSERT INTO corrections (ticket_id, previous_label, new_label, operator, created_at) "
                          "VALUES (1, 'technical', 'billing', 'dana', '2026-11-01 11:00:00')"))
    upgrade(any_db_url)
    with db.read() as s:
        assert s.scalar(select(Ticket.text_hash)) == text_hash("my invoice is wrong")
        c = s.scalars(select(Correction)).one()
        assert (c.source, c.file) == ("review", None)  # labels from before are review-queue labels
    db.dispose()


def test_an_import_matches_audits_and_is_idempotent(anydb: Database) -> None:
    imp = runs.start_run(anydb, [("A-1", "refund my double charge"), (None, "the export button does nothing")],
                         source="seed", actor=LEAD)
    batch = ingest.parse_labelled("id,text,label\nA-1,x,billing\n,the export  button does nothing,technical\n"
                                  "B-2,dark mode please,product_feedback\n,,billing\n", "csv")
    plan = labels.plan(anydb, batch, TAX, "export.csv")
    assert plan.counts()["by_id"] == 1 and plan.counts()["by_text"] == 1 and plan.counts()["new"] == 1
    result = labels.apply(anydb, plan, actor=lead("maria"))
    assert (result.labelled, result.created, result.conflicts) == (2, 1, [])
    with anydb.read() as s:
        audit = s.execute(select(Correction.ticket_id, Correction.source, Correction.file, Correction.operator)
                          .order_by(Correction.id)).all()
        labelled = dict(s.execute(select(Ticket.id, Ticket.category).where(Ticket.label_source == "operator")).all())
    assert [tuple(a)[1:] for a in audit] == [("import", "export.csv", "maria")] * 3
    assert labelled[imp.ticket_ids[0]] == "billing" and labelled[imp.ticket_ids[1]] == "technical"
    again = labels.apply(anydb, labels.plan(anydb, batch, TAX, "export.csv"), actor=lead("maria"))
    assert (again.labelled, again.created) == (0, 0)
    with anydb.read() as s:
        assert len(s.scalars(select(Correction)).all()) == 3


def test_a_ticket_changed_after_the_plan_is_not_overwritten(anydb: Database) -> None:
    from triage import review

    imp = runs.start_run(anydb, [("A-1", "refund my double charge")], source="seed", actor=LEAD)
    plan = labels.plan(anydb, ingest.parse_labelled("id,text,label\nA-1,x,billing\n", "csv"), TAX, "f.csv")
    review.correct(anydb, imp.ticket_ids[0], "account", actor=op("carol"), expected_version=1, taxonomy=TAX)
    result = labels.apply(anydb, plan, actor=lead("maria"))
    assert result.labelled == 0 and "changed by carol" in result.conflicts[0]
    with anydb.read() as s:
        t = s.get_one(Ticket, imp.ticket_ids[0])
        assert (t.category, t.corrected_by, t.version) == ("account", "carol", 2)
