"""The Quality page's priority figures: the model's latest priority against the priorities operators set."""

from sqlalchemy import select

from db.models import Ticket
from tests.support.actors import LEAD, OPERATOR
from triage import review, taxonomy
from triage.quality import priority
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()


def test_priority_is_measured_against_operator_priorities(fake, db):
    items = ["the site is down for everyone", "outage: nothing loads", "thanks for the feature", "my invoice is odd"]
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    assert imp.run_id is not None
    router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url), TAX, db=db)
    services.classify_run(db, router, imp.run_id, actor=LEAD)
    assert priority.measure(db, actor=LEAD).n == 0
    with db.read() as s:
        tickets = {t.text: (t.id, t.version, t.priority) for t in s.scalars(select(Ticket))}
    assert tickets[items[0]][2] == "urgent" and tickets[items[2]][2] == "low"
    for text, level in ((items[0], "urgent"), (items[1], "high"), (items[2], "low")):  # right, wrong, right
        tid, version, _ = tickets[text]
        review.correct_priority(db, tid, level, actor=OPERATOR, expected_version=version, taxonomy=TAX)
    result = priority.measure(db, actor=LEAD)
    assert (result.n, result.right, result.unknown) == (3, 2, 0)
    assert result.confusion[("high", "urgent")] == 1
    assert result.ece is not None
