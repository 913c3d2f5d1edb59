"""Issue 27, item 4: asking Sonnet again about a ticket it already decided bills again, so the escalation request
service refuses it unless `again=True` is passed (the CLI's --again), naming the price; nothing is queued."""

import asyncio
import json
from collections.abc import Sequence
from decimal import Decimal

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent, ModelCall, Ticket
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider
from triage import taxonomy
from triage.domain import money_text
from triage.errors import InputError
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()


def router() -> Router:
    return Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.95 if "sure" in t else 0.4)),
                  ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("account", 0.9)), TAX)


@pytest.fixture
def decided(db: Database) -> list[int]:
    """Ticket 0 decided by Haiku alone, ticket 1 escalated and decided by Sonnet."""
    imp = runs.start_run(db, [(None, "sure: refund me"), (None, "login or refund?")], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router(), run_id=imp.run_id))
    return imp.ticket_ids


def sonnet_calls(db: Database, ticket_id: int) -> Sequence[int]:
    with db.read() as s:
        return s.scalars(select(ModelCall.cost_pico).where(ModelCall.ticket_id == ticket_id, ModelCall.tier == 2)).all()


def test_a_sonnet_decided_ticket_is_refused_with_its_price_and_nothing_is_queued(db: Database,
                                                                                 decided: list[int]) -> None:
    haiku_only, by_sonnet = decided
    assert runs.sonnet_decided(db, decided) == {by_sonnet: runs.sonnet_decided(db, [by_sonnet])[by_sonnet]}
    price = runs.sonnet_decided(db, [by_sonnet])[by_sonnet]
    assert price > 0 and Decimal(sonnet_calls(db, by_sonnet)[0]) / 10**12 == price
    with db.read() as s:
        version = s.get_one(Ticket, by_sonnet).version
        audits = len(s.scalars(select(AuditEvent)).all())

    with pytest.raises(runs.AlreadyDecided) as refused:  # alone, or among others: the whole request is refused
        runs.request_escalation(db, [haiku_only, by_sonnet], actor=LEAD)
    assert isinstance(refused.value, InputError) and refused.value.prices == {by_sonnet: price}
    assert f"${money_text(price)}" in str(refused.value) and f"ticket {by_sonnet}" in str(refused.value)
    with db.read() as s:  # nothing queued, nothing audited
        assert [t.escalation_requested for t in s.scalars(select(Ticket).order_by(Ticket.id))] == [False, False]
        assert s.get_one(Ticket, by_sonnet).version == version and s.get_one(Ticket, by_sonnet).status != "pending"
        assert len(s.scalars(select(AuditEvent)).all()) == audits

    assert runs.request_escalation(db, [haiku_only], actor=LEAD) == 1  # never decided by Sonnet: no question asked


def test_again_asks_and_bills_again_and_the_audit_says_so(db: Database, decided: list[int]) -> None:
    _, by_sonnet = decided
    assert runs.request_escalation(db, [by_sonnet], actor=LEAD, again=True) == 1
    asyncio.run(pipeline.process_queue(db, router()))
    assert len(sonnet_calls(db, by_sonnet)) == 2  # asked twice: billed twice, on purpose
    with db.read() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.event == "escalation.request")).one()
        assert json.loads(event.detail) == {"tickets": 1, "ids": [by_sonnet], "again": True}
