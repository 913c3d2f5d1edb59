"""The Settings page shows the masking policy in force and lets a lead switch each type (audited)."""

import json

from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent
from tests.dashboard.conftest import make_app
from triage import settings as config


def test_settings_shows_the_policy_in_force_and_a_lead_switches_a_type_off(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    shown = " ".join(c.value for c in at.caption)
    assert "e-mail on" in shown and "phone region US" in shown and "retention off" in shown
    at.toggle(key="privacy_mask_email").set_value(False)
    next(b for b in at.button if b.label == "Save personal data").click().run()
    assert not at.exception and any("Saved" in m.value for m in at.success), [e.value for e in at.error]
    merged = config.effective(db)[0]
    assert merged.mask_email is False and merged.mask_policy.emails is False and merged.mask_policy.cards is True
    with db.read() as s:
        events = [json.loads(e.detail) for e in s.scalars(select(AuditEvent).where(
            AuditEvent.event == "settings.engine"))]
    assert events[-1]["changed"] == {"mask_email": [True, False]}
    assert "e-mail OFF" in " ".join(c.value for c in make_app("settings").caption)


def test_a_bad_region_on_the_page_is_refused_and_nothing_is_saved(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    next(t for t in at.text_input if t.label.startswith("Phone region")).set_value("XX")
    next(b for b in at.button if b.label == "Save personal data").click().run()
    assert any("mask_phone_region" in e.value for e in at.error)
    assert config.effective(db)[0].mask_phone_region == "US"


def test_a_lead_erases_a_ticket_from_the_settings_page(seeded: tuple[Database, dict[str, int]]) -> None:
    from db.models import Ticket

    db, ids = seeded
    tid = ids["charged twice"]
    at = make_app("settings")
    at.text_input(key="erase_ids").set_value(f"{tid}")
    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("would erase 1 ticket(s)" in m.value for m in at.info), [e.value for e in at.error]
    with db.read() as s:
        assert s.get_one(Ticket, tid).text == "charged twice"  # unticked: nothing changed
    at.checkbox(key="erase_sure").check()
    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("erased 1 ticket(s)" in m.value for m in at.success), [e.value for e in at.error]
    with db.read() as s:
        t = s.get_one(Ticket, tid)
        assert t.text == "" and t.category == "billing"
        assert s.scalars(select(AuditEvent).where(AuditEvent.event == "privacy.erase")).one().actor == "alice"
    at.text_input(key="erase_ids").set_value("12a")
    next(b for b in at.button if b.label == "Erase").click().run()
    assert any("not a ticket id: 12a" in e.value for e in at.error)
