"""Blind-audit answers feed calibration and the threshold what-if as the unbiased labels they are: each counts
1/(its chance of being drawn), review labels once, so the labels stand for the traffic and not for the hard tickets
the review queue shows. A seeded world with a known truth: settled traffic is drawn for the audit at 5%, every
ticket sent to review is labelled; the model is confidently right on settled tickets and a coin flip on the ones
it sends to review (a shape Platt scaling cannot follow everywhere, so where the labels come from decides where it
fits). Unweighted, the map is fitted on the hard tickets and is far off on the settled traffic; weighted, it is
close. With no audit answers, everything is exactly as unweighted."""

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from db import audit_sample, queue
from db import calls as db_calls
from db import labels as db_labels
from db import quality as db_quality
from db import runs as db_runs
from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD, op
from triage import taxonomy
from triage.domain import OK, CallResult
from triage.quality import calibrate, measure, threshold, unreviewed
from triage.routing import calibration
from triage.routing.router import decide

TAX = taxonomy.default()
MODEL = "claude-haiku-5-5"
THRESHOLD = 0.7
Simulated = tuple[Database, dict[int, tuple[float, bool]], list[tuple[float, bool]]]  # tickets, traffic


def truth_of(c: float) -> float:
    """The chance an answer given with stated confidence c is right: a coin flip below the threshold (the hard
    tickets the review queue gets), 90-99% above (the settled traffic)."""
    return 0.45 if c < THRESHOLD else 0.9 + 0.09 * (c - THRESHOLD) / 0.29


def world(seed: int, n: int) -> list[tuple[float, bool]]:
    """n tickets of traffic: (stated confidence, whether Haiku is right). 70% settle on their own."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        c = rnd.uniform(0.7, 0.99) if rnd.random() < 0.7 else rnd.uniform(0.3, 0.69)
        out.append((c, rnd.random() < truth_of(c)))
    return out


def settled_error(cal: calibration.Calibration, traffic: list[tuple[float, bool]]) -> float:
    """Mean |calibrated confidence - true chance of being right| over the settled traffic."""
    settled = [c for c, _ in traffic if c >= THRESHOLD]
    return float(np.mean([abs((cal.apply(c) or 0.0) - truth_of(c)) for c in settled]))


def test_the_weighted_fit_matches_the_settled_traffic_where_the_unweighted_one_does_not() -> None:
    """The fit alone, on 20,000 tickets of traffic per seed: the audit at 5% (~700 answers) and all ~6,000
    review tickets labelled."""
    rate = 0.05
    for seed in range(3):
        traffic = world(seed, 20_000)
        rnd = random.Random(100 + seed)
        labelled = [(c, right, 1.0 / rate if c >= THRESHOLD else 1.0) for c, right in traffic
                    if c < THRESHOLD or rnd.random() < rate]
        conf, w = [c for c, _, _ in labelled], [x for _, _, x in labelled]
        right = [r for _, r, _ in labelled]
        plain = calibration.fit("m", conf, right)
        weighted = calibration.fit("m", conf, right, weights=w)
        assert plain is not None and weighted is not None
        assert settled_error(plain, traffic) > 0.15  # fitted on the hard tickets: says ~75% where it is ~95% right
        assert settled_error(weighted, traffic) < 0.06
        unit = calibration.fit("m", conf, right, weights=[1.0] * len(conf))  # unit weights: the same map
        assert unit is not None and (unit.a, unit.b) == (plain.a, plain.b)
        assert unit.ece_before == pytest.approx(plain.ece_before, abs=1e-12)


def settle(db: Database, traffic: list[tuple[float, bool]]) -> dict[int, tuple[float, bool]]:
    """The traffic classified by Haiku as recorded calls, settled (or sent to review) with the threshold, each
    settled ticket drawn for the blind audit in the settling transaction at the rate in force."""
    with db.transaction() as s:
        run_id = db_runs.create_run(s, started_by="t", source="sim", mode="haiku", threshold=THRESHOLD)
        ids = queue.import_tickets(s, [(None, f"simulated ticket {i}") for i in range(len(traffic))], source="sim",
                                   run_id=run_id).ticket_ids
        queue.claim_pending(s, "sim", len(traffic), run_id)
    with db.transaction() as s:
        for tid, (c, right) in zip(ids, traffic, strict=True):
            call = CallResult(1, MODEL, OK, category="billing" if right else "technical", confidence=c,
                              created_at=datetime.now(UTC))
            db_calls.record_call(s, tid, run_id, call)
            db_calls.apply_outcome(s, tid, decide([call], THRESHOLD))
    return dict(zip(ids, traffic, strict=True))


def label_review_queue(db: Database, ids: list[int]) -> None:
    """Every ticket sent to review gets its operator label (the truth: billing)."""
    with db.transaction() as s:
        versions = dict(s.execute(select(Ticket.id, Ticket.version).where(Ticket.id.in_(ids))).all())
        done, _ = db_labels.set_operator_labels(s, [(t, versions[t], "billing") for t in ids], operator="maria",
                                                file=None, source="review")
    assert len(done) == len(ids)


@pytest.fixture
def simulated(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulated]:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0.05")
    audit_sample.seed(11)
    traffic = world(5, 2400)
    tickets = settle(db, traffic)
    review = [t for t, (c, _) in tickets.items() if c < THRESHOLD]
    label_review_queue(db, review)
    yield db, tickets, traffic
    audit_sample.seed(None)


def test_audit_answers_weigh_one_over_their_draw_chance_in_the_stored_map_and_the_what_if(
        simulated: Simulated) -> None:
    db, tickets, traffic = simulated
    drawn = unreviewed.waiting(db, actor=LEAD)
    assert 55 <= len(drawn) <= 120  # ~1,700 settled at 5%
    answers = [(d["id"], "billing") for d in drawn]  # an operator reading the text gives the truth
    done, refused = unreviewed.answer(db, answers, actor=op("ana"))
    assert len(done) == len(drawn) and refused == []
    with db.read() as s:
        weights = audit_sample.weights(s)
    assert set(weights) == set(done) and all(w == pytest.approx(20.0) for w in weights.values())

    fitted = calibrate.calibrate(db, actor=LEAD)
    assert [c.model for c in fitted] == [MODEL]
    stored = calibrate.in_force(db)[MODEL]
    with db.read() as s:
        conf, right = calibrate.answers(db_quality.labelled_calls(s))[MODEL]
    plain = calibration.fit(MODEL, conf, right)
    assert plain is not None
    assert settled_error(plain, traffic) > 0.12  # what fitting them as plain operator labels gives
    assert settled_error(stored, traffic) < 0.07  # what is stored and routed with: close to the truth
    assert stored.n == len(conf)  # n still counts the labelled answers

    # the what-if (and so the recommendation) stands for the traffic: at each threshold, the share escalated and
    # the accuracy of what is settled, against the truth computed on every ticket of the traffic (within the
    # sampling error of ~80 audits: a share's standard error is about 0.04; counted once each the labelled tickets
    # are off by 0.3 and more, below)
    q = measure.measure(db)
    assert q.audit_weighted == len(done) and "Weighted to the traffic" in q.whatif_weighting()
    assert f"{len(done)} answered blind in the audit" in q.measured_on()
    value = np.array([stored.apply(c) or 0.0 for c, _ in traffic])
    p = np.array([truth_of(c) for c, _ in traffic])
    labelled_share = {}
    for row in q.whatif:
        kept = value >= row["threshold"]
        assert row.get("weighted") is True
        assert row["escalation_rate"] == pytest.approx(1 - kept.mean(), abs=0.1)
        if kept.any() and row["settled"] >= 30:
            assert row["settled_accuracy"] == pytest.approx(p[kept].mean(), abs=0.08)
        labelled_share[row["threshold"]] = 1 - np.mean([(stored.apply(tickets[t][0]) or 0.0) >= row["threshold"]
                                                        for t in tickets if t in set(done) or tickets[t][0] < 0.7])
    # counted once each, the labelled tickets would say most of the traffic escalates (they are mostly the queue's)
    mid = next(r for r in q.whatif if 0.2 < r["escalation_rate"] < 0.5)
    assert labelled_share[mid["threshold"]] > mid["escalation_rate"] + 0.3

    rec = threshold.recommend_stored(db, 0.85)
    assert rec.threshold is not None and "worth" in rec.message
    chosen = next(r for r in rec.tradeoff if r["threshold"] == rec.threshold)
    assert chosen["weighted"] and chosen["effective"] > 0
    assert chosen["settled_accuracy"] is not None
    assert rec.interval == pytest.approx(unreviewed.wilson(chosen["settled_accuracy"], chosen["effective"]))


def test_with_no_audit_answers_the_fit_and_the_what_if_are_exactly_unweighted(db: Database,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0.05")
    audit_sample.seed(3)
    traffic = world(9, 600)
    tickets = settle(db, traffic)
    audit_sample.seed(None)
    label_review_queue(db, [t for t, (c, _) in tickets.items() if c < THRESHOLD])
    (fitted,) = calibrate.calibrate(db, actor=LEAD)
    with db.read() as s:
        conf, right = calibrate.answers(db_quality.labelled_calls(s))[MODEL]
    plain = calibration.fit(MODEL, conf, right)
    assert plain is not None and (fitted.a, fitted.b, fitted.ece_before) == (plain.a, plain.b, plain.ece_before)
    assert fitted.ece_after == calibration.cross_validated_ece(conf, right)
    q = measure.measure(db)
    assert q.audit_weighted == 0 and all("weighted" not in r for r in q.whatif)
    assert "Every labelled ticket counts once" in q.whatif_weighting()
    rows = threshold.tradeoff(q.whatif, None)
    assert all(not r["weighted"] and r["effective"] == r["settled"] for r in rows)
    assert all((r["low"], r["high"]) == threshold.wilson(round((r["settled_accuracy"] or 0) * r["settled"]),
                                                         r["settled"]) for r in rows if r["settled"])
