"""The threshold recommendation on a stored history whose right answer is known, applying it (a lead's audited
settings change), and `triage quality --target`."""

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from db import labels as db_labels
from db.engine import Database
from db.models import AuditEvent, Ticket
from tests.support.actors import LEAD, OPERATOR, lead
from tests.support.fakes import ScriptedProvider
from triage import settings as config
from triage import taxonomy
from triage.cli import main
from triage.errors import AccessDenied, InputError
from triage.quality import calibrate, threshold
from triage.quality import measure as quality
from triage.work import pipeline, runs

if TYPE_CHECKING:
    from triage.routing.router import Router

TAX = taxonomy.default()
# 300 tickets in three confidence levels; Haiku is right on all of A, 60 of B and 30 of C; Sonnet is always right
GROUPS = {"A": (0.95, 100, 100), "B": (0.75, 100, 60), "C": (0.55, 100, 30)}


def truth_of(text: str) -> str:
    group, i = text.split()[0], int(text.split()[1])
    return "billing" if i < GROUPS[group][2] else "account"


def haiku(text: str) -> tuple[str, float]:
    return "billing", GROUPS[text.split()[0]][0]


@pytest.fixture
def history(db: Database) -> Database:
    """Every ticket went to Sonnet too (threshold 1.0), so the what-if can replay any threshold; labels written
    straight into the database (no calibration is fitted: the replay is on the stated confidence)."""
    router = Router1()
    texts = [f"{g} {i}" for g, (_, n, _) in GROUPS.items() for i in range(n)]
    imp = runs.start_run(db, [(None, t) for t in texts], source="seed", actor=LEAD, threshold=1.0)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.transaction() as s:
        rows = {t.id: t for t in s.scalars(select(Ticket))}
        done, refused = db_labels.set_operator_labels(
            s, [(tid, rows[tid].version, truth_of(rows[tid].text)) for tid in imp.ticket_ids], operator="maria",
            file="truth.csv")
    assert len(done) == 300 and not refused
    return db


def Router1() -> "Router":
    from triage.routing.router import Router

    return Router(ScriptedProvider(1, "claude-haiku-5-5", fn=haiku),
                  ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: (truth_of(t), 0.95)), TAX, threshold=1.0)


def test_the_replay_and_the_recommendation_match_the_worked_out_answer(history: Database) -> None:
    at = {w["threshold"]: w for w in quality.measure(history).whatif}
    # t <= 0.55: nobody escalates, 190/300 right; 0.55 < t <= 0.75: C escalates, 260/300; above: B and C, 300/300
    assert (at[0.55]["accuracy"], at[0.6]["accuracy"], at[0.8]["accuracy"]) == (190 / 300, 260 / 300, 1.0)
    assert (at[0.6]["escalation_rate"], at[0.8]["escalation_rate"]) == (1 / 3, 2 / 3)
    rec = threshold.recommend_stored(history, 0.9)
    assert rec.interval is not None
    assert rec.threshold == 0.8 and rec.n == 300 and rec.interval[0] >= 0.9 and rec.on == "stated confidence"
    assert rec.message.startswith("escalate under 0.80: accuracy 100%") and "on 300 labelled tickets" in rec.message
    assert threshold.recommend_stored(history, 0.8).threshold == 0.6  # 86.7%, lower bound 83%: enough for 80%
    # ... but not for 85%: the point estimate (86.7%) would pass, its interval does not
    assert threshold.recommend_stored(history, 0.85).threshold == 0.8
    assert threshold.recommend_stored(history, 0.5).threshold == 0.0  # Haiku alone (63%, 58% at worst) suffices
    with pytest.raises(InputError, match="between 0 and 1"):
        threshold.recommend_stored(history, 1.5)


def test_with_a_calibration_in_force_the_replay_and_the_recommendation_move_to_its_scale(history: Database) -> None:
    (cal,) = [c for c in calibrate.calibrate(history, actor=LEAD) if c.model == "claude-haiku-5-5"]
    low, mid, high = cal.apply(0.55), cal.apply(0.75), cal.apply(0.95)
    assert low is not None and mid is not None and high is not None
    assert low < mid < high and abs(mid - 0.6) < 0.1  # B is right 60% of the time
    rec = threshold.recommend_stored(history, 0.9)
    expected = min(t for t in quality.THRESHOLDS if t > mid)  # the first threshold that sends B (not A) to Sonnet
    assert expected < high and rec.threshold == expected and rec.accuracy == 1.0
    assert rec.on == f"calibrated confidence (calibration #{cal.id} for claude-haiku-5-5)"
    assert quality.measure(history).whatif_on == rec.on


def test_applying_is_a_leads_audited_settings_change_and_refused_otherwise(history: Database) -> None:
    with pytest.raises(AccessDenied):
        threshold.apply_recommended(history, 0.9, actor=OPERATOR)
    assert config.effective(history)[0].threshold == 0.7
    with pytest.raises(InputError, match=r"nothing was changed: no threshold reaches 99\.5%"):
        threshold.apply_recommended(history, 0.995, actor=LEAD)  # 300 of 300 right: at worst 99.1%
    with history.read() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.event == "settings.engine")) is None

    rec = threshold.apply_recommended(history, 0.9, actor=lead("lena"))
    assert rec.threshold == 0.8 and config.effective(history)[0].threshold == 0.8
    with history.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == "settings.engine")).all()
    detail = json.loads(event.detail)
    assert (event.actor, event.role) == ("lena", "lead") and event.at is not None
    assert detail["changed"] == {"threshold": [0.7, 0.8]}
    assert detail["why"].startswith("recommended for a target accuracy of 90% on the stated confidence: escalate "
                                    "under 0.80")


def test_the_cli_recommends_and_applies_with_the_operators_name(cli_db: Database, capsys: pytest.CaptureFixture[str],
                                                                request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("history")  # the same database, seeded
    assert main(["quality", "--target", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "target accuracy 90% (threshold on the stated confidence): escalate under 0.80" in out
    assert "to apply it: triage quality --target 0.9 --apply" in out
    assert "claude-haiku-5-5: enough labels; fitted at the next label change or by `triage calibrate`" in out
    assert "claude-sonnet-5-5: not enough labels yet: needs 5 right and 5 wrong answers (has 300 / 0)" in out
    assert config.effective(cli_db)[0].threshold == 0.7  # only shown

    assert main(["quality", "--target", "0.9", "--apply", "--operator", "maria", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)["recommendation"]
    assert (rec["threshold"], rec["n"], rec["applied"], rec["threshold_before"]) == (0.8, 300, True, 0.7)
    assert rec["interval"][0] >= 0.9 and config.effective(cli_db)[0].threshold == 0.8
    with cli_db.read() as s:
        assert s.scalar(select(AuditEvent.actor).where(AuditEvent.event == "settings.engine")) == "maria"

    assert main(["quality", "--apply"]) == 2
    assert "--apply needs --target" in capsys.readouterr().err
    assert main(["quality", "--target", "0.995", "--apply"]) == 2
    assert "nothing was changed" in capsys.readouterr().err and config.effective(cli_db)[0].threshold == 0.8


def test_triage_calibrate_fits_and_says_what_the_confidence_means(cli_db: Database, capsys: pytest.CaptureFixture[str],
                                                                  request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("history")
    assert main(["calibrate", "--operator", "lena"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("refitted 1 model: claude-haiku-5-5 (#1, 300 labels)\n")  # Sonnet was never wrong
    assert "calibration #1 in force, fitted on 300 labels (manual, by lena" in out
    assert "says 95%, right about " in out and "(measured 100% on 100)" in out
    assert main(["calibrate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fitted"] == [2] and data["calibrations"][0]["in_force"]["fitted_by"].startswith("cli:")
