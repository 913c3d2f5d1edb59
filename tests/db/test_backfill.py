"""Filling in old tickets' masked counts and languages (triage/work/backfill.py, db/backfill.py), on SQLite and
PostgreSQL: in batches that resume from a cursor, only where a field is NULL, with the team the routing table gives,
leaving `updated_at` (retention's clock) and the version (operators' compare-and-set) as they were; run by
`triage db backfill` and by idle workers."""

import time
from typing import Any

import pytest
from sqlalchemy import select, update

from db import backfill as db_backfill
from db import runs as db_runs
from db import teams as db_teams
from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import privacy
from triage.domain import TeamRule
from triage.work import backfill, runs

OLD = {  # text -> (masked count, language) an import computes now
    "Bonjour, ma carte 4111 1111 1111 1111 a été débitée deux fois, merci de me rembourser": (1, "fr"),
    "Please reach me at ana@example.com or +44 20 7946 0958 about my refund": (2, "en"),
    "The export button does nothing when I click it, in every browser we tried": (0, "en"),
    "1234 5678 !!! ???": (0, None),  # no letters: the language stays unknown
}
ERASED = "an erased ticket's text was here, with bob@example.com"
RULES = (TeamRule("paris", language="fr"), TeamRule("everyone"))


def make_old(db: Database) -> dict[str, int]:
    """Tickets as imports left them before migrations 0020/0021: masked count and language NULL (and one erased),
    none of them waiting for a worker (their run finished); the routing table gives French tickets to the Paris team."""
    imp = runs.start_run(db, [(None, t) for t in [*OLD, ERASED]], source="old", actor=LEAD)
    ids = dict(zip([*OLD, ERASED], imp.ticket_ids, strict=True))
    with db.transaction() as s:
        s.execute(update(Ticket).values(masked_count=None, language=None, team=None, status="classified",
                                        updated_at=Ticket.created_at))
        s.execute(update(Ticket).where(Ticket.id == ids[ERASED]).values(text=""))
        db_teams.store(s, RULES, operator="lead")
        db_runs.finish_idle_runs(s)
    return ids


def rows(db: Database) -> dict[int, tuple[Any, ...]]:
    with db.read() as s:
        return {t.id: (t.masked_count, t.language, t.team, t.updated_at, t.version) for t in s.scalars(select(Ticket))}


def test_backfill_fills_in_batches_from_a_cursor_and_touches_nothing_else(anydb: Database) -> None:
    ids = make_old(anydb)
    before = rows(anydb)
    first = backfill.step(anydb, batch=3)
    assert (first.looked_at, first.done) == (3, False)  # the erased ticket is never read
    with anydb.read() as s:
        assert db_backfill.cursor(s) == ids[list(OLD)[2]]  # the walk resumes after the last ticket it looked at
    rest = backfill.run(anydb, batch=3)
    assert (rest.looked_at, rest.masked_counts, rest.languages, rest.done) == (1, 1, 0, True)
    after = rows(anydb)
    for text, (count, lang) in OLD.items():
        tid = ids[text]
        team = None if lang is None else ("paris" if lang == "fr" else "everyone")
        assert after[tid][:3] == (count, lang, team), text
        assert after[tid][3:] == before[tid][3:]  # updated_at (retention's clock) and the version as they were
    assert after[ids[ERASED]] == before[ids[ERASED]]  # erased: nothing to count or detect
    assert (first.masked_counts + rest.masked_counts, first.languages + rest.languages) == (4, 3)
    again = backfill.run(anydb)  # each ticket is looked at once: the unsure one is not read again
    assert (again.looked_at, again.done) == (0, True)
    with anydb.read() as s:
        assert db_backfill.cursor(s) == max(ids[t] for t in OLD)  # past every ticket it looked at


def test_backfill_counts_what_an_import_counts_now(anydb: Database) -> None:
    ids = make_old(anydb)
    backfill.run(anydb)
    prepared = privacy.prepare_import(anydb, [(None, t) for t in OLD])
    assert [rows(anydb)[ids[t]][:2] for t in OLD] == [
        (count, prepared.languages.get(t)) for (_, count), t in zip(prepared.privacy, OLD, strict=True)]


def test_a_value_set_meanwhile_or_a_text_erased_meanwhile_is_left_alone(anydb: Database) -> None:
    ids = make_old(anydb)
    english, card = ids[list(OLD)[2]], ids[list(OLD)[0]]
    with anydb.transaction() as s:  # read before these changes, written after them
        stale = [db_backfill.Filled(english, list(OLD)[2], 5, "de"), db_backfill.Filled(card, list(OLD)[0], 1, "fr")]
        s.execute(update(Ticket).where(Ticket.id == english).values(masked_count=0, language="en"))
        s.execute(update(Ticket).where(Ticket.id == card).values(text=""))
    with anydb.transaction() as s:
        assert db_backfill.fill(s, stale, RULES) == (0, 0)
    assert rows(anydb)[english][:2] == (0, "en") and rows(anydb)[card][:2] == (None, None)


def test_triage_db_backfill_runs_it_to_the_end(anydb: Database, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from triage.cli import main

    ids = make_old(anydb)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", anydb.url)
    assert main(["db", "backfill"]) == 0
    out = capsys.readouterr().out
    assert "looked at 4 ticket(s)" in out and "4 masked count(s) and 3 language(s) filled in" in out
    assert rows(anydb)[ids[list(OLD)[0]]][:3] == (1, "fr", "paris")
    assert main(["db", "backfill"]) == 0
    assert "looked at 0 ticket(s)" in capsys.readouterr().out


@pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)
def test_an_idle_dashboard_worker_fills_them_in(anydb: Database) -> None:
    from dashboard.worker import BackgroundWorker
    from triage.settings import Settings

    ids = make_old(anydb)
    worker = BackgroundWorker(anydb, Settings(), poll_seconds=0.05, retention_every=3600).start()
    try:
        deadline = time.monotonic() + 30
        while rows(anydb)[ids[list(OLD)[1]]][0] is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert rows(anydb)[ids[list(OLD)[1]]][:2] == (2, "en")


def test_when_idle_looks_again_only_after_a_while_and_never_raises(anydb: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ids = make_old(anydb)
    first = backfill.when_idle(anydb)
    assert first is not None and first.done  # 4 tickets, one batch: done
    with anydb.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id == ids[list(OLD)[0]]).values(language=None))
        db_backfill.advance(s, 0)
    assert backfill.when_idle(anydb) is None  # quiet for RECHECK_SECONDS
    monkeypatch.setattr(backfill, "RECHECK_SECONDS", 0.0)
    backfill._quiet_until.clear()
    monkeypatch.setenv("TRIAGE_MASK_PHONE_REGION", "XX")  # a policy that cannot be built: logged, not raised
    with anydb.transaction() as s:
        s.execute(update(Ticket).where(Ticket.id == ids[list(OLD)[0]]).values(masked_count=None))
    failed = backfill.when_idle(anydb)
    assert failed is not None and failed.looked_at == 0
    monkeypatch.delenv("TRIAGE_MASK_PHONE_REGION")
    again = backfill.when_idle(anydb)
    assert again is not None and again.masked_counts == 1
    assert rows(anydb)[ids[list(OLD)[0]]][:2] == (1, "fr")


@pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("with_key", [False, True])
def test_an_idle_triage_worker_fills_them_in(anydb: Database, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch,
                                             with_key: bool) -> None:
    from triage.cli import main

    ids = make_old(anydb)
    monkeypatch.setenv("TRIAGE_DATABASE_URL", anydb.url)
    if with_key:  # the queue drained through the API (services.run_worker); else the local tier's loop
        monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    else:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["worker", "--once"]) == 0
    assert rows(anydb)[ids[list(OLD)[1]]][:2] == (2, "en")
    assert not fake.requests  # nothing was waiting: no request was sent
