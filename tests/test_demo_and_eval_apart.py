"""The demo and `triage eval` share the working database with production work, and stay apart from it: the demo's
simulated spend never counts toward a cap, and an eval never takes production tickets into its run. Real CLI runs
against the fake Messages API and a real SQLite database."""

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import calls
from db.engine import Database
from db.migrate import open_database
from db.models import ModelCall, Run, Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import demo, taxonomy
from triage.cli import main
from triage.domain import from_pico
from triage.settings import Settings

TAX = taxonomy.default()
CAP = Decimal("0.002")  # about forty real Haiku calls; the demo's simulated history costs $0.047


def real_spend(db: Database) -> Decimal:
    with db.read() as s:
        return from_pico(s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))
                                  .where(ModelCall.request_id.not_like(f"{demo.DEMO_REQUEST_PREFIX}%"))))


def test_after_the_demo_a_real_run_can_still_spend_up_to_the_cap(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(db_url)
    demo.fill(db, TAX, actor=LEAD, settings=Settings(), days=0, local=False)  # its calls dated the last 4 hours
    assert demo.demo_cost(db) > CAP
    monkeypatch.setenv("TRIAGE_MONTHLY_BUDGET_USD", str(CAP))
    monkeypatch.setenv("TRIAGE_DAILY_BUDGET_USD", str(CAP))
    src = tmp_path / "t.txt"
    src.write_text("".join(f"ticket {i}: I was charged twice for my plan, please refund\n" for i in range(80)))
    # one call at a time: the run stops when the next call's worst case no longer fits (with 8 in flight it stops as
    # soon as their 8 worst cases fill the cap, however little was spent)
    assert main(["classify", str(src), "--tier", "haiku", "--concurrency", "1"]) == 5  # stopped by the cap
    assert "budget" in capsys.readouterr().err
    spent = real_spend(db)
    assert CAP / 2 < spent <= CAP  # the run spent (nearly) its cap; the demo's money took none of it
    assert len(fake.usage_log) > 10
    db.dispose()


def test_an_eval_leaves_production_tickets_with_the_same_text_in_their_runs_with_their_answers(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["I was charged twice for my plan so please refund", "the app crashes on upload"]
    src = tmp_path / "t.txt"
    src.write_text("".join(t + "\n" for t in texts))
    assert main(["classify", str(src), "--tier", "haiku"]) == 0  # production tickets, no ids
    db = open_database(db_url)

    def production(s: Session) -> dict[int, tuple[Any, ...]]:
        return {t.id: (t.run_id, t.status, t.category, t.first_call_id, t.version, t.external_id)
                for t in s.scalars(select(Ticket).where(Ticket.source != f"eval:{gold}"))}

    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(texts, ["billing", "technical"],
                                                                             strict=True)))
    with db.read() as s:
        before = production(s)
        answers = {tid: calls.current_calls(s, tid) for tid in before}
    assert len(before) == 2 and all(len(calls) == 1 for calls in answers.values())
    assert main(["eval", "--gold", str(gold), "--tier", "haiku", "--json"]) == 0
    assert len(fake.usage_log) == 4  # every gold row asked afresh
    with db.read() as s:
        assert production(s) == before  # same run, state, label, counted calls
        assert {tid: calls.current_calls(s, tid) for tid in before} == answers
        eval_run = s.scalars(select(Run).where(Run.source == f"eval:{gold}")).one()
        own = s.scalars(select(Ticket).where(Ticket.run_id == eval_run.id)).all()
        assert sorted(t.text for t in own) == sorted(texts) and not {t.id for t in own} & set(before)
        assert {t.external_id for t in own} == {f"eval:{gold}#1", f"eval:{gold}#2"}
    assert main(["eval", "--gold", str(gold), "--tier", "haiku", "--json"]) == 0  # again: the same eval tickets
    with db.read() as s:
        assert production(s) == before and s.scalar(select(func.count()).select_from(Ticket)) == 4
    db.dispose()
