"""Priority end to end: the real SDK over HTTP to the fake Messages API (every body checked against the API's spec),
a real SQLite database. The fake reads each ticket's priority from its own text, so a ticket given a neighbour's
priority shows; the grouped run is played under the same faults as the category."""

import json
import random
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import ModelCall, Ticket
from db.queue import Imported
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic, keyword_label, keyword_priority
from triage import taxonomy
from triage.settings import Settings
from triage.work import pipeline, runs, services

TAX = taxonomy.default()
SUBJECTS = ["the whole service is down, outage for every user", "I am blocked and cannot log in to my account",
            "the invoice total looks odd to me", "feature suggestion: dark mode would be nice"]


def texts(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"case {i}: {rnd.choice(SUBJECTS)} ({'x' * rnd.randint(0, 40)})" for i in range(n)]


def run(fake: FakeAnthropic, db: Database, items: Sequence[str], per_call: int
        ) -> tuple[Imported, pipeline.RunReport]:
    imp = runs.start_run(db, [(None, t) for t in items], source="test", actor=LEAD)
    assert imp.run_id is not None
    router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url, per_call=per_call), TAX,
                                   mode="haiku", db=db)
    report = services.classify_run(db, router, imp.run_id, actor=LEAD, concurrency=2)
    return imp, report


@pytest.mark.parametrize("seed", [1, 2])
def test_each_grouped_ticket_gets_the_priority_its_own_text_earns_under_faults(fake: FakeAnthropic, db: Database,
                                                                               seed: int) -> None:
    fake.group_chaos = random.Random(seed)  # shuffled, dropped, repeated, invented, malformed, refused, cut off
    items = texts(30, seed)
    items[4] += " [[skip]]"
    items[9] += " [[twice]]"
    imp, report = run(fake, db, items, per_call=6)
    assert report.stopped is None
    with db.read() as s:
        got = {t.text: t for t in s.scalars(select(Ticket).where(Ticket.id.in_(imp.ticket_ids)))}
    assert len(got) == len(items)
    for text in items:
        t = got[text]
        assert t.category == keyword_label(text)[0]
        assert t.priority == keyword_priority(text, TAX.priority_names), text
        assert t.priority_source == "tier1" and t.priority_confidence == 0.8
    assert {t.priority for t in got.values()} == {"urgent", "high", "normal", "low"}


def test_one_ticket_per_call_records_priority_on_the_call_and_in_the_out_rows(fake: FakeAnthropic,
                                                                              db: Database) -> None:
    items = ["the site is down since 9am", "thanks, just feedback"]
    imp, _ = run(fake, db, items, per_call=1)
    assert imp.run_id is not None
    rows = runs.run_rows(db, imp.run_id, imp.ticket_ids, actor=LEAD)
    assert [(r["priority"], r["language"]) for r in rows] == [("urgent", "en"), ("low", "en")]
    with db.read() as s:
        calls = s.execute(select(ModelCall.ticket_id, ModelCall.tier, ModelCall.outcome, ModelCall.priority)).all()
        assert {p for *_, p in calls} == {"low", "urgent"}


def test_the_added_cost_is_a_few_output_tokens_per_ticket(fake: FakeAnthropic, db: Database) -> None:
    """Measured: the same answers with and without the priority fields, counted as the fake counts output
    (4 characters of the answer's JSON a token)."""
    from tests.support.fake_anthropic import ticket_answer

    items = texts(200, 7)
    with_p = sum(max(1, len(json.dumps(ticket_answer(t, "claude-haiku-5-5", TAX.priority_names))) // 4) for t in items)
    without = sum(max(1, len(json.dumps(ticket_answer(t, "claude-haiku-5-5"))) // 4) for t in items)
    added = (with_p - without) / len(items)
    assert 5 <= added <= 15, added  # about 11 tokens: '"priority": "normal", "priority_confidence": 0.8'
