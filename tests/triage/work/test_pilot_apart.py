"""A pilot kept apart from production beyond its tickets: its calls move no production rollup (the Spend page's
tickets, escalation, latency and cost per ticket, the tickets a day behind the review budget) though its spend is
counted; a pilot running in the dashboard's background worker is halted when the server stops, its calls in flight
booked; and a pilot whose process was killed is recovered once, with nothing counted twice. Real runs: the official
SDK over HTTP to the fake Messages API, a real SQLite database."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dashboard.worker import STOPPING, BackgroundWorker
from db import calls, ledger, queue, reports
from db import pilots as db_pilots
from db.engine import Database
from db.migrate import open_database
from db.models import CallAttempt, ModelCall, Pilot, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from tests.test_budget import billed
from tests.triage.work.test_pilot import scripted, write_gold
from triage import taxonomy
from triage.cli import main
from triage.domain import EVAL, OK, PENDING, PILOT, CallResult, from_pico
from triage.quality import measure
from triage.settings import Settings
from triage.spend import reports as reporting
from triage.work import pilot

TAX = taxonomy.default()
ROOT = Path(__file__).resolve().parents[3]
PLAN = pilot.Plan(24, Decimal("2"), text_column="body", label_column="final category")


def count(db: Database, *where: Any, of: Any = Ticket) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(of).where(*where)) or 0)


def wait_for(what: Callable[[], bool], timeout: float = 90.0) -> None:
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)


def production_figures(db: Database) -> dict[str, Any]:
    today = date.today()
    page = reporting.spend_page(db, today, today, tier2_model="claude-sonnet-4-5", today=today)
    with db.read() as s:
        routing = reports.routing_by_day(s, today, today)
    return {"tickets": page.summary.tickets, "escalation": page.summary.escalation_rate,
            "cost_per_ticket": page.summary.cost_per_ticket,
            "latency": [(x["model"], x["calls"]) for x in page.latency],
            "routing": [(r["day"], r["tickets"], r["tier1_tickets"], r["tier2_tickets"], r["direct_tier2_pico"],
                         r["production_cost_usd"]) for r in routing],
            "per_day": measure.tickets_per_day(db)}


def test_a_pilot_and_an_eval_move_no_production_figure_but_their_spend_counts(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake.responder = scripted
    today_file = tmp_path / "today.csv"  # production: Haiku unsure of the second, so it escalates to Sonnet
    today_file.write_text("text\nmy card was charged twice [[h=billing]] [[s=billing]] [[conf=0.95]]\n"
                          "the export crashes [[h=billing]] [[s=technical]] [[conf=0.45]]\n")
    assert main(["classify", str(today_file)]) == 0
    db = open_database(db_url)
    before = production_figures(db)
    assert before["tickets"] == 2 and before["escalation"] == 0.5 and before["per_day"] == 2.0
    spend_before = reporting.spend_page(db, date.today(), date.today(), tier2_model="claude-sonnet-4-5").summary.spend

    gold = write_gold(tmp_path / "history.csv", 24)
    code = main(["pilot", str(gold), "--sample", "24", "--cap", "2", "--text-column", "body", "--label-column",
                 "final category"])
    assert code == 0, capsys.readouterr().err
    with db.read() as s:
        pilot_calls = s.scalar(select(func.count()).select_from(ModelCall).join(Ticket).where(Ticket.purpose == PILOT))
        pilot_cost = from_pico(s.scalar(select(func.sum(ModelCall.cost_pico)).join(Ticket)
                                        .where(Ticket.purpose == PILOT)))
    assert pilot_calls and pilot_calls > 24 and pilot_cost > 0  # it did call, and escalate

    # an eval's gold ticket answered too (purpose eval): not traffic either
    with db.transaction() as s:
        run_id = db_pilots_run(s)
        gold_ticket = queue.import_tickets(s, [("eval:gold.csv#1", "gold row")], source="eval:gold.csv",
                                           run_id=run_id, purpose=EVAL).ticket_ids[0]
        calls.record_call(s, gold_ticket, run_id, CallResult(1, "claude-haiku-4-5", OK, category="billing",
                                                             confidence=0.9, latency_ms=640,
                                                             cost_usd=Decimal("0.001"), created_at=datetime.now(UTC)))
    after = production_figures(db)
    assert after == before  # tickets, escalation, latency, cost per ticket, tickets a day: production's alone
    page = reporting.spend_page(db, date.today(), date.today(), tier2_model="claude-sonnet-4-5")
    assert page.summary.spend == spend_before + pilot_cost + Decimal("0.001")  # real money, counted
    assert page.estimates.pilot_usd == pilot_cost  # and the pilot's said apart
    # the rollups are what their definition computes from the calls
    with db.read() as s:
        raw = reports.routing_by_day_from_calls(s)
        assert [(r["day"], r["tickets"], r["tier1_tickets"], r["tier2_tickets"], r["direct_tier2_pico"]) for r in raw] \
            == [x[:5] for x in after["routing"]]
        hist = {(r["model"], r["bucket_ms"]): r["calls"] for r in reports.latency_histogram_from_calls(s)}
        assert hist == {(m, b): n for m, b, n in reports.latency_histogram(s)}
        everything = reports.routing_by_day_from_calls(s, apart=False)  # counted as before: every ticket
        assert everything[0]["tickets"] >= 2 + 48 + 1  # the pilot's paid routes asked all 24 rows twice
    db.dispose()


def db_pilots_run(s: Any) -> int:
    from db import runs as db_runs

    return db_runs.create_run(s, started_by="eval", source="eval:gold.csv", mode="haiku", threshold=0.7,
                              purpose=EVAL)


def pilot_books(db: Database, pilot_id: int) -> dict[str, Any]:
    """What a stopped pilot leaves: its row, its tickets by state, the ledger of its runs."""
    with db.read() as s:
        stored = db_pilots.get(s, pilot_id)
        assert stored is not None
        row = pilot.loaded(stored)
        assert row["spec"] is not None
        run_ids = list(row["spec"]["runs"].values())
        states = dict(s.execute(select(Ticket.status, func.count()).where(Ticket.purpose == PILOT)
                                .group_by(Ticket.status)).all())
        claimed = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.purpose == PILOT,
                                                                         Ticket.claimed_by.is_not(None)))
        attempts = dict(s.execute(select(CallAttempt.state, func.count()).where(CallAttempt.run_id.in_(run_ids))
                                  .group_by(CallAttempt.state)).all())
        lost_pico = s.scalar(select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
                             .where(CallAttempt.run_id.in_(run_ids), CallAttempt.state == ledger.LOST))
        recorded = s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                            .where(ModelCall.run_id.in_(run_ids)))
        run_states = set(s.scalars(select(Run.status).where(Run.id.in_(run_ids))))
    return {"row": row, "states": states, "claimed": claimed, "attempts": attempts, "lost_pico": int(lost_pico or 0),
            "recorded_pico": int(recorded or 0), "runs": run_states}


@pytest.mark.parametrize("delay, grace", [(1.0, 5.0), (30.0, 0.5)], ids=["answers-in-grace", "cut-off"])
def test_a_pilot_in_the_dashboard_worker_is_halted_when_the_server_stops(db: Database, fake: FakeAnthropic,
                                                                          tmp_path: Path, delay: float,
                                                                          grace: float) -> None:
    fake.responder = scripted
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=4)
    pilot_id = pilot.start(db, settings, TAX, str(write_gold(tmp_path / "history.csv", 24)), PLAN, actor=LEAD)
    fake.delay = delay
    w = BackgroundWorker(db, settings, poll_seconds=0.05, stop_grace=grace).start()
    try:
        wait_for(lambda: count(db, CallAttempt.state == ledger.OPEN, of=CallAttempt) >= 1)
        started = time.monotonic()
        w.stop()
        assert time.monotonic() - started < grace + 8 and not w._thread.is_alive()
    finally:
        w.stop()
    books = pilot_books(db, pilot_id)
    row = books["row"]
    assert row["status"] == db_pilots.STOPPED and STOPPING in (row["message"] or "")
    assert row["result"] is not None and row["result"]["stopped"] == row["message"]  # what it measured, kept
    assert PENDING not in books["states"] and books["claimed"] == 0  # nothing left for a worker to send later
    assert ledger.OPEN not in books["attempts"] and "running" not in books["runs"]
    if delay < grace:  # the calls in flight came back within the grace: recorded, none lost
        assert ledger.LOST not in books["attempts"]
    else:  # cut off: booked as lost (probably billed) at their worst case, none recorded twice
        assert books["attempts"].get(ledger.LOST, 0) >= 1
    spent = Decimal(row["result"]["spent_usd"])
    assert spent == from_pico(books["recorded_pico"] + books["lost_pico"])
    assert billed(fake) <= from_pico(books["recorded_pico"] + books["lost_pico"])  # every billed answer on the books


PILOT_CLI = "import sys; from triage.cli import main; sys.exit(main(sys.argv[1:]))"


def test_a_killed_pilot_is_recovered_once_with_its_calls_in_flight_booked(env: dict[str, str], db_url: str,
                                                                         fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.responder = scripted
    fake.delay = 30.0  # every answer arrives long after the kill
    gold = write_gold(tmp_path / "history.csv", 24)
    child = {**env, "PYTHONPATH": str(ROOT), "TRIAGE_CONCURRENCY": "4"}
    db = open_database(db_url)
    proc = subprocess.Popen([sys.executable, "-c", PILOT_CLI, "pilot", str(gold), "--sample", "24", "--cap", "2",
                             "--text-column", "body", "--label-column", "final category"], env=child, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: count(db, CallAttempt.state == ledger.OPEN, of=CallAttempt) >= 1)
    finally:
        proc.send_signal(signal.SIGKILL)  # no handler, no clean-up: the state a crash leaves
        proc.wait(timeout=30)
    with db.read() as s:
        pilot_id = s.scalar(select(Pilot.id))
        assert pilot_id is not None
        assert s.scalar(select(Pilot.status)) == db_pilots.RUNNING  # as the kill left it
        in_flight = int(s.scalar(select(func.count()).select_from(CallAttempt)
                                 .where(CallAttempt.state == ledger.OPEN)) or 0)
        held = int(s.scalar(select(func.count()).select_from(Ticket).where(Ticket.claimed_by.is_not(None))) or 0)
    assert in_flight >= 1 and held >= 1

    assert pilot.recover(db) == 1
    books = pilot_books(db, pilot_id)
    row = books["row"]
    assert row["status"] == db_pilots.STOPPED and "its process stopped" in (row["message"] or "")
    assert books["attempts"] == {ledger.LOST: in_flight}  # probably billed, at their worst case
    # no paid answer came back before the kill (the local route's answers, free, were recorded before it)
    assert books["recorded_pico"] == 0 and count(db, ModelCall.tier >= 1, of=ModelCall) == 0
    assert PENDING not in books["states"] and books["claimed"] == 0 and "running" not in books["runs"]
    assert set(books["states"]) <= {"failed", "classified", "needs_review"}
    assert Decimal(row["result"]["spent_usd"]) == from_pico(books["lost_pico"]) > 0
    estimates = reporting.estimates(db)
    assert estimates.interrupted_calls == in_flight and estimates.interrupted_usd == from_pico(books["lost_pico"])

    # again: nothing left to recover, nothing counted twice; and no worker ever sends its tickets
    assert pilot.recover(db) == 0
    assert pilot_books(db, pilot_id) == books
    assert reporting.estimates(db) == estimates
    asked = len(fake.requests)
    assert main(["worker", "--once"]) == 0 and len(fake.requests) == asked
    db.dispose()
