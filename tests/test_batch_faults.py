"""Message Batches under faults (fake API, real SDK, CLI): transient errors retried, a gone or expired batch
requeued, one failing batch never stopping the others, a refused submit explained, and crash-safety: results
recorded once however often collect is interrupted, a lost submission never sent twice."""

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.migrate import open_database
from db.models import ModelCall, Run, Ticket
from tests.support.fake_anthropic import Drop, Error, FakeAnthropic, LoseAnswer, Truncate
from triage.cli import main
from triage.domain import Usage, to_pico
from triage.providers import anthropic_batches
from triage.spend.pricing import PriceTable
from triage.work import batches


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_batches, "BASE_DELAY", 0.01)


def write(path: Path, n: int, prefix: str = "B") -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((f"{prefix}-{i}", f"I was charged twice for invoice {prefix}{i}, please refund") for i in range(n))
    return str(path)


def billed_pico(fake: FakeAnthropic) -> int:
    prices, now = PriceTable.default(), datetime.now(UTC)
    return sum(to_pico(prices.cost(u["model"], Usage(u["input_tokens"], u["output_tokens"],
                                                     service_tier=u["service_tier"]), now)) for u in fake.usage_log)


def books(db_url: str) -> tuple[int, dict[int, int], dict[str, int]]:
    db = open_database(db_url)
    with db.read() as s:
        recorded = s.execute(select(func.coalesce(func.sum(ModelCall.cost_pico), 0))).scalar_one()
        per_ticket = dict(s.execute(select(ModelCall.ticket_id, func.count()).where(ModelCall.tier == 1,
                                                                                   ModelCall.outcome != "error")
                                    .group_by(ModelCall.ticket_id)).all())
        states = dict(s.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    db.dispose()
    return recorded, per_ticket, states


def test_transient_errors_on_submit_retrieve_and_results_are_retried(env: dict[str, str], fake: FakeAnthropic,
                                                                     db_url: str, tmp_path: Path) -> None:
    fake.push_batch("create", Error(529, "overloaded_error", "Overloaded"), Drop())
    fake.push_batch("retrieve", Error(500), Drop())
    fake.push_batch("results", Error(503, "api_error", "unavailable"))
    assert main(["classify", write(tmp_path / "t.csv", 3), "--batch", "--poll", "0.01"]) == 0
    assert len(fake.batches) == 1  # the dropped create was not accepted: sent again, once
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 3} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)


def test_a_refused_submit_is_a_clear_message_and_releases_the_tickets(env: dict[str, str], fake: FakeAnthropic,
                                                                      db_url: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake.push_batch("create", Error(413, "request_too_large", "Request exceeds the maximum size"))
    assert main(["classify", write(tmp_path / "t.csv", 3), "--batch"]) == 2
    err = capsys.readouterr().err
    assert "refused to submit the batch (413)" in err and "pending again" in err and "Traceback" not in err
    assert books(db_url)[2] == {"pending": 3}
    assert main(["worker", "--once"]) == 0 and books(db_url)[2] == {"classified": 3}  # free for live work


def test_an_unreachable_api_during_collect_loses_nothing(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path / "t.csv", 3), "--batch", "--no-wait"]) == 0
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert main(["collect", "--poll", "0.01"]) == 7
    err = capsys.readouterr().err
    assert "could not check batch" in err and "nothing was lost" in err and "Traceback" not in err
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    assert main(["worker", "--once"]) == 0 and not any(r["path"] == "/v1/messages" for r in fake.requests)  # held
    assert main(["collect", "--poll", "0.01"]) == 0
    assert books(db_url)[2] == {"classified": 3}


def test_a_gone_batch_requeues_its_tickets_and_the_others_are_still_collected(
        env: dict[str, str], fake: FakeAnthropic, db_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path / "a.csv", 2, "A"), "--batch", "--no-wait"]) == 0
    assert main(["classify", write(tmp_path / "b.csv", 2, "B"), "--batch", "--no-wait"]) == 0
    assert main(["classify", write(tmp_path / "c.csv", 2, "C"), "--batch", "--no-wait"]) == 0
    first, second, third = list(fake.batches)
    fake.push_batch("retrieve", *[Error(500)] * 5)  # the first batch checked keeps failing
    fake.forget(second)  # the API no longer knows this one (a 404 on every request about it)
    capsys.readouterr()
    assert main(["collect", "--poll", "0.01"]) == 7  # one unreachable: said so, the rest collected
    err = capsys.readouterr().err
    assert f"could not check batch {first}" in err and f"batch {second} is gone" in err
    assert f"batch {third}: 2 answered" in err
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 4, "pending": 2}  # B's classified live, C's by the batch, A's still held
    assert main(["collect", "--poll", "0.01"]) == 0
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 6} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)


def test_an_expired_batch_keeps_what_was_answered_and_requeues_the_rest(env: dict[str, str], fake: FakeAnthropic,
                                                                        db_url: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path / "t.csv", 4), "--batch", "--no-wait"]) == 0
    fake.expire(next(iter(fake.batches)), answered=1)
    assert main(["collect", "--poll", "0.01"]) == 0
    err = capsys.readouterr().err
    assert "1 answered" in err and "3 expired or unanswered and pending again" in err
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 4} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)
    batch_calls = [u for u in fake.usage_log if u["service_tier"] == "batch"]
    assert len(batch_calls) == 1 and len(fake.usage_log) == 4  # three classified live, none twice


def test_results_are_recorded_once_however_often_collect_is_interrupted(env: dict[str, str], fake: FakeAnthropic,
                                                                        db_url: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "CHUNK", 4)
    assert main(["classify", write(tmp_path / "t.csv", 20), "--batch", "--no-wait"]) == 0
    fake.push_batch("results", *[Truncate(6)] * 5)  # every download of this collect breaks after 6 lines
    assert main(["collect", "--poll", "0.01"]) == 7
    recorded, per_ticket, states = books(db_url)
    assert len(per_ticket) == 4 and states["pending"] == 16  # one chunk recorded before the break
    fake.push_batch("results", *[Truncate(13)] * 5)
    assert main(["collect", "--poll", "0.01"]) == 7
    assert len(books(db_url)[1]) == 12
    assert main(["collect", "--poll", "0.01"]) == 0
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 20} and set(per_ticket.values()) == {1}
    assert recorded == billed_pico(fake) and len(fake.usage_log) == 20  # billed once, recorded once


def test_a_lost_answer_to_submit_is_found_again_not_sent_twice(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                               tmp_path: Path) -> None:
    fake.push_batch("create", LoseAnswer())  # accepted by the API, but the answer never arrives
    assert main(["classify", write(tmp_path / "t.csv", 3), "--batch", "--poll", "0.01"]) == 0
    assert len(fake.batches) == 1
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 3} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)


def test_a_crash_between_submitting_and_remembering_never_submits_again(env: dict[str, str], fake: FakeAnthropic,
                                                                        db_url: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from db import batches as db_batches

    real = db_batches.set_state

    def crash_on_remember(s: Session, run_id: int, state: str | None, **kw: Any) -> bool:
        if state == "in_progress":
            raise SystemExit("killed right after the API accepted the batch")
        return real(s, run_id, state, **kw)

    monkeypatch.setattr(db_batches, "set_state", crash_on_remember)
    src = write(tmp_path / "t.csv", 3)
    with pytest.raises(SystemExit):
        main(["classify", src, "--batch", "--no-wait"])
    monkeypatch.setattr(db_batches, "set_state", real)
    assert len(fake.batches) == 1
    assert main(["classify", src, "--batch", "--no-wait"]) == 0  # the tickets are held: nothing new to send
    assert main(["worker", "--once"]) == 0  # nor does a worker take them live
    assert main(["collect", "--poll", "0.01"]) == 0
    assert len(fake.batches) == 1 and not any(r["path"] == "/v1/messages" for r in fake.requests)
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 3} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)
    assert Decimal(recorded) > 0


# -- issue 20, item 5: a ticket a batch holds is never worked live; item 7: adopt only a batch proven ours --------

def _pass_hours(db_url: str, hours: float) -> None:
    """`hours` go by: every stored time moves that far into the past (the same, to the code, as the clock
    moving on)."""
    db = open_database(db_url)
    with db.transaction() as s:
        for t in s.scalars(select(Ticket).where(Ticket.claimed_at.is_not(None))):
            assert t.claimed_at is not None
            t.claimed_at -= timedelta(hours=hours)
        for r in s.scalars(select(Run)):
            r.started_at -= timedelta(hours=hours)
            r.batch_since = r.batch_since - timedelta(hours=hours) if r.batch_since else None
    db.dispose()


def test_a_held_ticket_is_never_worked_live_however_late_the_collect(env: dict[str, str], fake: FakeAnthropic,
                                                                     db_url: str, tmp_path: Path) -> None:
    assert main(["classify", write(tmp_path / "t.csv", 4), "--batch", "--per-call", "2", "--no-wait"]) == 0
    _pass_hours(db_url, 30)  # nobody collected for 30 hours (the batch ended meanwhile)
    assert main(["worker", "--once"]) == 0
    assert not any(r["path"] == "/v1/messages" for r in fake.requests)  # nothing asked live
    assert main(["collect", "--poll", "0.01"]) == 0
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 4} and set(per_ticket.values()) == {1} and len(per_ticket) == 4
    assert recorded == billed_pico(fake) and len(fake.usage_log) == 2  # both group answers, on the books, once


def test_escalate_by_id_leaves_a_held_ticket_to_its_batch(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", write(tmp_path / "t.csv", 3), "--batch", "--no-wait"]) == 0
    (batch_id,) = fake.batches
    capsys.readouterr()
    assert main(["escalate", "--id", "1", "2"]) == 0
    err = capsys.readouterr().err
    assert "left 2 tickets alone (1, 2): the Message Batch of run 1" in err and batch_id in err
    assert not any(r["path"] == "/v1/messages" for r in fake.requests)  # not billed twice
    assert main(["collect", "--poll", "0.01"]) == 0
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 3} and set(per_ticket.values()) == {1} and recorded == billed_pico(fake)


def test_a_batch_answer_never_overwrites_a_later_sonnet_decision(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                 tmp_path: Path) -> None:
    assert main(["classify", write(tmp_path / "t.csv", 2), "--batch", "--no-wait"]) == 0
    db = open_database(db_url)
    with db.transaction() as s:  # a hold of the old fixed kind that ran out: the ticket was free for live work
        held = s.get(Ticket, 1)
        assert held is not None
        held.claimed_at = datetime.now(UTC) - timedelta(hours=1)
    assert main(["escalate", "--id", "1"]) == 0  # Sonnet decides it
    assert main(["collect", "--poll", "0.01"]) == 0
    with db.read() as s:
        first = s.get(Ticket, 1)
        assert first is not None
        assert (first.label_source, first.status) == ("tier2", "classified")
        calls = s.execute(select(ModelCall.tier, ModelCall.service_tier).where(ModelCall.ticket_id == 1)
                          .order_by(ModelCall.id)).all()
    db.dispose()
    assert calls == [(2, "standard"), (1, "batch")]  # Haiku's batch answer is on the books, and changed nothing
    recorded, _, states = books(db_url)
    assert states == {"classified": 2} and recorded == billed_pico(fake)


def test_a_lost_submission_never_adopts_another_deployments_batch(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import anthropic

    from db import batches as db_batches

    real = db_batches.submitted

    def crash_on_remember(s: Session, run_id: int, key: str | None, batch_id: str) -> NoReturn:
        raise SystemExit("killed right after the API accepted the batch")

    monkeypatch.setattr(db_batches, "submitted", crash_on_remember)
    with pytest.raises(SystemExit):
        main(["classify", write(tmp_path / "t.csv", 3), "--batch", "--no-wait"])
    monkeypatch.setattr(db_batches, "submitted", real)
    (ours,) = fake.batches
    other = anthropic.Anthropic(api_key=fake.api_key, base_url=fake.base_url).messages.batches.create(requests=[
        {"custom_id": f"run-1-ticket-{i}", "params": {"model": "claude-sonnet-5-5", "max_tokens": 64, "messages": [
            {"role": "user", "content": "another deployment's ticket"}]}} for i in range(1, 4)])  # same key, same size
    assert main(["collect", "--poll", "0.01"]) == 0
    db = open_database(db_url)
    with db.read() as s:
        assert s.scalar(select(Run.batch_id)) == ours != other.id
        request_ids = s.scalars(select(ModelCall.request_id)).all()
    db.dispose()
    assert len(request_ids) == 3 and all(r is not None and r.startswith(f"{ours}/") for r in request_ids)
    recorded, per_ticket, states = books(db_url)
    assert states == {"classified": 3} and set(per_ticket.values()) == {1}
    assert not any(r["path"] == "/v1/messages" for r in fake.requests) and len(fake.batches) == 2
