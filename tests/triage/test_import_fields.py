"""Every import records what a run's import records: the masked count and the language (the demo set here; label
files in tests/triage/test_labels_masked.py, runs in tests/triage/test_masked_views.py)."""

from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD
from triage import demo, taxonomy
from triage.settings import Settings


def test_demo_tickets_get_their_language_and_masked_count(db: Database) -> None:
    demo.fill(db, taxonomy.default(), actor=LEAD, settings=Settings(), days=0, local=False)
    with db.read() as s:
        got = s.execute(select(Ticket.masked_count, Ticket.language)).all()
    assert len(got) > 300 and all(count is not None for count, _ in got)
    languages = [lang for _, lang in got]
    assert languages.count("en") > 250 and len(set(languages) - {None}) > 1  # the sample set holds other languages
