"""Settings → Alerts under AppTest: a lead configures a webhook (never shown back in full), sends a test alert to a
real local receiver and sees every attempt; a bad address is refused; viewers and operators neither see nor change
the section (the page refuses them, the section shows itself to leads only, the services refuse them too)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.migrate import open_database
from db.models import AuditEvent
from tests.dashboard.conftest import signed_in_app
from tests.dashboard.test_access import PAGE_FILE, everything_shown
from tests.support.actors import LEAD, OPERATOR, VIEWER
from tests.support.receivers import WebhookReceiver
from triage.alerts import config
from triage.errors import AccessDenied


def settings_page(kind: str = "lead") -> AppTest:
    at = signed_in_app(kind)
    at.run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def save(at: AppTest) -> None:
    next(b for b in at.button if b.label == "Save alerts").click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_lead_sets_a_webhook_sends_a_test_and_never_sees_the_address_again(app_env: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    with WebhookReceiver() as hook:
        at = settings_page()
        assert "Alerts" in [h.value for h in at.subheader]
        assert at.button(key="alerts_test").disabled  # nowhere to send yet
        at.toggle(key="alerts_enabled").set_value(True)
        at.text_input(key="alerts_webhook").input(hook.url)
        at.number_input(key="alerts_queue").set_value(50)
        save(at)
        assert any("Saved alerts" in s.value for s in at.success)
        at.run()
        assert "SECRETTOKEN" not in everything_shown(at) and "SECRETTOKEN" not in str(at.text_input(
            key="alerts_webhook").value)
        assert "http://127.0.0.1/…OKEN" in at.text_input(key="alerts_webhook").label
        at.button(key="alerts_test").click().run()
        assert any("Test alert by webhook: delivered" in s.value for s in at.success)
        assert len(hook.accepted) == 1 and "Test alert" in hook.accepted[0].body["text"]
        table = next(d.value for d in at.dataframe if "alert" in d.value.columns)
        assert table.iloc[0]["kind"] == "test" and table.iloc[0]["delivery"] == "webhook sent (1)"
        save(at)  # saved again with the field left empty: the address is kept
    db = open_database(app_env)
    cfg = config.load(db)
    assert cfg.webhook_url == hook.url and cfg.enabled and cfg.review_queue_over == 50
    with db.read() as s:
        audited = " ".join(s.scalars(select(AuditEvent.detail).where(AuditEvent.event == "settings.alerts")))
    assert "webhook_url" in audited and "SECRETTOKEN" not in audited and '"set"' in audited
    db.dispose()


def test_a_bad_address_is_refused_and_nothing_is_saved(app_env: str) -> None:
    at = settings_page()
    at.text_input(key="alerts_webhook").input("http://169.254.169.254/latest/meta-data")
    save(at)
    assert any("link-local" in e.value for e in at.error)
    at.text_input(key="alerts_webhook").input("https://10.0.0.5/hook")
    save(at)
    assert any("private address" in e.value for e in at.error)
    db = open_database(app_env)
    assert config.load(db).webhook_url == ""
    db.dispose()


@pytest.mark.parametrize("kind", ["viewer", "operator"])
def test_viewers_and_operators_neither_see_nor_change_alerts(app_env: str, kind: str) -> None:
    direct = signed_in_app(kind, entry=PAGE_FILE["settings"])  # the page opened by URL
    direct.run()
    assert not direct.exception
    assert "Alerts" not in [h.value for h in direct.subheader]
    assert not [w for w in (*direct.text_input, *direct.toggle, *direct.button) if str(w.key).startswith("alerts_")]
    assert any("may not" in e.value for e in direct.error)
    db = open_database(app_env)
    who = {"viewer": VIEWER, "operator": OPERATOR}[kind]
    attempt: Callable[[], object]
    for attempt in (lambda: config.save(db, actor=who, webhook_url="https://hooks.example.com/x"),
                    lambda: config.read(db, actor=who)):
        with pytest.raises(AccessDenied):
            attempt()
    assert config.read(db, actor=LEAD).webhook_url == ""
    db.dispose()


def test_the_section_shows_nothing_to_anyone_but_a_lead(app_env: str) -> None:
    """Called on its own (as a page might by mistake) with an operator: it renders nothing."""
    from streamlit.testing.v1 import AppTest

    def script() -> None:
        from dashboard.sections import alerts as section
        from db.migrate import open_database as opened
        from tests.support.actors import OPERATOR as who
        from triage import taxonomy

        section.settings_form(opened(), taxonomy.default(), who)

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception and not at.subheader and not at.button
