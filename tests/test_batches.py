"""Tier 1 through the Message Batches API (fake server, real SDK): half price, exact, escalations live."""

import csv
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import CallAttempt, ModelCall, Run, Ticket
from tests.support.actors import LEAD, VIEWER
from tests.support.fake_anthropic import Error, FakeAnthropic, batch_problems
from triage import taxonomy
from triage.access import Actor
from triage.cli import main
from triage.domain import Usage, to_pico
from triage.settings import Settings
from triage.spend.pricing import PriceTable
from triage.work import batches, classify

TICKETS = [("B-1", "I was charged twice, please refund"), ("B-2", "The app crashes on upload"),
           ("B-3", "refund or crash? [[conf=0.4]]")]


def write(path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows(TICKETS)


def test_batch_is_half_price_and_unsure_tickets_escalate_live(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake.batch_polls = 2  # "in_progress" twice before it ends
    src, out = tmp_path / "t.csv", tmp_path / "o.jsonl"
    write(src)
    assert main(["classify", str(src), "--batch", "--poll", "0.05", "--out", str(out)]) == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["B-1"]["status"] == "classified" and rows["B-3"]["status"] == "escalated"
    assert rows["B-3"]["model"] == "claude-sonnet-5-5"
    batch_usage = [u for u in fake.usage_log if u["service_tier"] == "batch"]
    live = [u for u in fake.usage_log if u["service_tier"] == "standard"]
    assert len(batch_usage) == 3 and len(live) == 1 and "sonnet" in live[0]["model"]
    prices, now = PriceTable.default(), datetime.now(UTC)

    def cost(u: dict[str, Any]) -> Decimal:
        return prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"], service_tier=u["service_tier"]),
                           now)

    haiku_full = prices.cost("claude-haiku-5-5", Usage(batch_usage[0]["input_tokens"],
                                                       batch_usage[0]["output_tokens"]), now)
    assert cost(batch_usage[0]) == haiku_full / 2
    assert sum(Decimal(r["cost_usd"]) for r in rows.values()) == sum(cost(u) for u in fake.usage_log)
    capsys.readouterr()
    assert main(["spend", "--json"]) == 0
    assert Decimal(json.loads(capsys.readouterr().out)["total_usd"]) == sum(cost(u) for u in fake.usage_log)
    assert main(["collect"]) == 0
    assert capsys.readouterr().err == "no batches waiting\n"  # collected once, never twice


def test_submit_now_collect_later_and_errored_requests_are_retryable(env: dict[str, str], fake: FakeAnthropic,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.csv"
    write(src)
    assert main(["classify", str(src), "--batch", "--no-wait"]) == 0
    assert "triage collect" in capsys.readouterr().err
    assert main(["classify", str(src), "--out", str(tmp_path / "again.jsonl")]) == 4  # held: not sent again
    assert "wait for the Message Batch of run 1" in capsys.readouterr().err
    held = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in held] == [("B-1", "pending"), ("B-2", "pending"), ("B-3", "pending")]
    assert [r["path"] for r in fake.requests] == ["/v1/messages/batches"]
    fake.push(Error(500, "api_error", "internal"))  # the first result line errors
    assert main(["collect", "--poll", "0.05"]) == 4
    err = capsys.readouterr().err
    assert "1 failed" in err and "run 1: 1 classified, 1 escalated, 1 failed" in err
    assert [r["body"]["model"] for r in fake.requests[1:]] == ["claude-sonnet-5-5"]  # B-3's escalation, live
    assert main(["retry"]) == 0
    assert [r["body"]["model"] for r in fake.requests[1:]] == ["claude-sonnet-5-5", "claude-haiku-5-5"]  # B-1, live
    assert main(["classify", str(src), "--out", str(tmp_path / "final.jsonl")]) == 0
    final = [json.loads(line) for line in (tmp_path / "final.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"], r["category"]) for r in final] == [
        ("B-1", "classified", "billing"), ("B-2", "classified", "technical"), ("B-3", "escalated", "billing")]


def test_batch_bodies_are_validated() -> None:
    assert batch_problems({"requests": []}) == ["requests: [] should be non-empty"]
    good: dict[str, Any] = {"requests": [{"custom_id": "x", "params": {"model": "m", "max_tokens": 1,
                                                       "messages": [{"role": "user", "content": "hi"}]}}]}
    assert batch_problems(good) == []
    good["requests"][0]["params"]["temperature"] = 0
    assert batch_problems(good) == ["requests/0/params: temperature: Extra inputs are not permitted"]


# -- issue 20: one submission per run, the run's route, holds, escalations, who may spend ----------------------

ROOT = Path(__file__).resolve().parents[1]


def _collectors(env: dict[str, str], db_path: str, *args: Any, n: int = 2, ok: tuple[int, ...] = (0,)) -> list[str]:
    """`n` `triage collect` processes started together: while this test holds SQLite's write lock they all wait
    at their first write, so they race for the same queued run from the same starting line."""
    lock = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    lock.execute("BEGIN IMMEDIATE")
    procs = [subprocess.Popen([sys.executable, "-m", "triage.cli", "collect", "--poll", "0.05", *args],
                              env={**env, "PYTHONPATH": str(ROOT), "TRIAGE_BUSY_TIMEOUT_S": "120"}, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    time.sleep(8)  # every process imported and waiting on the lock
    lock.execute("COMMIT")
    lock.close()
    errs = [p.communicate(timeout=240)[1] for p in procs]
    assert all(p.returncode in ok for p in procs), [(p.returncode, e[-1500:]) for p, e in zip(procs, errs,
                                                                                              strict=True)]
    return errs


def _books(db: Database) -> tuple[int | None, dict[int, int], int | None]:
    with db.read() as s:
        cost = s.scalar(select(func.coalesce(func.sum(ModelCall.cost_pico), 0)))
        tier1 = dict(s.execute(select(ModelCall.ticket_id, func.count()).where(ModelCall.tier == 1)
                               .group_by(ModelCall.ticket_id)).all())
        reservations = s.scalar(select(func.count()).select_from(CallAttempt).where(CallAttempt.kind == "batch"))
    return cost, tier1, reservations


def _billed(fake: FakeAnthropic, *, model: str | None = None) -> int:
    prices, now = PriceTable.default(), datetime.now(UTC)
    return sum(to_pico(prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"],
                                                     service_tier=u["service_tier"]), now))
               for u in fake.usage_log if model is None or u["model"] == model)


def test_two_collectors_in_two_processes_submit_and_record_a_queued_batch_once(env: dict[str, str], fake: FakeAnthropic,
                                                                               db: Database, db_url: str,
                                                                               tmp_path: Path) -> None:
    items = [(f"Q-{i}", f"I was charged twice for invoice {i}, please refund") for i in range(300)]
    items += [("Q-unsure", "refund or crash? [[conf=0.4]]")]
    run_id = _economy(db, Settings.from_env(), items)
    fake.batch_polls = 1_000  # stays in progress while the two processes look
    db_path = db_url.removeprefix("sqlite:///")
    _collectors(env, db_path, "--no-wait")
    assert len(fake.batches) == 1  # one submission, whoever looked
    assert _books(db)[2] == 1  # and one reservation
    (batch,) = fake.batches.values()
    batch["polls_left"] = 0  # it ends
    _collectors(env, db_path, ok=(0, 4))  # 4: the other one's live pass saw the unsure ticket still in flight
    cost, tier1, _ = _books(db)
    assert len(fake.batches) == 1 and set(tier1.values()) == {1} and len(tier1) == len(items)
    assert cost == _billed(fake)  # every billed answer on the books, once
    assert len([u for u in fake.usage_log if u["service_tier"] == "standard"]) == 1  # the unsure one, asked once
    with db.read() as s:
        assert s.scalar(select(Run.batch_state).where(Run.id == run_id)) == "collected"
        assert not s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending"))


def test_a_haiku_only_batch_run_never_asks_sonnet(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.csv"
    write(src)
    assert main(["classify", str(src), "--tier", "haiku", "--batch", "--poll", "0.05",
                 "--out", str(tmp_path / "o.jsonl")]) in (0, 4)
    assert not [r for r in fake.requests if "sonnet" in str((r.get("body") or {}).get("model"))]
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "o.jsonl").read_text().splitlines())}
    assert rows["B-3"]["tier"] == "tier1" and rows["B-3"]["status"] == "needs_review"


def _economy(db: Database, settings: Settings, items: Sequence[tuple[str | None, str]], actor: Actor = LEAD) -> int:
    """The dashboard's economy route: a batch run left to the background worker."""
    return classify.start(db, settings, taxonomy.default(), items, actor=actor, source="dashboard", batch=True,
                          background=True).run_id


@pytest.mark.parametrize("call", ["start batch", "start batch now", "submit", "check", "check_open",
                                  "collect_open", "collect"])
def test_every_batch_service_that_may_spend_asks_who_is_acting(fake: FakeAnthropic, db: Database, call: str) -> None:
    from triage.errors import AccessDenied
    from triage.work import services

    settings = Settings(api_key=fake.api_key, base_url=fake.base_url)
    run_id = _economy(db, settings, TICKETS)
    router = services.build_router(settings, taxonomy.default(), db=db)
    tax = taxonomy.default()
    calls: dict[str, Callable[[], object]] = {
        "start batch": lambda: _economy(db, settings, [("V-1", "a viewer's ticket")], actor=VIEWER),
        "start batch now": lambda: classify.start(db, settings, tax, [("V-1", "a viewer's ticket")], actor=VIEWER,
                                                  source="x", batch=True),
        "submit": lambda: services.run(router, batches.submit(db, router, run_id, actor=VIEWER)),
        "check": lambda: services.run(router, batches.check(db, router, run_id, actor=VIEWER)),
        "check_open": lambda: services.run(router, batches.check_open(db, router, actor=VIEWER)),
        "collect_open": lambda: classify.collect_open(db, settings, actor=VIEWER),
        "collect": lambda: classify.collect(db, settings, tax, actor=VIEWER, wait=False),
    }
    with db.read() as s:
        before = s.scalar(select(func.count()).select_from(Ticket)), s.scalar(select(func.count()).select_from(Run))
    with pytest.raises(AccessDenied):
        calls[call]()
    with db.read() as s:  # refused before anything was written
        assert (s.scalar(select(func.count()).select_from(Ticket)),
                s.scalar(select(func.count()).select_from(Run))) == before
    with pytest.raises(AccessDenied):
        # no identity (None where an Actor is due): refused too
        services.run(router, batches.check(db, router, run_id, actor=None))  # type: ignore[arg-type]
    assert not fake.requests
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
        assert s.scalar(select(func.count()).select_from(CallAttempt)) == 0
