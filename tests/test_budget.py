"""The budget is a hard cap: every paid call reserves its worst case first, whichever command or process makes it.

Real SDK over HTTP to the fake Messages API, a real SQLite database; each entry point is run against a tiny cap
with eight requests in flight."""

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.migrate import open_database
from db.models import CallAttempt, ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import Error, FakeAnthropic, Reply
from triage import taxonomy
from triage.cli import main
from triage.domain import Usage, from_pico
from triage.errors import BudgetReached
from triage.providers.anthropic_provider import AnthropicProvider
from triage.settings import Settings
from triage.spend import budget
from triage.spend.pricing import PriceTable
from triage.work import runs, services

TAX = taxonomy.default()
CAP = Decimal("0.002")  # about eight worst-case Haiku calls, forty real ones


def billed(fake: FakeAnthropic) -> Decimal:
    """What the fake API billed: every 200 answer's usage at the price table."""
    prices, now = PriceTable.default(), datetime.now(UTC)
    return sum((prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"], service_tier=u["service_tier"]),
                            now) for u in fake.usage_log), Decimal(0))


def recorded(db: Database) -> Decimal:
    with db.read() as s:
        return from_pico(s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))))


def tickets(n: int, marker: str = "") -> list[tuple[None, str]]:
    return [(None, f"ticket {i}: I was charged twice for my plan, please refund {marker}") for i in range(n)]


def write(path: Path, items: Sequence[tuple[str | None, str]]) -> str:
    path.write_text("\n".join(text for _, text in items) + "\n")
    return str(path)


def assert_capped(db: Database, fake: FakeAnthropic, cap: Decimal = CAP, pending_left: bool = True) -> None:
    spent = recorded(db)
    assert 0 < spent <= cap, f"recorded spend {spent} against a cap of {cap}"
    assert spent == billed(fake), "every call the API billed is on the books"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CallAttempt).where(CallAttempt.kind == "call")) == 0, \
            "every reservation was settled"
        waiting = s.scalars(select(Ticket).where(Ticket.status == "pending")).all()
        assert bool(waiting) == pending_left, "the cap should stop the run with work left"
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.claimed_by.is_not(None))) == 0
    assert budget.standing(db, budget.Caps.of(1)).in_flight == 0, "nothing holds money any more"


@pytest.fixture
def capped(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake: FakeAnthropic) -> Callable[..., None]:
    fake.delay = 0.05  # calls overlap: eight in flight
    monkeypatch.setenv("TRIAGE_CONCURRENCY", "8")

    def apply(cap: Decimal = CAP, kind: str = "MONTHLY") -> None:
        monkeypatch.setenv(f"TRIAGE_{kind}_BUDGET_USD", str(cap))
    return apply


def test_classify_stops_at_the_cap_and_leaves_the_rest_pending_with_the_reason(
        capped: Callable[..., None], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    capped()
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku", "--out",
                 str(tmp_path / "o.jsonl")]) == 5
    err = capsys.readouterr().err
    assert "would take this month's spend" in err and "monthly budget of $0.002" in err
    db = open_database(db_url)
    assert_capped(db, fake)
    rows = [json.loads(line) for line in open(tmp_path / "o.jsonl")]
    waiting = [r for r in rows if r["status"] == "pending"]
    assert waiting and all("monthly budget" in r["reason"] for r in waiting)
    with db.read() as s:
        assert s.scalars(select(Run.status)).one() == "stopped"
    db.dispose()


def test_worker_once_stops_at_the_cap(capped: Callable[..., None], fake: FakeAnthropic, db_url: str) -> None:
    db = open_database(db_url)
    runs.start_run(db, actor=LEAD, items=tickets(60), source="queued", mode="haiku")
    capped()
    assert main(["worker", "--once"]) == 5
    assert_capped(db, fake)
    with db.read() as s:  # the tickets that cannot be afforded say why they wait
        assert {"monthly budget" in (t.status_reason or "") for t in s.scalars(select(Ticket).where(
            Ticket.status == "pending"))} == {True}
    db.dispose()


def test_retry_stops_at_the_cap(capped: Callable[..., None], fake: FakeAnthropic, db_url: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "1")
    fake.push(*[Error(529, "overloaded_error", "Overloaded")] * 60)
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku"]) == 4
    assert not fake.usage_log  # errors are not billed
    capped()
    assert main(["retry"]) == 5
    db = open_database(db_url)
    assert_capped(db, fake)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "failed")) == 0
    db.dispose()


def test_escalate_stops_at_the_cap_and_skips_what_sonnet_decided(capped: Callable[..., None], fake: FakeAnthropic,
                                                                 db_url: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path / "t.txt", tickets(40)), "--tier", "haiku"]) == 0
    db = open_database(db_url)
    before = recorded(db)
    cap = before + Decimal("0.02")  # a handful of Sonnet calls
    capped(cap)
    assert main(["escalate", "--below", "1.0"]) == 5
    assert_capped(db, fake, cap, pending_left=False)  # tickets Sonnet could not afford keep Haiku's label
    sonnet = sum(1 for u in fake.usage_log if "sonnet" in u["model"])
    assert 0 < sonnet < 40
    capped(Decimal(100))
    capsys.readouterr()
    assert main(["escalate", "--below", "1.0"]) == 0
    assert f"left {sonnet} tickets alone: Sonnet already decided them" in capsys.readouterr().err
    assert sum(1 for u in fake.usage_log if "sonnet" in u["model"]) == 40  # each asked once
    assert main(["escalate", "--id", "1", "--again"]) == 0
    assert sum(1 for u in fake.usage_log if "sonnet" in u["model"]) == 41
    db.dispose()


def test_collect_records_the_batch_then_escalates_live_only_within_the_cap(capped: Callable[..., None],
                                                                           fake: FakeAnthropic, db_url: str,
                                                                           tmp_path: Path) -> None:
    capped(Decimal("0.02"))
    assert main(["classify", write(tmp_path / "t.txt", tickets(40, "[[conf=0.3]]")), "--batch", "--no-wait"]) == 0
    db = open_database(db_url)
    with db.read() as s:  # the batch's worst case is held while it is out
        held = s.scalars(select(CallAttempt)).one()
        assert held.kind == "batch" and from_pico(held.estimated_pico) < Decimal("0.02")
    assert main(["collect", "--poll", "0.05"]) == 5
    assert sum(1 for u in fake.usage_log if u["service_tier"] == "batch") == 40  # all batch results recorded
    sonnet = sum(1 for u in fake.usage_log if "sonnet" in u["model"])
    assert 0 < sonnet < 40
    assert_capped(db, fake, Decimal("0.02"))
    db.dispose()


def test_a_batch_is_refused_whole_when_its_worst_case_would_cross_the_cap(capped: Callable[..., None],
                                                                          fake: FakeAnthropic, db_url: str,
                                                                          tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    capped(Decimal("0.001"))
    assert main(["classify", write(tmp_path / "t.txt", tickets(40)), "--batch", "--no-wait"]) == 5
    assert "would take this month's spend" in capsys.readouterr().err
    assert not fake.requests  # nothing submitted
    db = open_database(db_url)
    with db.read() as s:
        assert {t.status for t in s.scalars(select(Ticket))} == {"pending"}
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 0
    db.dispose()


def test_the_dashboard_worker_stops_at_the_cap(fake: FakeAnthropic, db: Database) -> None:
    fake.delay = 0.05
    runs.start_run(db, actor=LEAD, items=tickets(60), source="dashboard", mode="haiku")
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, monthly_budget_usd=float(CAP), concurrency=8)
    report = asyncio.run(services.work_once(db, settings))
    assert report.stop_kind == "budget" and 0 < report.processed < 60
    assert_capped(db, fake)
    for _ in range(20):  # later passes use what the settled reservations gave back, never more
        again = asyncio.run(services.work_once(db, settings))
        assert again.stop_kind == "budget"
        if not again.processed:
            break
    assert again.processed == 0
    assert_capped(db, fake)
    with db.read() as s:
        assert {"monthly budget" in (t.status_reason or "") for t in s.scalars(select(Ticket).where(
            Ticket.status == "pending"))} == {True}


def test_a_daily_cap_and_the_warning_level(capped: Callable[..., None], fake: FakeAnthropic, db_url: str,
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    capped(CAP, "DAILY")
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku"]) == 5
    assert "past the daily budget of $0.002" in capsys.readouterr().err
    db = open_database(db_url)
    assert_capped(db, fake)
    spent = recorded(db)
    monkeypatch.delenv("TRIAGE_DAILY_BUDGET_USD")
    capped(spent * 2)  # half of the monthly cap is spent
    monkeypatch.setenv("TRIAGE_BUDGET_WARN_AT", "0.4")
    assert main(["worker", "--once", "--concurrency", "1"]) == 5
    assert "warning: 50% of the monthly budget" in capsys.readouterr().err
    db.dispose()


def test_with_one_call_at_a_time_the_run_stops_at_the_first_call_that_would_cross(capped: Callable[..., None],
                                                                                  fake: FakeAnthropic, db_url: str,
                                                                                  tmp_path: Path) -> None:
    capped()
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku", "--concurrency", "1"]) == 5
    db = open_database(db_url)
    assert_capped(db, fake)
    router = services.build_router(Settings(api_key="k"), TAX, mode="haiku")
    assert router.tier1 is not None
    worst = router.tier1.worst_case_cost(tickets(1)[0][1], TAX)
    assert CAP - recorded(db) < worst, "it stopped only when the next call's worst case no longer fitted"
    db.dispose()


def test_the_reservation_is_an_upper_bound_of_the_real_cost(fake: FakeAnthropic, db: Database) -> None:
    fake.push(Reply(text='{"reason": "' + "x" * 1200 + '", "category": "billing", "confidence": 0.9}',
                    usage={"output_tokens": 300}))
    router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url), TAX, mode="haiku", db=db)
    text = "ünïcødé 漢字 " * 400 + " refund"
    assert router.tier1 is not None
    worst = router.tier1.worst_case_cost(text, TAX)
    imp = runs.start_run(db, actor=LEAD, items=[(None, text)], source="t", mode="haiku")
    assert imp.run_id is not None
    services.classify_run(db, router, imp.run_id, actor=LEAD)
    assert 0 < recorded(db) <= worst


def test_budget_check_counts_calls_in_flight_and_estimates(db: Database) -> None:
    guard = budget.BudgetGuard(db, budget.Caps.of(0.01, warn_at=0.5))
    rid = guard.reserve(Decimal("0.006"), 1, "claude-haiku-5-5")
    st = budget.standing(db, guard.caps)
    assert st.in_flight == Decimal("0.006") and st.warning and "60% of the monthly budget" in st.warning
    with pytest.raises(BudgetReached):
        guard.reserve(Decimal("0.005"), 1, "claude-haiku-5-5")
    asyncio.run(guard.abandon(rid, "lost"))  # probably billed: still counted, now as an estimate
    assert budget.standing(db, guard.caps).estimated_month == Decimal("0.006")
    with pytest.raises(BudgetReached):
        guard.reserve(Decimal("0.005"), 1, "claude-haiku-5-5")


# -- item 2: models the price table does not know ---------------------------------------------------------------

@pytest.mark.parametrize("command", [["classify", "FILE", "--tier", "haiku"], ["worker", "--once"], ["retry"],
                                     ["escalate", "--id", "1"], ["collect"]])
def test_an_unpriced_model_is_refused_before_any_call(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    src = write(tmp_path / "t.txt", tickets(3))
    if command[0] != "classify":
        db = open_database(env["TRIAGE_DATABASE_URL"])
        imp = runs.start_run(db, actor=LEAD, items=tickets(3), source="t")
        with db.transaction() as s:  # something for each command to do: pending, failed, an open batch
            failed, run = s.get(Ticket, imp.ticket_ids[1]), s.get(Run, imp.run_id)
            assert failed is not None and run is not None
            failed.status = "failed"
            run.batch_id, run.batch_state = "msgbatch_x", "in_progress"
        db.dispose()
    monkeypatch.setenv("TRIAGE_TIER1_MODEL", "claude-haiku-9-9")
    assert main([src if a == "FILE" else a for a in command]) == 2
    err = capsys.readouterr().err
    assert "no price for model 'claude-haiku-9-9' in the price table (triage/config/prices.json)" in err
    assert "add an entry for it" in err and "TRIAGE_PRICES" in err
    assert not fake.requests, "not one request reached the API"


def test_an_unpriced_model_is_a_message_not_a_traceback(env: dict[str, str], fake: FakeAnthropic,
                                                        tmp_path: Path) -> None:
    import subprocess
    import sys

    src = write(tmp_path / "t.txt", tickets(2))
    proc = subprocess.run([sys.executable, "-m", "triage.cli", "classify", src], capture_output=True, text=True,
                          env={**env, "TRIAGE_TIER2_MODEL": "claude-sonnet-9-9"}, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no price for model 'claude-sonnet-9-9'" in proc.stderr
    assert not fake.requests


def test_an_answer_from_a_model_the_table_lacks_is_recorded_with_its_cost_unknown(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake.push(Reply(json_body={"reason": "a refund", "category": "billing", "confidence": 0.95},
                    model="claude-haiku-5-5-preview"))
    assert main(["classify", write(tmp_path / "t.txt", tickets(1)), "--tier", "haiku", "--out",
                 str(tmp_path / "o.jsonl")]) == 0
    db = open_database(db_url)
    with db.read() as s:
        call = s.scalars(select(ModelCall)).one()
        assert (call.cost_known, call.cost_pico, call.model_returned) == (False, 0, "claude-haiku-5-5-preview")
        assert call.cost_note is not None
        assert "claude-haiku-5-5-preview" in call.cost_note and "price table" in call.cost_note
        assert s.scalars(select(Ticket.status)).one() == "classified"  # the answer is used, not thrown away
        estimate = s.scalars(select(CallAttempt)).one()  # its worst case stays on the books for the budget
        assert estimate.state == "unpriced" and estimate.call_id == call.id
    assert budget.standing(db, budget.Caps.of(1)).estimated_month == from_pico(estimate.estimated_pico) > 0
    capsys.readouterr()
    assert main(["spend"]) == 0
    assert f"1 calls with unknown cost, estimated up to ${from_pico(estimate.estimated_pico):.6f}" in \
        capsys.readouterr().out
    assert main(["spend", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_cost_calls"] == 1
    db.dispose()


def test_the_dashboard_economy_route_reserves_its_batch_or_waits_at_the_cap(fake: FakeAnthropic, db: Database) -> None:
    from triage import taxonomy
    from triage.work import classify

    tight = Settings(api_key=fake.api_key, base_url=fake.base_url, monthly_budget_usd=0.001)
    run_id = classify.start(db, tight, taxonomy.default(), tickets(40), source="dashboard", actor=LEAD, batch=True,
                            background=True).run_id  # no pre-check: the worker asks the caps before submitting
    news = classify.collect_open(db, tight, actor=LEAD)
    assert [n.state for n in news] == ["failed"] and "would take this month's spend" in news[0].message
    assert not fake.batches  # nothing submitted
    with db.read() as s:
        assert s.scalars(select(Run.batch_state)).one() == "queued"  # still waiting, tickets still held
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 0

    fake.batch_polls = 1_000  # stays in progress
    roomy = Settings(api_key=fake.api_key, base_url=fake.base_url, monthly_budget_usd=0.02)
    assert [n.state for n in classify.collect_open(db, roomy, actor=LEAD)] == ["in_progress"]
    assert len(fake.batches) == 1
    with db.read() as s:  # the batch's worst case at the batch price is held while it is out
        held = s.scalars(select(CallAttempt)).one()
        assert held.kind == "batch" and held.run_id == run_id
        assert 0 < from_pico(held.estimated_pico) < Decimal("0.02")
    assert budget.standing(db, budget.Caps.of(0.02)).in_flight == from_pico(held.estimated_pico)
    assert [n.state for n in classify.collect_open(db, roomy, actor=LEAD)] == ["in_progress"]  # a later look: no more
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 1


def test_eval_of_a_paid_tier_is_on_the_books_and_stops_at_the_cap(capped: Callable[..., None], fake: FakeAnthropic,
                                                                  db_url: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.csv"
    rows = [("I was charged twice for my plan so please refund", "billing"), ("the app crashes on upload", "technical")]
    gold.write_text("text,label\n" + "".join(f"{t} {i},{lab}\n" for i in range(30) for t, lab in rows))
    assert main(["eval", "--gold", str(gold), "--tier", "haiku", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 60 and "60 gold tickets, cost $" in err
    db = open_database(db_url)
    assert len(fake.usage_log) == 60 and recorded(db) == billed(fake) > 0  # every billed call is on the books
    with db.read() as s:
        assert s.scalars(select(Run.source)).one() == f"eval:{gold}"
    db.dispose()

    capped(recorded(db) + CAP)  # room for a few more calls, not for 60
    assert main(["eval", "--gold", str(gold), "--tier", "haiku"]) == 5
    err = capsys.readouterr().err
    assert "would take this month's spend" in err and "gold tickets unanswered, so no score" in err
    assert 60 < len(fake.usage_log) < 120  # every gold ticket was asked again, until the cap
    db = open_database(db_url)
    assert_capped(db, fake, recorded(db) + CAP)
    db.dispose()


# -- issue 20: every attempt the API may have answered is on the books and inside the cap -----------------------

def estimated(db: Database) -> Decimal:
    """Calls on the books at their estimate: probably billed with the answer lost, or not priceable."""
    with db.read() as s:
        return from_pico(s.scalar(select(func.coalesce(func.sum(CallAttempt.estimated_pico), 0))
                                  .where(CallAttempt.state.in_(("lost", "unpriced")))))


def lost_rows(db: Database) -> list[CallAttempt]:
    with db.read() as s:
        return list(s.scalars(select(CallAttempt).where(CallAttempt.state == "lost")))


@pytest.fixture
def late(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake: FakeAnthropic) -> FakeAnthropic:
    """30% of the answers arrive after the client's 0.5 s timeout, billed all the same."""
    from tests.support.fake_anthropic import spec_validator

    spec_validator()  # built once per process, not inside the short timeout
    fake.late_share, fake.late_delay, fake.late_random = 0.3, 1.0, __import__("random").Random(20)
    monkeypatch.setenv("TRIAGE_REQUEST_TIMEOUT", "0.5")
    monkeypatch.setenv("TRIAGE_CONCURRENCY", "8")
    return fake


def test_late_answers_are_on_the_books_as_probably_billed(late: FakeAnthropic, db_url: str, tmp_path: Path) -> None:
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku"]) in (0, 4)
    db = open_database(db_url)
    assert late.billed_late, "some answers arrived late"
    assert billed(late) <= recorded(db) + estimated(db), "every billed attempt is on the books"
    lost = lost_rows(db)
    # one probably-billed attempt per late answer (and per on-time one a loaded box read too late)
    assert len(lost) >= len(late.billed_late)
    assert all(r.note is not None and "timed out after the request was sent" in r.note for r in lost)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(CallAttempt).where(CallAttempt.state == "open")) == 0
    assert budget.standing(db, budget.Caps.of(1)).estimated_month == estimated(db) > 0
    db.dispose()


def test_late_answers_stay_inside_the_cap(late: FakeAnthropic, capped: Callable[..., None], db_url: str,
                                          tmp_path: Path) -> None:
    # sixteen worst cases: room for late answers to happen before the cap refuses, whatever the prompt's size
    tier1 = services.build_router(Settings(api_key="k"), TAX, mode="haiku").tier1
    assert tier1 is not None
    worst = tier1.worst_case_cost(tickets(1)[0][1], TAX)
    cap = (worst * 16).quantize(Decimal("0.000001"))
    capped(cap)
    assert main(["classify", write(tmp_path / "t.txt", tickets(60)), "--tier", "haiku"]) == 5
    db = open_database(db_url)
    assert late.billed_late
    assert billed(late) <= recorded(db) + estimated(db) <= cap
    db.dispose()


def test_a_retry_the_cap_cannot_afford_leaves_the_ticket_pending_with_the_reason(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.fake_anthropic import Late, spec_validator

    spec_validator()
    monkeypatch.setenv("TRIAGE_REQUEST_TIMEOUT", "0.5")
    router = services.build_router(Settings(api_key="k"), TAX, mode="haiku")
    assert router.tier1 is not None
    worst = router.tier1.worst_case_cost(tickets(1)[0][1], TAX)
    monkeypatch.setenv("TRIAGE_MONTHLY_BUDGET_USD", str(worst * 3 / 2))  # one attempt fits, two do not
    fake.push(Late(1.0))
    assert main(["classify", write(tmp_path / "t.txt", tickets(1)), "--tier", "haiku"]) == 5
    assert "would take this month's spend" in capsys.readouterr().err
    assert len(fake.requests) == 1 and len(fake.billed_late) == 1, "not sent again"
    db = open_database(db_url)
    assert [from_pico(r.estimated_pico) for r in lost_rows(db)] == [worst]
    assert billed(fake) <= estimated(db)
    with db.read() as s:
        ticket = s.scalars(select(Ticket)).one()
        assert ticket.status == "pending" and "monthly budget" in (ticket.status_reason or "")
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 1
    db.dispose()


def test_every_attempt_late_leaves_each_on_the_books(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.fake_anthropic import Late, spec_validator

    spec_validator()
    monkeypatch.setenv("TRIAGE_REQUEST_TIMEOUT", "0.5")
    monkeypatch.setenv("TRIAGE_MAX_ATTEMPTS", "2")
    fake.push(Late(1.0), Late(1.0))
    assert main(["classify", write(tmp_path / "t.txt", tickets(1)), "--tier", "haiku"]) == 4
    db = open_database(db_url)
    assert len(lost_rows(db)) == 2 and billed(fake) <= recorded(db) + estimated(db)
    with db.read() as s:
        call = s.scalars(select(ModelCall)).one()
        assert call.outcome == "error" and call.attempts == 2 and call.cost_pico == 0
    db.dispose()


def test_a_cap_lowered_in_settings_stops_a_running_worker(env: dict[str, str], fake: FakeAnthropic,
                                                          db_url: str) -> None:
    """`triage settings set` (the Settings page's write, from another process) while a `triage worker` works
    through 200 tickets: the calls already in flight finish, no other is sent, and the worker ends with exit 5."""
    import subprocess
    import sys
    import time

    fake.delay = 2.0  # 200 tickets 8 at a time take 50 s: time for another process to start and save, under load
    db = open_database(db_url)
    runs.start_run(db, actor=LEAD, items=tickets(200), source="queued", mode="haiku")
    worker = subprocess.Popen([sys.executable, "-m", "triage.cli", "worker"], env={**env, "TRIAGE_CONCURRENCY": "8"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(fake.usage_log) < 16 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.02)
        assert len(fake.usage_log) >= 16, "the worker got going"
        lowered = subprocess.run([sys.executable, "-m", "triage.cli", "settings", "set", "monthly_budget_usd",
                                  "0.000001"], env=env, capture_output=True, text=True, timeout=120)
        assert lowered.returncode == 0, lowered.stderr
        sent_before = len(fake.requests)
        _, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 5, err
    assert "monthly budget of $0.000001" in err
    assert len(fake.requests) - sent_before <= 8, "at most the calls already in flight went through"
    assert len(fake.usage_log) < 200
    assert recorded(db) == billed(fake)
    with db.read() as s:
        waiting = s.scalars(select(Ticket).where(Ticket.status == "pending")).all()
        assert waiting and all("monthly budget" in (t.status_reason or "") for t in waiting)
    db.dispose()


def test_the_worst_case_covers_dense_text_and_a_cache_write_of_the_whole_prompt(fake: FakeAnthropic,
                                                                                db: Database) -> None:
    """A ticket of digits and base64 tokenized one token a byte, the whole prompt written to the prompt cache
    (its breakpoint's 5-minute write price), and all of max_tokens as output: the call costs no more than it
    reserved."""
    import base64
    import random

    from triage.routing.fewshot import Example, Shots

    shots = Shots(tuple(Example(i, f"example {i}: " + "the invoice shows a wrong amount " * 20, "billing")
                        for i in range(8)))

    class LongExamples:  # a fixed example set long enough to be marked for the prompt cache
        def shots_for(self, text: str) -> Shots:
            return shots

        def fixed(self) -> Shots:
            return shots

        def worst_case(self) -> Shots:
            return shots

    text = base64.b64encode(random.Random(7).randbytes(1500)).decode() + " 4111111111111111" * 40
    router = services.build_router(Settings(api_key=fake.api_key, base_url=fake.base_url), TAX, mode="haiku", db=db)
    assert isinstance(router.tier1, AnthropicProvider)
    router.tier1.fewshot = LongExamples()
    body = router.tier1.request_body(text, TAX, shots)
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}, "the prefix is marked for the cache"
    dense = len(json.dumps(body, ensure_ascii=False).encode())
    fake.push(Reply(json_body={"reason": "r", "category": "billing", "confidence": 0.9},
                    usage={"input_tokens": 0, "output_tokens": 300, "cache_creation_input_tokens": dense,
                           "cache_creation": {"ephemeral_5m_input_tokens": dense, "ephemeral_1h_input_tokens": 0}}))
    worst = router.tier1.worst_case_cost(text, TAX)
    imp = runs.start_run(db, actor=LEAD, items=[(None, text)], source="t", mode="haiku")
    assert imp.run_id is not None
    services.classify_run(db, router, imp.run_id, actor=LEAD)
    assert 0 < recorded(db) <= worst


def test_batch_answers_from_a_model_the_table_lacks_count_against_the_cap(capped: Callable[..., None],
                                                                          fake: FakeAnthropic, db_url: str,
                                                                          tmp_path: Path) -> None:
    capped(Decimal("0.02"))
    fake.push(*[Reply(json_body={"reason": "a refund", "category": "billing", "confidence": 0.95},
                      model="claude-haiku-5-5-preview") for _ in range(5)])
    assert main(["classify", write(tmp_path / "t.txt", tickets(5)), "--batch", "--poll", "0.05"]) == 0
    db = open_database(db_url)
    prices, now = PriceTable.default(), datetime.now(UTC)
    with db.read() as s:
        calls = s.scalars(select(ModelCall)).all()
        assert len(calls) == 5 and not any(c.cost_known for c in calls)
        books = {a.call_id: a for a in s.scalars(select(CallAttempt))}
        for c in calls:  # each at its usage priced at the dearest model the table knows (Sonnet), not at $0
            usage = Usage(c.input_tokens, c.output_tokens, service_tier="batch")
            assert books[c.id].state == "unpriced"
            assert from_pico(books[c.id].estimated_pico) >= prices.cost("claude-sonnet-5-5", usage, now) > 0
    assert budget.standing(db, budget.Caps.of(1)).estimated_month == estimated(db) > 0
    db.dispose()
