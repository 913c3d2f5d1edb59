"""Settings shows the local tier's learning curve, measured when it trained, not on every render."""

import json
from typing import Any, NoReturn

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.migrate import open_database
from db.models import Ticket
from tests.dashboard.conftest import app_env, make_app  # noqa: F401  (app_env is a fixture)
from tests.support.actors import LEAD
from triage import review, taxonomy
from triage.demo import load_samples
from triage.local import tier as local
from triage.local.embedder import Embedder
from triage.work import runs, services

TAX = taxonomy.default()


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_settings_shows_the_learning_curve_from_operator_labels(app_env: str, embedder: Embedder,  # noqa: F811
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_database(app_env)
    rows = load_samples()
    picked = [r for c in TAX.names for r in [x for x in rows if x["label"] == c][:15]]  # 15 per category
    imp = runs.start_run(db, [(r["id"], r["text"]) for r in picked], source="t", actor=LEAD)
    services.classify_locally(db, run_id=imp.run_id)
    at = make_app("settings")
    assert not any("Learning curve" in json.dumps(c) for c in _charts(at))
    assert any("learning curve (accuracy against the number of operator labels) appears once 12" in c.value
               for c in at.caption)
    assert any("Confidence calibrated on built-in examples" in c.value and "until 20 operator labels exist"
               in c.value for c in at.caption)  # the default taxonomy: its examples calibrate it
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket))}
    for tid, r in zip(imp.ticket_ids, picked, strict=True):
        review.correct(db, tid, r["label"], actor=LEAD, expected_version=versions[tid], taxonomy=TAX)
    local.retrain(db, TAX, embedder, actor=LEAD)
    metrics = local.stored_metrics(db)
    assert metrics is not None
    stored = metrics["learning_curve"]
    assert stored["labels"] == 60 and [p["per_category"] for p in stored["points"]] == [0, 4, 8]

    def no_training(*a: Any, **k: Any) -> NoReturn:
        raise AssertionError("the page must read the stored curve, not train")

    monkeypatch.setattr(local, "learning_curve", no_training, raising=False)
    monkeypatch.setattr("triage.local.curve.learning_curve", no_training)
    at = make_app("settings")
    curve = next(c for c in _charts(at) if "Learning curve" in json.dumps(c))
    accuracy = next(t for t in curve["data"] if t["name"] == "Accuracy")
    assert accuracy["x"] == [0, 4, 8]
    assert accuracy["y"] == [p["accuracy"] for p in stored["points"]]
    table = next(d.value for d in at.dataframe if "labels per category" in d.value.columns)
    assert list(table["labels per category"]) == [0, 4, 8]
    assert any("on the 60 operator-labelled tickets" in c.value for c in at.caption)
    assert any("Confidence calibrated on operator labels: calibrated on your operators' labels" in c.value
               for c in at.caption)
    db.dispose()
