"""The blind audit's figures are cached by their data version: a rerun with nothing new reads no audit rows; a new
answer, a newly settled ticket or a change of the audit rate makes the next run read them again."""

import asyncio
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from streamlit.testing.v1 import AppTest

from db import audit_sample
from db.engine import Database
from db.migrate import open_database
from tests.dashboard.conftest import TAX, make_app
from tests.support.actors import LEAD, op
from tests.support.fakes import ScriptedProvider
from triage import settings as config
from triage.quality import unreviewed
from triage.routing.router import Router
from triage.work import pipeline, runs

SURE = {f"sure ticket number {i}": ("billing", 0.9) for i in range(4)}


def settle(db: Database, answers: dict[str, tuple[str, float]]) -> list[int]:
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: answers[t]), None, TAX)
    imp = runs.start_run(db, [(None, t) for t in answers], source="seed", actor=LEAD, mode="haiku")
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    return imp.ticket_ids


@pytest.fixture
def audited(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, list[int]]]:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")  # every settled ticket drawn
    db = open_database(app_env)
    ids = settle(db, SURE)
    done, _ = unreviewed.answer(db, [(ids[0], "billing")], actor=op("ana"))
    assert done == [ids[0]]
    yield db, ids
    db.dispose()


@pytest.fixture
def audit_reads() -> Iterator[list[str]]:
    """Statements of this thread (not the background worker's) that read the audit rows themselves."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread().name != "triage-worker" and "audit_draws" in statement:
            seen.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def unreviewed_metric(at: AppTest) -> str:
    return str(next(m.value for m in at.metric if m.label == "all unreviewed traffic: right"))


def test_a_reload_reads_no_audit_rows_and_an_answer_a_settle_or_a_rate_change_reads_them_again(
        audited: tuple[Database, list[int]], audit_reads: list[str]) -> None:
    db, ids = audited
    at = make_app("quality")
    assert unreviewed_metric(at) == "100%"
    assert audit_reads, "the first run computes the figures"
    audit_reads.clear()
    at.run()
    assert not at.exception
    assert audit_reads == []  # same data: served from the cache, nothing recomputed
    assert unreviewed_metric(at) == "100%"

    # a new answer (wrong this time): the figure moves on the next run
    unreviewed.answer(db, [(ids[1], "technical")], actor=op("ana"))
    at.run()
    assert audit_reads and unreviewed_metric(at) == "50%"
    audit_reads.clear()
    at.run()
    assert audit_reads == []

    # a ticket settling without review adds to the population: read again
    settle(db, {"one more sure ticket": ("billing", 0.95)})
    at.run()
    assert audit_reads
    assert "of 5 settled without review" in " ".join(c.value for c in at.caption)
    audit_reads.clear()

    # a lead changes the audit rate: read again
    config.save_engine(db, actor=LEAD, audit_rate="0.5")
    at.run()
    assert audit_reads
    audit_reads.clear()
    at.run()
    assert audit_reads == []


def test_the_version_moves_with_what_the_figures_read(audited: tuple[Database, list[int]]) -> None:
    db, ids = audited
    before = unreviewed.data_version(db)
    assert unreviewed.data_version(db) == before
    unreviewed.answer(db, [(ids[2], "billing")], actor=op("ana"))
    after_answer = unreviewed.data_version(db)
    assert after_answer != before
    settle(db, {"another sure one": ("billing", 0.95)})
    after_settle = unreviewed.data_version(db)
    assert after_settle != after_answer
    config.save_engine(db, actor=LEAD, audit_rate="0.2")
    assert unreviewed.data_version(db) != after_settle
    with db.transaction() as s:  # the demo's redraw moves it too
        audit_sample.redraw(s, [ids[3]], 0.5, random.Random(1))
    assert unreviewed.data_version(db)[0] > after_settle[0]
