"""The Audit page, blind: an operator sees a drawn ticket's text and the categories, never the model's label or
confidence; the answer is saved as an audit label and the Quality page's unreviewed figure moves."""

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db import audit_sample
from db.engine import Database
from db.migrate import open_database
from db.models import AuditDraw, Ticket
from tests.dashboard.conftest import TAX, make_app, name_asked_first, signed_in_app
from tests.dashboard.test_access import everything_shown
from tests.support.actors import LEAD
from tests.support.fakes import ScriptedProvider
from triage.routing.router import Router
from triage.work import pipeline, runs

# Haiku is sure of both, and wrong about the first; the texts name no category
ANSWERS = {"the thing stopped doing the thing yesterday": ("product_feedback", 0.87),
           "please look at what happened on my side": ("account", 0.93)}


@pytest.fixture
def drawn(app_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, dict[str, int]]]:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")
    db = open_database(app_env)
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: ANSWERS[t]), None, TAX)
    imp = runs.start_run(db, [(None, t) for t in ANSWERS], source="seed", actor=LEAD, mode="haiku")
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    yield db, dict(zip(ANSWERS, imp.ticket_ids, strict=True))
    audit_sample.seed(None)
    db.dispose()


def blind(at: AppTest, model_label: str) -> None:
    """Nothing on the page gives the model's answer away: not its label (outside the neutral list of choices,
    none picked), not its confidence."""
    shown = everything_shown(at)
    assert model_label not in shown
    assert "0.87" not in shown and "87%" not in shown and "0.93" not in shown and "93%" not in shown
    radio = at.radio[0]
    assert radio.value is None and list(radio.options) == TAX.names


def test_an_operator_answers_blind_and_the_figure_moves(drawn: tuple[Database, dict[str, int]]) -> None:
    db, ids = drawn
    at = make_app("audit")
    assert at.title[0].value == "Audit"
    first = next(iter(ANSWERS))
    assert [t.value for t in at.text] == [first]  # oldest drawn first, as plain text
    blind(at, "product_feedback")
    at.radio[0].set_value("technical")
    at.button[0].click().run()  # the form's Save answer
    assert not at.exception, [e.value for e in at.exception]
    assert "Saved" in " ".join(s.value for s in at.success)
    second = list(ANSWERS)[1]
    assert [t.value for t in at.text] == [second]
    blind(at, "account")
    at.radio[0].set_value("account")
    at.button[0].click().run()
    assert "No drawn tickets await an answer" in " ".join(i.value for i in at.info)
    with db.read() as s:
        rows = {r.ticket_id: r for r in s.scalars(select(AuditDraw))}
        assert rows[ids[first]].answer == "technical" and rows[ids[first]].answered_by == "alice"
        assert s.get_one(Ticket, ids[first]).category == "technical"  # an operator label now
        assert s.get_one(Ticket, ids[first]).label_source == "operator"
    # one right of two: the Quality page shows it as the unreviewed traffic's, apart from review labels
    at.switch_page("app_pages/quality.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["all unreviewed traffic: right"] == "50%"
    assert "Blind audit of the traffic nobody reviewed: 2 tickets" in " ".join(c.value for c in at.caption)
    assert "Measured on review labels" in [h.value for h in at.subheader]


def test_a_viewer_cannot_open_the_audit_page(drawn: tuple[Database, dict[str, int]]) -> None:
    at = signed_in_app("viewer")
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/audit.py")
    assert not any(t in everything_shown(at) for t in ANSWERS)


def test_a_lead_applies_a_threshold_from_the_trade_off_in_one_click(seeded: tuple[Database, dict[str, int]]) -> None:
    from db.models import AuditEvent
    from tests.support.actors import op
    from triage import review
    from triage import settings as config

    db, ids = seeded
    for text in ("charged twice", "login or refund?"):
        with db.read() as s:
            t = s.get_one(Ticket, ids[text])
        review.correct(db, t.id, "billing", actor=op("alice"), expected_version=t.version, taxonomy=TAX)
    at = make_app("quality")
    table = at.get("arrow_data_frame") or at.dataframe
    assert at.selectbox(key="tradeoff_pick") is not None and table
    at.selectbox(key="tradeoff_pick").set_value(0.5).run()
    at.button(key="apply_choice").click().run()
    assert not at.exception
    assert "Threshold set to 0.50 (was 0.70) by alice" in " ".join(s.value for s in at.success)
    assert config.effective(db)[0].threshold == 0.5
    with db.read() as s:
        why = s.scalars(select(AuditEvent.detail).where(AuditEvent.event == "settings.engine")).one()
    assert "chosen from the trade-off" in why and "to review" in why


def test_the_name_is_asked_before_the_first_audit_answer(drawn: tuple[Database, dict[str, int]]) -> None:
    name_asked_first("audit", "audit answers")
