"""Spend and Quality reruns cost nothing when nothing changed, and show new data on the next run."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event
from streamlit.testing.v1 import AppTest

from db import calls, queue
from db.engine import Database
from db.models import Ticket
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import texts
from tests.support.actors import op
from triage import review, taxonomy
from triage.domain import OK, CallResult

TAX = taxonomy.default()
FIGURE_TABLES = ("model_calls", "tickets", "corrections", "routing_daily", "latency_daily", "labelled_answers",
                 "cache_daily")


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """SQL the page sends (the background worker's polling is left out)."""
    seen: list[str] = []

    def record(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name != "triage-worker":
            seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def figure_queries(seen: list[str]) -> list[str]:
    """Statements that read figures rather than the data version or the settings."""
    return [q for q in seen if any(t in q for t in FIGURE_TABLES)
            and not q.startswith("SELECT max(priority_corrections.id)")  # a version, like labels_version
            or ("spend_daily" in q and not q.startswith("SELECT coalesce(sum(spend_daily.calls)"))]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_spend_rerun_without_new_data_reads_only_the_version_and_new_calls_show_next_run(
        seeded: tuple[Database, dict[str, int]], statements: list[str]) -> None:
    db, ids = seeded
    at = make_app("spend")
    assert figure_queries(statements), "the first run reads the figures"
    tickets = metric(at, "Tickets")
    statements.clear()
    at.run()
    assert not at.exception
    assert statements and figure_queries(statements) == []
    assert metric(at, "Tickets") == tickets and len(at.get("plotly_chart")) == 6
    assert "two significant digits" in texts(at)  # the latency resolution is stated
    with db.transaction() as s:  # a new ticket gets a call: the next run shows it
        new = queue.import_tickets(s, [(None, "brand new")], source="t", run_id=None).ticket_ids[0]
        calls.record_call(s, new, None, CallResult(1, "claude-haiku-5-5", OK, category="billing", confidence=0.9,
                                                   created_at=datetime.now(UTC)))
    statements.clear()
    at.run()
    assert figure_queries(statements)
    assert int(metric(at, "Tickets").replace(",", "")) == int(tickets.replace(",", "")) + 1


def test_quality_rerun_without_new_labels_reads_only_the_version_and_a_correction_shows_next_run(
        seeded: tuple[Database, dict[str, int]], statements: list[str]) -> None:
    db, ids = seeded
    with db.read() as s:
        t = s.get_one(Ticket, ids["charged twice"])
    review.correct(db, t.id, "billing", actor=op("alice"), expected_version=t.version, taxonomy=TAX)
    at = make_app("quality")
    assert "Measured on 1 tickets" in texts(at)
    statements.clear()
    at.run()
    assert statements and figure_queries(statements) == []
    with db.transaction() as s:  # a call on an unlabelled ticket does not touch what Quality measures
        calls.record_call(s, ids["weird one"], None, CallResult(1, "claude-haiku-5-5", OK, category="technical"))
    statements.clear()
    at.run()
    assert figure_queries(statements) == []
    with db.read() as s:
        t = s.get_one(Ticket, ids["app crashes on upload"])
    review.correct(db, t.id, "technical", actor=op("alice"), expected_version=t.version, taxonomy=TAX)
    statements.clear()
    at.run()
    assert figure_queries(statements) and "Measured on 2 tickets" in texts(at)
