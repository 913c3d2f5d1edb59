import asyncio
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, select

from db.engine import Database
from db.models import AuditDraw, ModelCall, Ticket
from tests.support.actors import LEAD, op
from tests.support.fake_anthropic import FakeAnthropic
from triage import demo, review, taxonomy
from triage.domain import from_pico
from triage.local import tier as local
from triage.local.embedder import Embedder
from triage.settings import Settings
from triage.work import runs, services

TAX = taxonomy.default()


def test_tier0_answers_confident_tickets_for_free_in_front_of_haiku(
        db: Database, fake: FakeAnthropic, embedder: Embedder,
        samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    rows, _, _ = samples
    imp = runs.start_run(db, [(r["id"], r["text"]) for r in rows[:60]], source="t", actor=LEAD)
    services.classify_locally(db, run_id=imp.run_id)
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket))}
    for tid, r in zip(imp.ticket_ids[:40], rows[:40], strict=True):
        review.correct(db, tid, r["label"], actor=op("lead"), expected_version=versions[tid], taxonomy=TAX)
    local.retrain(db, TAX, embedder, actor=LEAD)
    local.save_tier0_config(db, actor=LEAD, enabled=True, target_accuracy=0.5, threshold=0.8, min_labels=30)
    new = runs.start_run(db, [(r["id"], r["text"]) for r in rows[150:200]], source="t2", actor=LEAD)
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url)
    report = asyncio.run(services.work_once(db, settings))
    assert report.processed == 50
    with db.read() as s:
        tier0 = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.run_id == new.run_id,
                                                                            ModelCall.tier == 0))
        tier1 = s.scalar(select(func.count()).select_from(ModelCall).where(ModelCall.run_id == new.run_id,
                                                                            ModelCall.tier == 1))
        free = s.scalar(select(func.count()).select_from(Ticket).where(Ticket.run_id == new.run_id,
                                                                        Ticket.label_source == "tier0"))
    assert (tier0, free, tier1) == (50, 42, 8)  # measured on rows 150-199 of the sample set
    assert len([r for r in fake.requests if "haiku" in r["body"]["model"]]) == tier1
    with db.read() as s:  # the tickets tier 0 was sure of (its 0.8 threshold) cost nothing; Haiku saw the others
        local_calls = s.scalars(select(ModelCall).where(ModelCall.run_id == new.run_id, ModelCall.tier == 0)).all()
        sent_on = set(s.scalars(select(ModelCall.ticket_id).where(ModelCall.run_id == new.run_id,
                                                                   ModelCall.tier == 1)))
        source = dict(s.execute(select(Ticket.id, Ticket.label_source).where(Ticket.run_id == new.run_id)).all())
    for c in local_calls:
        assert c.confidence is not None
        sure = c.confidence >= 0.8
        assert c.cost_pico == 0 and (source[c.ticket_id] == "tier0") == sure and (c.ticket_id in sent_on) != sure


def test_demo_fills_an_empty_database_once(db: Database) -> None:
    summary = demo.fill(db, TAX, actor=LEAD, settings=Settings())
    # every sample ticket, 226 with simulated API history and the other 89 answered locally (seed 7)
    assert {k: v for k, v in summary.items() if k != "audited"} == {"tickets": 315, "api_simulated": 226,
                                                                      "local": 89, "corrected": 35}
    # the blind audit, simulated: drawn at 15% of the settled tickets, most answered, and the estimate shows
    from triage.quality import unreviewed

    figures = unreviewed.figures(db)
    assert summary["audited"] > 10 and figures.overall.audited == summary["audited"]
    assert figures.overall.accuracy is not None and figures.waiting > 0  # some left for the Audit page
    with db.read() as s:
        probabilities = set(s.scalars(select(AuditDraw.probability).where(AuditDraw.drawn.is_(True))))
    assert probabilities == {demo.AUDIT_RATE}
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "pending")) == 0
        demo_calls = s.scalars(select(ModelCall).where(ModelCall.tier > 0)).all()
        assert all((c.request_id or "").startswith("demo_") for c in demo_calls)
    assert len(demo_calls) == 266  # a Haiku call for each of the 226, and Sonnet for the 40 Haiku was unsure of
    # the demo's cost (the Spend page's figure, from the daily rollups) is exactly what its calls cost
    assert demo.demo_cost(db) == from_pico(sum(c.cost_pico for c in demo_calls)) == Decimal("0.0738221")
    import pytest

    with pytest.raises(ValueError, match="already has tickets"):
        demo.fill(db, TAX, actor=LEAD, settings=Settings())
