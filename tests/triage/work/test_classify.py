"""The classification service (triage.work.classify): the route chosen in one place, the role asked first on
every route (the batch route included), a run started and finished over real HTTP against the fake Messages API."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import Run, Ticket
from tests.support.actors import LEAD, OPERATOR, VIEWER
from tests.support.fake_anthropic import FakeAnthropic
from triage import taxonomy
from triage.cli import main
from triage.errors import AccessDenied, InputError, NoApiKey
from triage.settings import Settings
from triage.work import classify, runs

TAX = taxonomy.default()
ITEMS = [("C-1", "I was charged twice, please refund"), ("C-2", "The app crashes on upload")]


def paid(fake: FakeAnthropic, **kw: Any) -> Settings:
    return Settings(api_key=fake.api_key, base_url=fake.base_url, **kw)


def counts(db: Database) -> tuple[int | None, int | None]:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Run)), s.scalar(select(func.count()).select_from(Ticket))


@pytest.mark.parametrize(("route", "batch", "key", "chosen"), [
    (None, False, True, "auto"), ("haiku", True, True, "haiku"), ("sonnet", False, True, "sonnet"),
    ("local", False, True, "local"), (None, False, False, "local"), ("auto", False, False, "local"),
    ("local", False, False, "local"),
])
def test_the_route_is_the_one_asked_for_or_local_without_a_key(route: str | None, batch: bool, key: bool,
                                                               chosen: str) -> None:
    settings = Settings(api_key="sk-test" if key else None)
    assert classify.choose_route(settings, route, batch=batch) == chosen
    assert chosen in classify.routes(settings)


@pytest.mark.parametrize(("route", "batch", "key", "error"), [
    ("haiku", False, False, NoApiKey), ("sonnet", False, False, NoApiKey), ("sonnet", True, True, InputError),
    ("local", True, True, InputError), (None, True, False, InputError), ("batch", False, True, InputError),
])
def test_a_route_that_cannot_be_taken_is_refused(route: str | None, batch: bool, key: bool,
                                                 error: type[Exception]) -> None:
    with pytest.raises(error):
        classify.choose_route(Settings(api_key="sk-test" if key else None), route, batch=batch)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("background", [False, True])
def test_a_viewer_cannot_start_a_run_on_any_route_and_nothing_is_written(fake: FakeAnthropic, db: Database, batch: bool,
                                                                         background: bool) -> None:
    before = counts(db)
    with pytest.raises(AccessDenied):
        classify.start(db, paid(fake), TAX, ITEMS, actor=VIEWER, source="t", batch=batch, background=background)
    assert counts(db) == before and not fake.requests


def test_a_viewer_cannot_start_a_batch_run_from_the_command_line(env: dict[str, str], fake: FakeAnthropic, db: Database,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The command line acts as a lead; were it ever to act as someone else, its batch route asks the same rule."""
    monkeypatch.setattr("triage.cli.common.cli_actor", lambda _operator: VIEWER)
    src = tmp_path / "t.txt"
    src.write_text("I was charged twice\n")
    assert main(["classify", str(src), "--batch", "--no-wait"]) == AccessDenied.exit_code
    assert "error:" in capsys.readouterr().err
    assert counts(db) == (0, 0) and not fake.requests and not fake.batches


def test_a_background_batch_run_is_held_for_the_worker_and_a_live_one_waits_pending(fake: FakeAnthropic,
                                                                                    db: Database) -> None:
    economy = classify.start(db, paid(fake), TAX, ITEMS, actor=OPERATOR, source="dashboard", route="haiku",
                             batch=True, background=True)
    live = classify.start(db, paid(fake), TAX, [(None, "where is my parcel")], actor=OPERATOR, source="dashboard",
                          background=True)
    assert (economy.route, economy.batch, economy.new, live.route, live.batch) == ("haiku", True, 2, "auto", False)
    with db.read() as s:
        runs = {r.id: r for r in s.scalars(select(Run))}
        assert runs[economy.run_id].batch_state == "queued" and runs[economy.run_id].mode == "haiku"
        assert runs[live.run_id].batch_state is None and runs[live.run_id].started_by == OPERATOR.identity
        held = set(s.scalars(select(Ticket.claimed_by).where(Ticket.run_id == economy.run_id)))
        assert held == {f"batch:run-{economy.run_id}"}
    assert not fake.requests  # nothing is sent by a start left to the worker


def test_start_then_finish_classifies_live_and_sums_up_exactly(fake: FakeAnthropic, db: Database) -> None:
    started = classify.start(db, paid(fake), TAX, [*ITEMS, ITEMS[0]], actor=LEAD, source="t", route="haiku")
    assert (started.new, started.known, started.tickets, len(started.ticket_ids)) == (2, 0, 2, 3)
    said: list[str] = []
    summary = classify.finish(db, paid(fake), TAX, started, actor=LEAD, say=said.append)
    assert len(summary.rows) == 3 and summary.states == {"classified": 2} and summary.pending == 0
    assert summary.cost == sum((Decimal(r["cost_usd"]) for r in summary.rows[:2]), Decimal(0)) > 0  # once each
    assert summary.cost == runs.run_cost(db, started.run_id)  # what is on the books
    assert summary.line.startswith("done: 2 classified; cost $")
    with db.read() as s:
        assert s.get_one(Run, started.run_id).status == "finished"


def test_a_start_at_the_cap_stops_the_run_and_keeps_its_tickets_pending(fake: FakeAnthropic, db: Database) -> None:
    from triage.errors import BudgetReached

    first = classify.start(db, paid(fake), TAX, ITEMS[:1], actor=LEAD, source="t", route="haiku")
    classify.finish(db, paid(fake), TAX, first, actor=LEAD)  # spends a little
    sent = len(fake.requests)
    with pytest.raises(BudgetReached, match="saved as pending"):
        classify.start(db, paid(fake, monthly_budget_usd=0.00001), TAX, ITEMS[1:], actor=LEAD, source="t")
    with db.read() as s:
        second = s.scalars(select(Run).order_by(Run.id.desc())).first()
        assert second is not None and second.message is not None
        assert second.status == "stopped" and "monthly budget" in second.message
        assert set(s.scalars(select(Ticket.status).where(Ticket.run_id == second.id))) == {"pending"}
    assert len(fake.requests) == sent  # nothing more sent


@pytest.mark.parametrize("flag", ["--route", "--tier"])
def test_the_route_flag_and_its_older_spelling(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path, flag: str,
                                               db: Database) -> None:
    src = tmp_path / "t.txt"
    src.write_text("I was charged twice, please refund\n")
    assert main(["classify", str(src), flag, "sonnet", "--out", str(tmp_path / "o.jsonl")]) == 0
    with db.read() as s:
        assert s.scalar(select(Run.mode)) == "sonnet"
    assert {r["body"]["model"] for r in fake.requests if r.get("body")} == {"claude-sonnet-5-5"}


@pytest.mark.parametrize("command", [["classify", "f.csv"], ["eval", "--gold", "g.csv"]])
@pytest.mark.parametrize("flag", ["--route", "--tier"])
def test_both_spellings_of_the_route_flag_parse_to_the_route(command: list[str], flag: str) -> None:
    from triage.cli.parser import build_parser

    assert build_parser().parse_args([*command, flag, "haiku"]).route == "haiku"
    with pytest.raises(SystemExit):  # a batch is not a route: it has its own flag
        build_parser().parse_args([*command, flag, "batch"])
