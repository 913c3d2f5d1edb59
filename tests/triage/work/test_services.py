"""Service layer with a real SQLite database; providers faked at the boundary or served over HTTP."""

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from sqlalchemy import func, select

from db import queue
from db.engine import Database
from db.models import ModelCall, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fakes import ScriptedProvider, error
from triage import domain as base
from triage import taxonomy
from triage.routing.router import Router
from triage.work import pipeline, runs, services

TAX = taxonomy.default()


def by_text(table: Mapping[str, Any]) -> Callable[[str], Any]:
    return lambda text: table[text.split(":")[0]]


def make_router(t1: Mapping[str, Any], t2: Mapping[str, Any], **kw: Any) -> Router:
    return Router(ScriptedProvider(1, "claude-haiku-5-5", fn=by_text(t1)),
                  ScriptedProvider(2, "claude-sonnet-5-5", fn=by_text(t2)), TAX, **kw)


def scripted(router: Router) -> ScriptedProvider:
    """Tier 1 as make_router made it."""
    assert isinstance(router.tier1, ScriptedProvider)
    return router.tier1


def test_every_ticket_ends_in_a_known_state(db: Database) -> None:
    t1 = {"a": ("billing", 0.9), "b": ("account", 0.3), "c": error(), "d": ("billing", 0.2),
          "e": {"outcome": base.UNKNOWN_LABEL, "category": "unknown"}}
    t2 = {"b": ("technical", 0.95), "d": ("billing", 0.4), "e": ("account", 0.9)}
    imp = runs.start_run(db, [(None, f"{k}: text") for k in "abcde"], source="test", actor=LEAD)
    assert imp.run_id is not None
    report = asyncio.run(pipeline.process_queue(db, make_router(t1, t2), run_id=imp.run_id, concurrency=3))
    assert report.states == {"classified": 1, "escalated": 2, "failed": 1, "needs_review": 1}
    rows = {r["id"]: r for r in runs.run_rows(db, imp.run_id, imp.ticket_ids, actor=LEAD)}
    assert rows["2"]["category"] == "technical" and rows["2"]["escalated"] and rows["2"]["tier"] == "tier2"
    assert rows["3"]["status"] == "failed" and "529" in (rows["3"]["reason"] or "")
    assert rows["1"]["cost_usd"] == "0.001" and rows["2"]["cost_usd"] == "0.003"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.claimed_by.is_not(None))) == 0


def test_reimport_does_not_duplicate_and_reports_known(db: Database) -> None:
    items = [("X1", "refund please"), (None, "app crashes"), (None, "app crashes")]
    first = runs.start_run(db, items, source="f.csv", actor=LEAD)
    assert len(first.new_ids) == 2 and first.ticket_ids[1] == first.ticket_ids[2]
    again = runs.start_run(db, items, source="f.csv", actor=LEAD)
    assert again.new_ids == [] and len(again.known_ids) == 2
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 2


def test_failed_tickets_are_retried_without_repeating_billed_calls(db: Database) -> None:
    t1 = {"a": ("billing", 0.4)}
    failing = {"a": error()}
    imp = runs.start_run(db, [(None, "a: text")], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, make_router(t1, failing), run_id=imp.run_id))
    with db.read() as s:
        t = s.get_one(Ticket, imp.ticket_ids[0])
        assert t.status == "failed" and t.category == "billing"
    router = make_router(t1, {"a": ("account", 0.9)})
    (queued,) = runs.requeue_failed(db, actor=LEAD)
    assert queued.tickets == 1 and queued.mode == "auto"
    asyncio.run(pipeline.process_queue(db, router, run_id=queued.run_id))
    assert scripted(router).calls == []  # tier 1 was billed once, in the first run
    with db.read() as s:
        t = s.get_one(Ticket, imp.ticket_ids[0])
        assert (t.status, t.category, t.escalated) == ("escalated", "account", True)
        assert s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.tier == 1)) == 1


def test_rejected_key_stops_the_run_and_leaves_the_rest_pending(db: Database) -> None:
    t1 = {str(i): error(base.AUTH, "the API key was rejected (401)") for i in range(20)}
    imp = runs.start_run(db, [(None, f"{i}: t") for i in range(20)], source="t", actor=LEAD)
    router = make_router(t1, {})
    report = asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=4))
    assert report.stopped is not None and "rejected" in report.stopped
    assert 1 <= len(scripted(router).calls) <= 4  # no retry storm: only the requests already in flight
    assert report.states == {"pending": 20}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.claimed_by.is_not(None))) == 0


def test_escalate_on_demand_by_id_and_below(db: Database) -> None:
    imp = runs.start_run(db, [(None, "a: x"), (None, "b: y")], source="t", actor=LEAD)
    router = make_router({"a": ("billing", 0.95), "b": ("billing", 0.8)}, {"a": ("account", 0.9)})
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.read() as s:
        assert queue.ticket_ids_below(s, 0.9) == [imp.ticket_ids[1]]
    report = asyncio.run(pipeline.escalate_tickets(db, router, [imp.ticket_ids[0]]))
    assert report.processed == 1
    with db.read() as s:
        t = s.get_one(Ticket, imp.ticket_ids[0])
        assert (t.category, t.tier2_category, t.tier1_category, t.status) == ("account", "account", "billing",
                                                                              "escalated")


def test_worker_drains_every_pending_ticket(db: Database) -> None:
    runs.start_run(db, [(None, f"a: {i}") for i in range(7)], source="t", actor=LEAD)
    runs.start_run(db, [(None, f"a: {i}") for i in range(7, 10)], source="t", actor=LEAD)
    router = make_router({"a": ("billing", 0.9)}, {})
    report = asyncio.run(pipeline.drain(db, router, once=True, concurrency=2))
    assert report.processed == 10 and len(scripted(router).calls) == 10
    with db.read() as s:
        assert s.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all() == [("classified", 10)]


def test_over_http_with_the_real_sdk(db: Database, fake: FakeAnthropic) -> None:
    from triage.settings import Settings

    settings = Settings(api_key=fake.api_key, base_url=fake.base_url)
    router = services.build_router(settings, TAX)
    imp = runs.start_run(db, [(None, "I was charged twice, refund"), (None, "refund? or crash? [[conf=0.4]]")],
                             source="t", actor=LEAD)
    report = asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    assert report.states == {"classified": 1, "escalated": 1}
    with db.read() as s:
        calls = s.scalars(select(ModelCall).order_by(ModelCall.ticket_id, ModelCall.id)).all()
    first, second = imp.ticket_ids
    assert [(c.ticket_id, c.tier, c.model) for c in calls] == [(first, 1, "claude-haiku-5-5"),
                                                               (second, 1, "claude-haiku-5-5"),
                                                               (second, 2, "claude-sonnet-5-5")]
    assert all((c.request_id or "").startswith("req_") and c.input_tokens > 0 and c.cost_pico > 0 for c in calls)
    assert sorted(c.input_tokens for c in calls) == sorted(u["input_tokens"] for u in fake.usage_log)


def test_an_unexpected_failure_leaves_a_reason_without_the_ticket_text(db: Database) -> None:
    """A database error's text carries its statement's bound values (ticket text): the ticket's reason, which
    operators read on the review page, names the error's kind only (the text goes to the log)."""
    from sqlalchemy.exc import OperationalError

    secret = "card 4111 1111 1111 1111 charged twice"

    def boom(text: str) -> NoReturn:
        raise OperationalError("UPDATE tickets SET note=?", (text,), Exception("database is locked"))

    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=boom), ScriptedProvider(2, "claude-sonnet-5-5"), TAX)
    imp = runs.start_run(db, [(None, secret)], source="t", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.read() as s:
        t = s.get_one(Ticket, imp.ticket_ids[0])
        assert t.status == "failed"
        assert t.status_reason == "internal error: OperationalError; the server's log has the details"
        assert "4111" not in (t.status_reason or "")
