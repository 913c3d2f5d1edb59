"""Issue 27, item 7 (AppTest): a model's accuracy on the Quality page rests on how many labels it shows, and one on
a handful is drawn small, as the range it allows; the local model's figure there and in Settings carry different
names, each saying why they differ."""

import asyncio
from collections.abc import Iterator

import pytest

from db import settings
from db.engine import Database
from db.migrate import open_database
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import texts
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider
from triage import review, taxonomy
from triage.local import tier as local
from triage.quality import tiles
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()


@pytest.fixture
def labelled(app_env: str) -> Iterator[Database]:
    """35 tickets Haiku answered, 4 of them unsure and decided by Sonnet; every one labelled by an operator."""
    db = open_database(app_env)
    router = Router(ScriptedProvider(1, "claude-haiku-5-5",
                                     fn=lambda t: ("billing", 0.4 if t.startswith("unsure") else 0.95)),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("account", 0.9)), TAX)
    texts_ = [f"sure {i}: refund me" for i in range(31)] + [f"unsure {i}: login?" for i in range(4)]
    imp = runs.start_run(db, [(None, t) for t in texts_], source="seed", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    with db.read() as s:
        from db.models import Ticket
        versions = {t.id: t.version for t in s.query(Ticket)}
    review.correct_many(db, [(tid, "billing" if i < 31 else "account", versions[tid])
                             for i, tid in enumerate(imp.ticket_ids)], actor=LEAD, taxonomy=TAX)
    yield db
    db.dispose()


def test_a_tile_on_few_labels_says_so_and_is_drawn_small(labelled: Database) -> None:
    at = make_app("quality")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Haiku: answers right"] == "89%"  # 31 of 35: a figure worth its size
    assert "Sonnet: answers right" not in metrics  # 4 labels: not a big number
    small = [md.value for md in at.markdown if md.value.startswith("Sonnet: answers right")]
    assert small == ["Sonnet: answers right  \n:gray[**100%**?]"]
    assert "only 4 labels: too few to judge; somewhere between" in texts(at)
    assert "35 labels; 90% interval" in texts(at)


def test_the_local_models_two_accuracies_have_two_names_each_saying_why(app_env: str) -> None:
    db = open_database(app_env)
    with db.transaction() as s:  # what a training stored (the Settings page reads only this)
        settings.put(s, local.SETTING, {"head": {"metrics": {
            "n_train": 120, "labels": {"operator": 40}, "human_accuracy": 0.78, "human_ece": 0.05,
            "oof_ece": 0.05, "trained_at": "2026-12-01 10:00"}}}, operator="test")
    at = make_app("settings")
    tile = next(m for m in at.metric if m.value == "78%")
    assert tile.label == "Retrained, out-of-fold" and tile.help == tiles.RETRAINED_OUT_OF_FOLD
    assert "Quality page" in tile.help and "Settings" in tiles.ANSWERS_GIVEN
    db.dispose()
