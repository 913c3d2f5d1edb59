"""The Quality page's calibration and threshold sections under AppTest: with too few labels (how many, and why
that many), and with enough (what the confidence means, the recommendation, applying it as a lead; a viewer
sees it and may not apply)."""

import asyncio
import json
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from db.engine import Database
from db.migrate import open_database
from db.models import AuditEvent, Ticket
from tests.dashboard.conftest import make_app, signed_in_app
from tests.dashboard.test_labels_and_quality_pages import texts
from tests.support.actors import LEAD, lead, op
from tests.support.fakes import ScriptedProvider
from triage import ingest, labels, review, taxonomy
from triage import settings as config
from triage.quality import calibrate
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()


def test_with_too_few_labels_the_page_says_how_many_and_why(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    for text in ("charged twice", "login or refund?"):
        with db.read() as s:
            t = s.get_one(Ticket, ids[text])
        review.correct(db, t.id, "billing", actor=op("alice"), expected_version=t.version, taxonomy=TAX)
    at = make_app("quality")
    assert not at.exception
    shown = texts(at)
    assert "A map is fitted once a model has 50 labelled answers, at least 5 of them right and 5 wrong" in shown
    info = [i.value for i in at.info]
    assert "Not enough labels yet: 2 of 50 labelled answers." in info  # Haiku answered both
    assert "Not enough labels yet: 1 of 50 labelled answers." in info  # Sonnet answered one
    assert not [c for c in at.get("plotly_chart") if "calibration" in str(c.proto.id)]
    assert any(w.value.startswith("No threshold reaches 90% with 90% confidence on these 2 labels") for w in at.warning)
    assert not any(b.key == "apply_threshold" for b in at.button)  # nothing to apply


@pytest.fixture
def labelled(app_env: str) -> Iterator[Database]:
    """80 tickets an over-confident Haiku answered (and Sonnet, always right, too); their labels imported."""
    db = open_database(app_env)
    rnd = np.random.default_rng(7)
    stated = np.round(rnd.uniform(0.8, 0.99, 80), 3)
    right = rnd.random(80) < 1 / (1 + np.exp(-(0.5 * np.log(stated / (1 - stated)) - 1.0)))
    truth = {f"ticket {i}": "billing" if ok else "account" for i, ok in enumerate(right)}
    conf = {f"ticket {i}": float(c) for i, c in enumerate(stated)}
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ("billing", conf[t])),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: (truth[t], 0.95)), TAX, threshold=1.0)
    imp = runs.start_run(db, [(None, t) for t in truth], source="seed", actor=LEAD, threshold=1.0)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    batch = ingest.parse_labelled("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in truth.items()), "csv",
                                  text_column="text", label_column="label")
    labels.import_labels(db, batch, TAX, file="history.csv", actor=lead("maria"), retrain=False)
    yield db
    db.dispose()


def test_with_enough_labels_the_page_shows_what_the_confidence_means_and_applies_the_threshold(
        labelled: Database) -> None:
    db = labelled
    cal = calibrate.in_force(db)["claude-haiku-5-5"]
    assert cal.id is not None
    at = make_app("quality")
    assert not at.exception
    shown = texts(at)
    assert f"Calibration #{cal.id} (Platt scaling) on 80 labelled answers" in shown and "label import by maria" in shown
    says = [m.value for m in at.markdown if m.value.startswith("- says ")]
    haiku = [m for m in says if ", right about " in m]  # Haiku's levels next to its map: 0.8-0.9 and 0.9-1
    assert len(haiku) == 2 and all(" at that level (measured " in m for m in haiku)
    assert "- says 95%, right 100% of the time at that level (80 tickets)" in says  # Sonnet: measured only, no map
    assert any(m.label == "Calibration error" and "→" in m.value for m in at.metric)
    assert "Not enough labels yet: needs 5 right and 5 wrong answers (has 80 / 0)." in [i.value for i in at.info]
    assert len(at.get("plotly_chart")) == 4  # reliability, what-if, confusion, and Haiku's calibration

    at.number_input(key="target_accuracy").set_value(0.8).run()
    metrics = {m.label: m.value for m in at.metric}
    recommended = float(metrics["Recommended threshold"])
    # replayed on the calibrated confidence: 0.60 sends 68% to Sonnet, 92.5% right (83% at worst) on these 80
    assert (metrics["Labelled tickets behind it"], recommended, metrics["Escalated"]) == ("80", 0.6, "68%")
    assert "calibrated confidence (calibration #" in shown
    at.button(key="apply_threshold").click().run()
    assert not at.exception
    assert any(f"Threshold set to {recommended:.2f} (was 0.70) by alice" in s.value for s in at.success)
    assert config.effective(db)[0].threshold == recommended
    with db.read() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.event == "settings.engine")).one()
    assert event.actor == "alice" and json.loads(event.detail)["changed"] == {"threshold": [0.7, recommended]}
    assert at.button(key="apply_threshold").disabled and "already in force" in texts(at)

    at.button(key="calibrate_refit").click().run()
    assert any("Refitted claude-haiku-5-5 (#" in s.value for s in at.success)
    assert calibrate.in_force(db)["claude-haiku-5-5"].id == cal.id + 1


def test_a_viewer_sees_the_recommendation_but_may_not_apply_it_or_refit(labelled: Database) -> None:
    at = signed_in_app("viewer")
    at.run()
    at.switch_page("app_pages/quality.py").run()
    at.number_input(key="target_accuracy").set_value(0.8).run()
    assert not at.exception
    assert any(m.label == "Recommended threshold" and m.value == "0.60" for m in at.metric)
    assert at.button(key="apply_threshold").disabled
    assert "Applying a threshold is a lead's action." in texts(at)
    assert not any(b.key == "calibrate_refit" for b in at.button)
    assert config.effective(labelled)[0].threshold == 0.7
