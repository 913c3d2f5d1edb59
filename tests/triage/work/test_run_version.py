"""runs.run_version: what a page watching a run reads on every poll, to know whether to redraw and whether to poll."""

import asyncio

from db import queue
from db import runs as db_runs
from db.engine import Database
from tests.support.actors import LEAD, op
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()


def router() -> Router:
    return Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.95)),
                  ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("account", 0.9)), TAX)


def known(version: runs.RunVersion | None) -> runs.RunVersion:
    assert version is not None, "the run has a version"
    return version


def test_the_fingerprint_changes_with_everything_a_card_shows_and_waiting_ends_with_the_run(db: Database) -> None:
    imp = runs.start_run(db, [(None, "refund me"), (None, "app crashes"), (None, "dark mode")], source="t", actor=LEAD)
    assert imp.run_id is not None
    shown = imp.ticket_ids[:2]
    queued = known(runs.run_version(db, imp.run_id, shown))
    assert queued.waiting and queued.progress.states == {"pending": 3}

    with db.transaction() as s:  # a worker claims them: nothing on screen changes
        queue.claim_pending(s, "w:1", 10, imp.run_id)
    claimed = known(runs.run_version(db, imp.run_id, shown))
    assert claimed.shown == queued.shown and claimed.waiting
    with db.transaction() as s:
        queue.release_claims(s, "w:1")

    asyncio.run(pipeline.process_queue(db, router(), run_id=imp.run_id))
    done = known(runs.run_version(db, imp.run_id, shown))
    assert done.shown != queued.shown and not done.waiting
    assert done.progress.states == {"classified": 3}
    assert runs.run_version(db, imp.run_id, shown) == done  # nothing changed: the next poll redraws nothing

    runs.request_escalation(db, [shown[0]], actor=LEAD)  # asked from the tab: poll until Sonnet answered
    asked = known(runs.run_version(db, imp.run_id, shown))
    assert asked.shown != done.shown and asked.waiting
    asyncio.run(pipeline.process_queue(db, router(), run_id=imp.run_id))
    answered = known(runs.run_version(db, imp.run_id, shown))
    assert answered.shown != asked.shown and not answered.waiting

    # an operator's correction elsewhere shows on the card
    detail = review.detail(db, shown[1], actor=LEAD)
    assert detail is not None
    version = detail.ticket.version
    review.correct(db, shown[1], "technical", actor=op("lead"), expected_version=version, taxonomy=TAX)
    corrected = known(runs.run_version(db, imp.run_id, shown))
    assert corrected.shown != answered.shown and not corrected.waiting


def test_a_stopped_run_is_not_waited_on_and_an_unknown_run_has_no_version(db: Database) -> None:
    imp = runs.start_run(db, [(None, "refund me")], source="t", actor=LEAD)
    assert imp.run_id is not None
    with db.transaction() as s:
        db_runs.stop_running_runs(s, "the API key was rejected")
    stopped = known(runs.run_version(db, imp.run_id, imp.ticket_ids))
    assert stopped.progress.states == {"pending": 1} and not stopped.waiting  # nothing will happen until a restart
    assert runs.run_version(db, imp.run_id + 1, []) is None
    with db.read() as s:
        assert queue.tickets_fingerprint(s, []) == (0, 0, 0)
