"""Calibrated escalation through the real stored path: answers from the fake Messages API over HTTP (through the
SDK), operator labels imported into the database, the map fitted and stored, the router built from the database
applying it, and every call recording which calibration it was routed with."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.migrate import open_database
from db.models import AuditEvent, Calibration, LabelledAnswer, ModelCall, Ticket
from tests.support import oracles
from tests.support.actors import LEAD, OPERATOR, lead, op
from tests.support.calibrated import applied
from tests.support.fake_anthropic import FakeAnthropic
from triage import ingest, labels, review, taxonomy
from triage.domain import ReviewFilter
from triage.errors import AccessDenied
from triage.quality import calibrate
from triage.routing import calibration
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()


def overconfident(n: int, seed: int) -> tuple[list[float], list[bool]]:
    """Haiku says 0.85-0.99 but is right only sigmoid(0.5 * logit(stated) - 1.5) of the time (0.35-0.69)."""
    rnd = np.random.default_rng(seed)
    stated = np.round(rnd.uniform(0.85, 0.99, n), 4)
    truth = 1 / (1 + np.exp(-(0.5 * np.log(stated / (1 - stated)) - 1.5)))
    return stated.tolist(), (rnd.random(n) < truth).tolist()


def texts(prefix: str, stated: Sequence[float]) -> list[str]:
    # the fake labels a "refund" ticket billing, with the confidence the marker gives (Sonnet: 0.95)
    return [f"{prefix} {i}: please refund my invoice [[conf={c}]]" for i, c in enumerate(stated)]


def classify(db: Database, fake: FakeAnthropic, items: Sequence[str], mode: str = "auto") -> list[int]:
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url)
    imp = runs.start_run(db, [(None, t) for t in items], source="t", actor=LEAD, mode=mode)
    assert imp.run_id is not None
    router = services.build_router(settings, TAX, db=db, mode=mode)
    services.classify_run(db, router, imp.run_id, actor=LEAD)
    return imp.ticket_ids


def sonnet_requests(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if r["body"] and "sonnet" in r["body"]["model"])


def import_truth(db: Database, items: Sequence[str], right: Sequence[bool], operator: str = "maria"
                 ) -> labels.LabelsApplied:
    rows = "\n".join(f"{t},{'billing' if ok else 'account'}" for t, ok in zip(items, right, strict=True))
    batch = ingest.parse_labelled("text,label\n" + rows + "\n", "csv", text_column="text", label_column="label")
    return labels.import_labels(db, batch, TAX, file="history.csv", actor=lead(operator), retrain=False)


def haiku_map_from_history(db: Database, fake: FakeAnthropic, n: int, seed: int) -> calibration.Calibration:
    """n overconfident Haiku answers classified, then their operators' labels imported: the map that fits."""
    stated, right = overconfident(n, seed=seed)
    history = texts("old", stated)
    classify(db, fake, history)
    import_truth(db, history, right)
    return calibrate.in_force(db)["claude-haiku-5-5"]


def tier1_calls(db: Database, ids: Sequence[int]) -> dict[int, ModelCall]:
    with db.read() as s:
        return {c.ticket_id: c for c in s.scalars(select(ModelCall).where(ModelCall.ticket_id.in_(ids),
                                                                             ModelCall.tier == 1))}


def test_labels_in_the_database_calibrate_routing_and_every_call_records_its_calibration(db: Database,
                                                                                         fake: FakeAnthropic,
                                                                                         tmp_path: Path) -> None:
    # history: an over-confident Haiku, never escalated (it always says 0.85 or more, the threshold is 0.7)
    h_stated, h_right = overconfident(240, seed=1)
    history = texts("old", h_stated)
    classify(db, fake, history)
    assert sonnet_requests(fake) == 0
    with db.read() as s:
        assert s.scalar(select(ModelCall.calibration_id).where(ModelCall.calibration_id.is_not(None))) is None

    # operators' labels arrive (a helpdesk export): the import fits and stores Haiku's map
    import_truth(db, history, h_right)
    with db.read() as s:
        (row,) = s.scalars(select(Calibration)).all()
        # the import keeps the labelled-answers rollup in step (what the refit check counts)
        rollup = {(a.ticket_id, a.tier, a.with_examples): (a.call_id, a.truth, a.label)
                  for a in s.scalars(select(LabelledAnswer))}
        raw = {(a["ticket_id"], a["tier"], a["with_examples"]): (a["call_id"], a["truth"], a["label"])
               for a in oracles.labelled_answers_from_calls(s)}
    assert len(rollup) == 240 and rollup == raw
    assert (row.model, row.n, row.n_right, row.trigger, row.fitted_by) == (
        "claude-haiku-5-5", 240, sum(h_right), "label import", "maria")
    assert row.ece_after is not None  # cross-validated: answers the map did not see
    assert row.ece_before > 0.3 and row.ece_after < 0.1
    cal = calibrate.in_force(db)["claude-haiku-5-5"]
    assert cal.id == row.id and abs(applied(cal, 0.99) - 0.69) < 0.1 and abs(applied(cal, 0.85) - 0.35) < 0.1

    # new tickets: the router built from the database escalates on the calibrated confidence
    n_stated, n_right = overconfident(150, seed=2)
    fresh = texts("new", n_stated)
    ids = classify(db, fake, fresh)
    expected = sum(applied(cal, c) < 0.7 for c in n_stated)
    assert expected > 100 and sonnet_requests(fake) == expected  # about none of them would escalate on 0.85+
    calls = tier1_calls(db, ids)
    for tid, stated in zip(ids, n_stated, strict=True):
        c = calls[tid]
        assert c.confidence == pytest.approx(stated) and c.calibration_id == cal.id
        assert c.calibrated_confidence == pytest.approx(cal.apply(stated), abs=1e-12)  # the replay is exact
    # and the calibrated confidence the calls recorded is honest on tickets the map never saw
    recorded = [conf for t in ids if (conf := calls[t].calibrated_confidence) is not None]
    assert len(recorded) == len(ids)
    assert calibration.ece(n_stated, n_right) > 0.3 and calibration.ece(recorded, n_right) < 0.1

    # the same new tickets in a database without labels: routed on the stated confidence, nothing escalates
    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    before = sonnet_requests(fake)
    other_ids = classify(other, fake, fresh)
    assert sonnet_requests(fake) == before
    assert all(c.calibration_id is None and c.calibrated_confidence is None
               for c in tier1_calls(other, other_ids).values())
    other.dispose()


def test_a_ticket_sent_to_review_by_its_calibrated_confidence_says_so_and_shows_as_low_confidence(
        db: Database, fake: FakeAnthropic) -> None:
    cal = haiku_map_from_history(db, fake, 80, seed=3)
    (tid,) = classify(db, fake, ["one more: please refund my invoice [[conf=0.93]]"], mode="haiku")
    with db.read() as s:
        t = s.get_one(Ticket, tid)
        assert (t.status, t.confidence) == ("needs_review", 0.93)  # the ticket keeps what the model said
        assert t.status_reason == (f"calibrated confidence {cal.apply(0.93):.2f} (says 0.93) under the threshold "
                                   "0.70")
    page = review.page(db, ReviewFilter(reasons=("low_confidence",), threshold=0.7), actor=OPERATOR)
    assert tid in [r.id for r in page.rows]
    detail = review.detail(db, tid, actor=OPERATOR)
    assert detail is not None
    (call,) = detail.calls  # the ticket's detail shows what routing compared
    assert (call["confidence"], call["examples"], call["tickets_in_request"]) == (0.93, None, 1)
    assert call["calibrated"] == pytest.approx(cal.apply(0.93), abs=1e-12)


def test_review_saves_refit_once_enough_new_labels_arrived_and_a_lead_can_refit_any_time(db: Database,
                                                                                         fake: FakeAnthropic) -> None:
    stated, right = overconfident(130, seed=4)
    items = texts("t", stated)
    ids = classify(db, fake, items)
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket))}

    def label(first: int, last: int) -> None:
        changes = [(tid, "billing" if ok else "account", versions[tid])
                   for tid, ok in list(zip(ids, right, strict=True))[first:last]]
        review.correct_many(db, changes, actor=op("olga"), taxonomy=TAX)

    def fits() -> Sequence[Any]:
        with db.read() as s:
            return s.execute(select(Calibration.n, Calibration.trigger, Calibration.fitted_by)
                             .order_by(Calibration.id)).all()

    label(0, 49)
    assert fits() == []  # 49 of 50: not enough yet
    label(49, 50)
    assert fits() == [(50, "corrections", "olga")]
    label(50, 74)  # 74 < 50 + 25: the map in force stays
    assert len(fits()) == 1
    label(74, 75)
    assert fits()[-1] == (75, "corrections", "olga") and calibrate.refit_at(75) == 100
    label(75, 80)
    with pytest.raises(AccessDenied):
        calibrate.calibrate(db, actor=OPERATOR)
    assert len(fits()) == 2
    (manual,) = calibrate.calibrate(db, actor=LEAD)
    assert fits()[-1] == (80, "manual", LEAD.identity) and manual.n == 80
    with db.read() as s:  # a refit is derived data, not a settings change: no audit row of its own
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.event.like("calib%"))) is None


def test_refresh_is_best_effort_and_never_undoes_a_saved_label(db: Database, fake: FakeAnthropic,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    stated, right = overconfident(60, seed=5)
    ids = classify(db, fake, texts("t", stated))

    def broken(*a: Any, **k: Any) -> NoReturn:
        raise RuntimeError("numerical trouble")

    monkeypatch.setattr(calibration, "fit", broken)
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket))}
    result = review.correct_many(db, [(t, "billing" if ok else "account", versions[t])
                                      for t, ok in zip(ids, right, strict=True)], actor=op("olga"), taxonomy=TAX)
    assert len(result.saved) == 60 and calibrate.in_force(db) == {}
    with db.read() as s:
        assert s.scalar(select(Ticket.label_source).where(Ticket.id == ids[0])) == "operator"


def test_the_map_is_per_model_and_leaves_tier0_and_unusable_answers_out() -> None:
    rows: list[Any] = [{"ticket_id": i, "tier": 1, "model": "haiku", "label": "billing", "truth": "billing",
                        "confidence": 0.9, "outcome": "ok"} for i in range(3)]  # the keys calibrate.answers reads
    rows += [{"ticket_id": 9, "tier": 1, "model": "haiku", "label": "unknown", "truth": "billing",
              "confidence": 0.9, "outcome": "unknown_label"},
             {"ticket_id": 1, "tier": 0, "model": "local", "label": "billing", "truth": "billing", "confidence": 0.5,
              "outcome": "ok"},
             {"ticket_id": 1, "tier": 2, "model": "sonnet", "label": "account", "truth": "billing",
              "confidence": 0.8, "outcome": "ok"}]
    got = calibrate.answers(rows)
    assert got == {"haiku": ([0.9, 0.9, 0.9], [True, True, True]), "sonnet": ([0.8], [False])}
    assert math.isclose(calibrate.refit_at(200), 240) and calibrate.refit_at(50) == 75


def test_batch_results_are_routed_on_the_calibration_in_force_too(env: dict[str, str], fake: FakeAnthropic, db_url: str,
                                                                  tmp_path: Path) -> None:
    from db import calibrations
    from triage.cli import main

    db = open_database(db_url)
    with db.transaction() as s:  # a map that reads Haiku's 0.93 as about 0.40
        cal_id = calibrations.add(s, model="claude-haiku-5-5", a=1.0, b=-3.0, n=100, n_right=50, ece_before=0.4,
                           ece_after=0.05, trigger="manual", fitted_by="lena")
    src = tmp_path / "t.txt"
    src.write_text("I was charged twice, please refund\n")
    assert main(["classify", str(src), "--batch", "--poll", "0.05", "--out", str(tmp_path / "o.jsonl")]) == 0
    with db.read() as s:
        calls = s.scalars(select(ModelCall).order_by(ModelCall.id)).all()
        status = s.scalar(select(Ticket.status))
    assert [(c.tier, c.service_tier, c.calibration_id) for c in calls] == [(1, "batch", cal_id), (2, "standard", None)]
    assert calls[0].confidence == 0.93 and calls[0].calibrated_confidence == pytest.approx(
        1 / (1 + math.exp(-(math.log(0.93 / 0.07) - 3))))
    assert status == "escalated"  # on the stated 0.93 it would have stayed with Haiku
    db.dispose()


def test_answers_from_requests_about_several_tickets_are_routed_on_the_calibration_too(db: Database,
                                                                                       fake: FakeAnthropic) -> None:
    cal = haiku_map_from_history(db, fake, 240, seed=1)

    n_stated, _ = overconfident(60, seed=3)
    fresh = texts("grouped", n_stated)
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, per_call=10)
    imp = runs.start_run(db, [(None, t) for t in fresh], source="t", actor=LEAD, per_call=10)
    assert imp.run_id is not None
    before = sonnet_requests(fake)
    services.classify_run(db, services.build_router(settings, TAX, db=db), imp.run_id, actor=LEAD)
    calls = tier1_calls(db, imp.ticket_ids)
    assert {c.group_size for c in calls.values()} == {10}  # asked ten at a time
    for tid, stated in zip(imp.ticket_ids, n_stated, strict=True):
        assert calls[tid].calibration_id == cal.id
        assert calls[tid].calibrated_confidence == pytest.approx(cal.apply(stated), abs=1e-12)
    escalated = sum(applied(cal, c) < 0.7 for c in n_stated)
    with db.read() as s:
        tier2 = s.scalar(select(func.count(func.distinct(ModelCall.ticket_id))).where(
            ModelCall.ticket_id.in_(imp.ticket_ids), ModelCall.tier == 2))
    assert escalated > 30 and tier2 == escalated and sonnet_requests(fake) > before
