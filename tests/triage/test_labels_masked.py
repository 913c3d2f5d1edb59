"""Label imports under `mask_store` (only the masked text stored): a file's rows carry the original text a help desk
exports, so they find their tickets by that text masked with the policy in force; ids still come first."""

from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD, lead
from triage import ingest, labels, taxonomy
from triage import settings as config
from triage.work import runs

TAX = taxonomy.default()
CARD = "Charged twice on card 4111 1111 1111 1111, refund one please"
PHONE = "Cannot log in, call me on +44 20 7946 0958"
PLAIN = "the app crashes on upload"


def imported(db: Database) -> list[int]:
    config.save_engine(db, actor=LEAD, mask_store="on")
    imp = runs.start_run(db, [(None, CARD), ("Z-7", PHONE), (None, PLAIN)], source="t", actor=LEAD)
    with db.read() as s:
        stored = {t.id: t.text for t in s.scalars(select(Ticket))}
    assert "4111" not in stored[imp.ticket_ids[0]] and "7946" not in stored[imp.ticket_ids[1]]  # stored masked
    return imp.ticket_ids


def test_rows_find_tickets_stored_masked_by_their_original_text(db: Database) -> None:
    card, phone, plain = imported(db)
    csv = ("id,text,label\n"
           f",\"{CARD}\",billing\n"  # by its text masked: [CARD]
           f"Z-7,\"{PHONE} (edited in the help desk)\",account\n"  # by id first, whatever the text
           f",{PLAIN},technical\n")  # no personal value: by its text as written
    plan = labels.plan(db, ingest.parse_labelled(csv, "csv"), TAX, "helpdesk.csv")
    c = plan.counts()
    assert (c["matched"], c["by_id"], c["by_text"], c["new"]) == (3, 1, 2, 0)
    assert {(x.ticket_id, x.matched_by) for x in plan.changes} == {(card, "text"), (phone, "id"), (plain, "text")}
    result = labels.apply(db, plan, actor=lead("maria"))
    assert (result.labelled, result.created) == (3, 0)
    with db.read() as s:
        got = {t.id: (t.category, t.label_source) for t in s.scalars(select(Ticket))}
    assert got == {card: ("billing", "operator"), phone: ("account", "operator"), plain: ("technical", "operator")}
    again = labels.plan(db, ingest.parse_labelled(csv, "csv"), TAX, "helpdesk.csv")
    assert (again.writes, again.unchanged) == (0, 3)  # importing the file twice changes nothing


def test_new_tickets_differing_only_in_a_personal_value_are_one_ticket_stored_masked(db: Database) -> None:
    imported(db)
    csv = ("text,label\n"
           "Refund to DE89 3704 0044 0532 0130 00 please,billing\n"
           "Refund to GB82 WEST 1234 5698 7654 32 please,billing\n")
    plan = labels.plan(db, ingest.parse_labelled(csv, "csv"), TAX, "refunds.csv")
    assert (plan.counts()["new"], plan.counts()["merged_duplicates"]) == (1, 1)
    result = labels.apply(db, plan, actor=lead("maria"))
    assert (result.created, result.conflicts) == (1, [])
    with db.read() as s:
        (text, masked, language) = s.execute(select(Ticket.text, Ticket.masked_count, Ticket.language)
                                             .where(Ticket.source == "refunds.csv")).one()
    assert (text, masked, language) == ("Refund to [IBAN] please", 1, "en")
    second = labels.plan(db, ingest.parse_labelled(csv, "csv"), TAX, "refunds.csv")
    assert (second.matched, second.counts()["new"]) == (1, 0)  # both rows are that ticket now
