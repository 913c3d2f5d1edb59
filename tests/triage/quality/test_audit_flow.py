"""The blind audit end to end on a real SQLite database: tickets settle through the pipeline and are drawn in
the settling transaction with the rate in force (its probability stored), `triage audit` lists the drawn ones
without the model's label, answers come back from a file and land as audit labels, and `triage quality --json`
shows the unreviewed traffic's accuracy beside the review-label figures."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import audit_sample
from db.engine import Database
from db.models import AuditDraw, AuditEvent, Correction, Ticket
from tests.support.actors import LEAD, VIEWER, op
from tests.support.fakes import ScriptedProvider
from triage import settings as config
from triage import taxonomy
from triage.cli import main
from triage.errors import AccessDenied
from triage.quality import unreviewed
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()


def history(n: int = 40) -> dict[str, tuple[str, float]]:
    """n tickets Haiku answers: confident ones (settle on their own) and every fifth unsure (goes to review).
    The texts name no category, so a category word in `triage audit`'s output could only be the model's."""
    out = {}
    for i in range(n):
        out[f"ticket number {i} about my thing"] = ("billing" if i % 2 else "technical", 0.4 if i % 5 == 0 else 0.9)
    return out


def settle(db: Database, answers: dict[str, tuple[str, float]], mode: str = "haiku") -> dict[str, int]:
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: answers[t]), None, TAX)
    imp = runs.start_run(db, [(None, t) for t in answers], source="t", actor=LEAD, mode=mode)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    return dict(zip(answers, imp.ticket_ids, strict=True))


@pytest.fixture
def seeded_draws() -> Iterator[None]:
    audit_sample.seed(7)
    yield
    audit_sample.seed(None)


def test_tickets_settled_without_review_are_drawn_at_the_rate_in_force(db: Database, seeded_draws: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0.5")
    answers = history(40)
    ids = settle(db, answers)
    with db.read() as s:
        rows = {r.ticket_id: r for r in s.scalars(select(AuditDraw))}
        status = {t: st for t, st in s.execute(select(Ticket.id, Ticket.status))}
    settled = {ids[t] for t, (_, c) in answers.items() if c >= 0.7}
    assert set(rows) == settled  # every settled ticket has its row; those sent to review none
    assert all(status[t] == "needs_review" for t in set(ids.values()) - settled)
    assert {r.probability for r in rows.values()} == {0.5}
    drawn = [r for r in rows.values() if r.drawn]
    assert 8 <= len(drawn) <= 24  # 32 tickets at 50%
    assert all(r.model == "claude-haiku-5-5" and r.tier == 1 for r in rows.values())

    # a lead's saved rate wins over the environment, and the new probability is stored for what settles next
    config.save_engine(db, actor=LEAD, audit_rate="0.25")
    more = settle(db, {f"later ticket {i} here": ("account", 0.95) for i in range(8)})
    with db.read() as s:
        assert {s.get_one(AuditDraw, t).probability for t in more.values()} == {0.25}


def test_rate_zero_draws_nothing_and_eval_tickets_are_left_out(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0")
    settle(db, history(10))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditDraw).where(AuditDraw.drawn)) == 0
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", 0.9)), None, TAX)
    imp = runs.start_run(db, [("eval:gold.csv#1", "gold row text")], source="eval:gold.csv", actor=LEAD, mode="haiku")
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.read() as s:
        assert s.get(AuditDraw, imp.ticket_ids[0]) is None


def test_audit_cli_lists_blind_and_records_answers_from_a_file(cli_db: Database, seeded_draws: None,
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")  # every settled ticket drawn: the figures are worked out by hand
    answers = history(20)
    ids = settle(cli_db, answers)
    assert main(["audit", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    settled = {ids[t]: a for t, a in answers.items() if a[1] >= 0.7}
    assert {r["id"] for r in listed} == set(settled)
    assert set(listed[0]) == {"id", "external_id", "text"}
    assert main(["audit"]) == 0
    text = capsys.readouterr().out
    assert "billing" not in text and "technical" not in text and "0.9" not in text  # blind

    # the truth: the model is wrong on every ticket whose number ends in 3 or 7 (16 settled, 4 wrong)
    by_id = {v: k for k, v in ids.items()}
    truth = {}
    for tid, (label, _) in settled.items():
        number = int(by_id[tid].split()[2])
        truth[tid] = ("account" if number % 10 in (3, 7) else label)
    wrong = sum(truth[t] != settled[t][0] for t in settled)
    assert wrong == 4 and len(settled) == 16
    f = tmp_path / "answers.csv"
    f.write_text("id,label\n" + "".join(f"{t},{lab}\n" for t, lab in truth.items()))
    assert main(["audit", "--answers", str(f), "--operator", "ana"]) == 0
    out = capsys.readouterr().out
    assert "recorded 16 audit answers" in out

    assert main(["quality", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    u = q["unreviewed"]
    assert u["audited"] == 16 and u["settled"] == 16 and u["waiting"] == 0
    assert u["accuracy"] == pytest.approx(12 / 16)
    assert (u["low"], u["high"]) == pytest.approx(unreviewed.wilson(0.75, 16))
    assert u["low"] < 0.75 < u["high"]
    assert "Blind audit" in u["measured_on"]
    # the answers are operator labels now, in the corrections with source audit, so calibration reads them
    assert q["label_sources"].get("audit") == 16
    with cli_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction).where(Correction.source == "audit")) == 16
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event == unreviewed.AUDIT_ANSWERS)) == 1

    # again: each answer is refused (already answered), nothing changes, exit 2
    assert main(["audit", "--answers", str(f)]) == 2
    assert "already answered by ana" in capsys.readouterr().out


def test_answers_refused_and_access(db: Database, seeded_draws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")
    answers = history(10)
    ids = settle(db, answers)
    unsure = next(ids[t] for t, (_, c) in answers.items() if c < 0.7)
    sure = next(ids[t] for t, (_, c) in answers.items() if c >= 0.7)
    done, refused = unreviewed.answer(db, [(unsure, "billing"), (sure, "nonsense")], actor=op("o"))
    assert done == [] and len(refused) == 2
    assert any("not drawn" in r for r in refused) and any("not a category" in r for r in refused)
    with pytest.raises(AccessDenied):
        unreviewed.waiting(db, actor=VIEWER)
    with pytest.raises(AccessDenied):
        unreviewed.answer(db, [(sure, "billing")], actor=VIEWER)
    assert unreviewed.figures(db).overall.audited == 0  # viewers may read the figures: no ticket text in them


def test_the_audit_rate_is_a_checked_setting(cli_db: Database, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "set", "audit_rate", "1.5"]) == 2
    assert "audit_rate is a share" in capsys.readouterr().err
    assert main(["settings", "set", "audit_rate", "0.1"]) == 0
    assert config.effective(cli_db)[0].audit_rate == 0.1
    with cli_db.read() as s:
        assert audit_sample.rate_in_force(s) == 0.1  # what the draw reads is what `triage settings` shows
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "lots")
    from triage.errors import InputError

    with pytest.raises(InputError):
        config.Settings.from_env()
    assert main(["settings", "set", "max_reviews_per_day", "2.5"]) == 2
