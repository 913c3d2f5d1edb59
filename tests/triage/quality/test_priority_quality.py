"""The Quality page's priority figures: the model's latest priority against the priorities operators set."""

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD, OPERATOR
from tests.support.fake_anthropic import FakeAnthropic
from triage import review, taxonomy
from triage.quality import priority
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()


def test_priority_is_measured_against_operator_priorities(fake: FakeAnthropic, db: Database) -> None:
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


def test_triage_quality_prints_the_pages_priority_figures(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    """`triage quality` (text and --json `priority`) gives the figures the Quality page draws (priority.measure):
    three tickets an operator prioritised, two the model got right, one it said nothing about."""
    import asyncio
    import json

    from tests.support.fakes import ScriptedProvider
    from triage.cli import main
    from triage.quality.report import priority_dict
    from triage.routing.router import Router
    from triage.work import pipeline

    said = {"down": ("urgent", 0.9), "slow": ("urgent", 0.6), "idea": ("low", 0.8), "other": (None, None)}
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: {
        "category": "technical", "confidence": 0.95, "priority": said[t][0], "priority_confidence": said[t][1]}),
        ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("technical", 0.9)), TAX)
    imp = runs.start_run(cli_db, [(None, k) for k in said], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(cli_db, router, run_id=imp.run_id))
    assert main(["quality", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["priority"]["n"] == 0
    assert main(["quality"]) == 0
    assert "Priority: no ticket has a priority set by an operator yet" in capsys.readouterr().out
    with cli_db.read() as s:
        version = {t.text: (t.id, t.version) for t in s.scalars(select(Ticket))}
    for text, level in (("down", "urgent"), ("slow", "high"), ("idea", "low"), ("other", "normal")):
        review.correct_priority(cli_db, *version[text][:1], level, actor=OPERATOR, expected_version=version[text][1],
                                taxonomy=TAX)
    assert main(["quality", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["priority"]
    assert got == json.loads(json.dumps(priority_dict(priority.measure(cli_db, actor=LEAD))))  # the page's figures
    assert (got["n"], got["right"], got["unknown"], got["accuracy"]) == (4, 2, 1, 0.5)
    # ECE over the three answers with a confidence: 0.9 right (bin 0.9), 0.6 wrong (bin 0.6), 0.8 right (bin 0.8)
    assert got["ece"] == pytest.approx((0.1 + 0.6 + 0.2) / 3)
    assert {"operator": "high", "model": "urgent", "tickets": 1} in got["confusion"]
    assert {"operator": "normal", "model": "unknown", "tickets": 1} in got["confusion"]
    assert "tickets an operator gave a priority" in got["measured_on"]
    assert main(["quality"]) == 0
    out = capsys.readouterr().out
    assert "Priority, measured on 4 tickets an operator gave a priority" in out
    assert "right 50.0% (2 of 4), calibration error 0.300, the model said unknown on 1" in out
    assert "  high         urgent             1" in out
