"""Alerts against a real local webhook receiver (http.server) and a real local SMTP server: once per event, retried
with backoff when the receiver fails, every attempt logged, never a network call inside a write transaction, and
no ticket text unless the lead allows it (then masked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import AlertAttempt, AlertDelivery, AlertEvent
from tests.support.actors import LEAD, OPERATOR, VIEWER
from tests.support.receivers import SmtpReceiver, WebhookReceiver
from tests.triage.alerts.conftest import add_tickets
from triage.alerts import channels, config, service
from triage.errors import AccessDenied, InputError

SECRET_TEXT = "Our payroll server is down, call me on +1 415 555 0100 or mail ana.lopez@example.com now"


def urgent_ticket(db: Database, **kw: Any) -> int:
    return add_tickets(db, [{"text": SECRET_TEXT, "category": "technical", "priority": "urgent", "team": "Ops",
                             **kw}])[0]


def turn_on(db: Database, **values: Any) -> config.AlertConfig:
    return config.save(db, actor=LEAD, enabled=True, now=datetime.now(UTC) - timedelta(minutes=5), **values)


def test_an_urgent_ticket_reaches_the_webhook_exactly_once_without_its_text(db: Database, private_hosts: None) -> None:
    with WebhookReceiver() as hook:
        turn_on(db, webhook_url=hook.url)
        tid = urgent_ticket(db)
        for _ in range(3):  # checks and deliveries again and again: one event, one post
            service.check_now(db)
            service.deliver_now(db)
        assert hook.keys() == [f"urgent:{tid}#1"]
        text = hook.accepted[0].body["text"]
        assert f"#{tid}" in text and "technical" in text and "Ops" in text
        assert "payroll" not in text and "ana.lopez" not in text and "415" not in text
        assert set(hook.accepted[0].body) == {"text"}  # Slack- and Teams-compatible: a text field
        assert hook.accepted[0].path == "/services/T000/B000/SECRETTOKEN"


def test_a_receiver_that_fails_twice_gets_it_on_the_third_attempt_with_backoff(db: Database,
                                                                               private_hosts: None) -> None:
    with WebhookReceiver(fail_first=2) as hook:
        turn_on(db, webhook_url=hook.url)
        tid = urgent_ticket(db)
        t0 = datetime.now(UTC)
        service.check_now(db, now=t0)
        first = service.deliver_now(db, now=t0)
        assert [(d.ok, d.status, d.gave_up) for d in first] == [(False, 500, False)]
        assert service.deliver_now(db, now=t0 + timedelta(seconds=10)) == []  # backing off: not due yet
        second = service.deliver_now(db, now=t0 + timedelta(seconds=31))
        assert [(d.ok, d.number) for d in second] == [(False, 2)]
        assert service.deliver_now(db, now=t0 + timedelta(seconds=80)) == []  # 60 s after the second
        third = service.deliver_now(db, now=t0 + timedelta(seconds=92))
        assert [(d.ok, d.number, d.status) for d in third] == [(True, 3, 200)]
        assert service.deliver_now(db, now=t0 + timedelta(hours=1)) == []
        assert hook.keys() == [f"urgent:{tid}#1"] and len(hook.refused) == 2
    with db.read() as s:
        attempts = s.execute(select(AlertAttempt.number, AlertAttempt.ok, AlertAttempt.status)
                             .order_by(AlertAttempt.id)).all()
        assert [tuple(a) for a in attempts] == [(1, False, 500), (2, False, 500), (3, True, 200)]
        assert s.scalar(select(AlertDelivery.state)) == "sent"
        logged = " ".join(str(e) for e in s.scalars(select(AlertAttempt.error)))
        assert "SECRETTOKEN" not in logged and "127.0.0.1" not in logged
    shown = service.recent(db, actor=LEAD)
    assert [t["ok"] for t in shown[0]["deliveries"][0]["tries"]] == [False, False, True]


def test_a_refusal_is_not_retried_and_a_lasting_failure_gives_up(db: Database, private_hosts: None) -> None:
    with WebhookReceiver(fail_first=99, fail_status=404) as hook:
        turn_on(db, webhook_url=hook.url)
        urgent_ticket(db)
        service.check_now(db)
        done = service.deliver_now(db)
        assert [(d.ok, d.status, d.gave_up) for d in done] == [(False, 404, True)]
        assert service.deliver_now(db, now=datetime.now(UTC) + timedelta(hours=2)) == []
        hook.fail_status = 503
        urgent_ticket(db)
        service.check_now(db)
        t = datetime.now(UTC)
        tries = []
        for _ in range(10):
            tries += service.deliver_now(db, now=t)
            t += timedelta(hours=1)
        assert [d.number for d in tries] == [1, 2, 3, 4, 5, 6] and tries[-1].gave_up  # MAX_ATTEMPTS, then no more


def test_ticket_text_only_when_the_lead_allows_it_and_then_masked(db: Database, private_hosts: None) -> None:
    with WebhookReceiver() as hook:
        turn_on(db, webhook_url=hook.url, include_text=True)
        urgent_ticket(db)
        service.check_now(db)
        service.deliver_now(db)
        text = hook.accepted[0].body["text"]
        assert "payroll server is down" in text  # the masked text ...
        assert "ana.lopez@example.com" not in text and "555 0100" not in text and "[EMAIL]" in text  # ... masked
        with db.read() as s:  # and the outbox never stored it
            assert "payroll" not in " ".join(f"{e.title} {e.facts}" for e in s.scalars(select(AlertEvent)))


def test_no_network_call_inside_a_write_transaction(db: Database, private_hosts: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    held = []
    real = channels.post_webhook

    def spy(*args: Any, **kw: Any) -> int:
        assert db._write_lock is not None  # SQLite: held for the whole of every write transaction
        held.append(db._write_lock.locked())
        return real(*args, **kw)

    monkeypatch.setattr(channels, "post_webhook", spy)
    with WebhookReceiver(fail_first=1) as hook:
        turn_on(db, webhook_url=hook.url)
        urgent_ticket(db)
        service.check_now(db)
        service.deliver_now(db)
        service.deliver_now(db, now=datetime.now(UTC) + timedelta(minutes=1))
        assert held == [False, False] and len(hook.accepted) == 1


def test_email_over_smtp_once_after_a_temporary_failure(db: Database) -> None:
    with SmtpReceiver(fail_first=1) as smtp:
        turn_on(db, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, smtp_from="triage@example.com",
                email_to="lead@example.com, oncall@example.com")
        tid = urgent_ticket(db)
        service.check_now(db)
        assert [(d.channel, d.ok, d.status) for d in service.deliver_now(db)] == [("email", False, 451)]
        later = service.deliver_now(db, now=datetime.now(UTC) + timedelta(minutes=1))
        assert [(d.channel, d.ok) for d in later] == [("email", True)]
        assert len(smtp.messages) == 1
        msg = smtp.messages[0]
        assert msg["Subject"].startswith(f"[Triage] Urgent ticket #{tid}")
        assert msg["X-Triage-Alert"] == f"urgent:{tid}#1"
        assert smtp.recipients == [["lead@example.com", "oncall@example.com"]]
        assert "payroll" not in msg.get_payload()


def test_both_channels_each_get_it_once(db: Database, private_hosts: None) -> None:
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        turn_on(db, webhook_url=hook.url, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False,
                smtp_from="triage@example.com", email_to="lead@example.com")
        urgent_ticket(db)
        for _ in range(2):
            service.check_now(db)
            service.deliver_now(db)
        assert len(hook.accepted) == 1 and len(smtp.messages) == 1


def test_the_test_alert_is_a_leads_and_is_logged(db: Database, private_hosts: None) -> None:
    with pytest.raises(InputError, match="no channel"):
        service.send_test(db, actor=LEAD)
    with WebhookReceiver() as hook:
        config.save(db, actor=LEAD, webhook_url=hook.url)  # alerts still off: a test goes anyway
        for who in (OPERATOR, VIEWER):
            with pytest.raises(AccessDenied):
                service.send_test(db, actor=who)
        done = service.send_test(db, actor=LEAD)
        assert [(d.channel, d.ok) for d in done] == [("webhook", True)]
        assert "Test alert" in hook.accepted[0].body["text"]
        assert service.check_now(db).new == []  # off: nothing is noticed
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(AlertAttempt)) == 1


def test_slack_mentions_and_links_in_text_are_escaped(db: Database, private_hosts: None) -> None:
    with WebhookReceiver() as hook:
        turn_on(db, webhook_url=hook.url, include_text=True)
        urgent_ticket(db, text="<!channel> server down <http://evil.example|click> & more")
        service.check_now(db)
        service.deliver_now(db)
        text = hook.accepted[0].body["text"]
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp; more" in text


def test_the_webhook_host_is_checked_again_when_sending(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved while private hosts were allowed, sent after they no longer are: refused, never posted."""
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    with WebhookReceiver() as hook:
        turn_on(db, webhook_url=hook.url)
        urgent_ticket(db)
        service.check_now(db)
        monkeypatch.delenv("TRIAGE_ALERT_PRIVATE_HOSTS")
        done = service.deliver_now(db)
        assert [(d.ok, d.gave_up) for d in done] == [(False, True)] and not hook.accepted
        assert "SECRETTOKEN" not in (done[0].error or "")
