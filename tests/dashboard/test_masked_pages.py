"""Operators see what was masked (issue 21, item 2): the ticket detail and the Classify cards show the text with
its masked values highlighted and counted, the text escaped (a hostile ticket injects no HTML or markdown); the
review queue filters on tickets with masked values; a lead stores only masked text, erases by requester and
exports masked text from the Settings page."""

import json

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.models import AuditEvent, Ticket
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import open_ticket, review_list
from tests.support.actors import LEAD
from triage import settings as config
from triage.work import runs

EMAIL = "anna.k@example.com"
HOSTILE = f'<img src=x onerror="alert(1)"> **bold** [x](javascript:alert(2)) write to {EMAIL} or +44 20 7946 0958'


def masked_blocks(at: AppTest) -> list[str]:
    return [h.value for h in at.html if "triage-masked" in h.value]


def test_the_ticket_detail_highlights_masked_values_and_escapes_the_text(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    (tid,) = runs.start_run(db, [(None, HOSTILE)], source="t", actor=LEAD, mode="local").ticket_ids
    at = make_app("review")
    at.multiselect(key="f_reasons").set_value([]).run()  # every ticket
    open_ticket(at, tid)
    assert not at.exception
    (block,) = masked_blocks(at)
    assert block.count("<mark") == 2 and f">{EMAIL}</mark>" in block and ">+44 20 7946 0958</mark>" in block
    assert "<img" not in block and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in block
    assert "**bold** [x](javascript:alert(2))" in block  # markdown shows as typed (st.html has no markdown pass)
    assert any("2 values masked before Claude saw it" in c.value for c in at.caption)


def test_the_review_queue_filters_on_tickets_with_masked_values(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    (tid,) = runs.start_run(db, [(None, f"refund to {EMAIL}")], source="t", actor=LEAD, mode="local").ticket_ids
    at = make_app("review")
    at.multiselect(key="f_reasons").set_value([]).run()  # every ticket
    assert tid in list(review_list(at).index) and len(review_list(at)) > 1
    at.checkbox(key="f_masked").check().run()
    assert not at.exception
    assert list(review_list(at).index) == [tid]


def test_the_classify_cards_highlight_masked_values(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    imported = runs.start_run(db, [(None, HOSTILE), (None, "nothing personal here")], source="t", actor=LEAD,
                              mode="local")
    at = make_app()
    at.session_state["run_id"] = imported.run_id
    at.switch_page("app_pages/classify.py").run()
    assert not at.exception, [e.value for e in at.exception]
    blocks = masked_blocks(at)
    assert len(blocks) == 2 and sum(b.count("<mark") for b in blocks) == 2
    assert all("<img" not in b for b in blocks)
    assert any("2 values masked before Claude saw it" in c.value for c in at.caption)


def test_a_bad_policy_in_force_says_so_instead_of_claiming_nothing_was_masked(
        seeded: tuple[Database, dict[str, int]]) -> None:
    from db import settings as db_settings

    db, ids = seeded
    with db.transaction() as s:  # a stored value no check let through (saving refuses it): the policy cannot be built
        db_settings.put(s, "engine", {"mask_phone_region": "XX"}, operator="test")
    at = make_app("review")
    at.multiselect(key="f_reasons").set_value([]).run()  # every ticket
    open_ticket(at, ids["charged twice"])
    assert not at.exception and not masked_blocks(at)
    assert any("masking policy in force is refused" in w.value for w in at.warning)
    assert any(t.value == "charged twice" for t in at.text)


def test_a_lead_stores_masked_text_erases_a_requester_and_exports_masked_text(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    at.toggle(key="privacy_mask_store").set_value(True)
    next(b for b in at.button if b.label == "Save personal data").click().run()
    assert config.effective(db)[0].mask_store is True, [e.value for e in at.error]
    imported = runs.start_run(db, [("R-1", f"refund to {EMAIL}")], source="t", actor=LEAD, mode="local",
                              requesters=["Anna@Example.com"])
    with db.transaction() as s:
        ticket = s.get_one(Ticket, imported.ticket_ids[0])
        assert ticket.text == "refund to [EMAIL]"
        ticket.status = "needs_review"  # classified: a pending ticket is not erased (its text may be on its way)

    at.text_input(key="erase_requester").set_value(" anna@example.com")
    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("would erase 1 ticket(s)" in m.value for m in at.info), [e.value for e in at.error]
    at.checkbox(key="erase_sure").check()
    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("erased 1 ticket(s)" in m.value for m in at.success), [e.value for e in at.error]
    with db.read() as s:
        assert s.get_one(Ticket, imported.ticket_ids[0]).text == ""
        event = s.scalars(select(AuditEvent).where(AuditEvent.event == "privacy.erase_requester")).one()
    assert event.actor == "alice" and "anna" not in event.detail.lower()
    assert json.loads(event.detail)["tickets"] == 1

    at.checkbox(key="export_masked").check()
    at.button(key="prepare_export").click().run()
    assert not at.exception
    data, name = at.session_state["export_data"]
    assert name.endswith(".csv") and data.startswith(b"ticket_id,")
    with db.read() as s:
        exported = s.scalars(select(AuditEvent).where(AuditEvent.event == "export.tickets")).one()
    assert json.loads(exported.detail)["masked"] is True
