"""`triage alerts`: configure (the webhook read from stdin, never echoed), send a test alert to a real local
receiver, check and deliver now, list events and every attempt."""

from __future__ import annotations

import io
import json

import pytest

from db.engine import Database
from tests.support.receivers import WebhookReceiver
from tests.triage.alerts.conftest import add_tickets
from triage.cli import main


def test_configure_test_check_and_list(cli_db: Database, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    assert main(["alerts"]) == 0 and "no alerts yet" in capsys.readouterr().out
    assert main(["alerts", "--test"]) == 2  # nowhere to send it: said, exit 2
    assert "no channel is configured" in capsys.readouterr().err
    with WebhookReceiver(fail_first=1) as hook:
        monkeypatch.setattr("sys.stdin", io.StringIO(hook.url + "\n"))
        assert main(["alerts", "--set", "enabled=on", "webhook_url=-", "review_queue_over=5", "--show"]) == 0
        out, err = capsys.readouterr()
        assert "SECRETTOKEN" not in out + err and "channels: webhook" in err
        assert json.loads(out)["webhook_url"] == "http://127.0.0.1/…OKEN"
        assert main(["alerts", "--test"]) == 4  # the receiver failed it: a test is tried once
        assert "failed (HTTP 500)" in capsys.readouterr().err
        assert main(["alerts", "--test"]) == 0 and len(hook.accepted) == 1
        tid = add_tickets(cli_db, [{"priority": "urgent", "team": "Ops"}])[0]
        capsys.readouterr()
        assert main(["alerts", "--check"]) == 0
        assert "1 new alert(s)" in capsys.readouterr().err
        assert hook.keys()[-1] == f"urgent:{tid}#1"
        assert main(["alerts"]) == 0
        out = capsys.readouterr().out
        assert f"Urgent ticket #{tid}" in out and "webhook  sent" in out and "#1" in out and "failed 500" in out
        assert main(["alerts", "--json", "--limit", "1"]) == 0
        (event,) = json.loads(capsys.readouterr().out)
        assert event["key"] == f"urgent:{tid}#1" and event["deliveries"][0]["tries"][0]["ok"] is True


def test_a_bad_setting_is_refused_in_one_line(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--set", "webhook_url=ftp://example.com/x"]) == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert main(["alerts", "--set", "webhook_url=https://169.254.169.254/latest"]) == 2
    assert "link-local" in capsys.readouterr().err
    assert main(["alerts", "--set", "nonsense"]) == 2


def test_triage_worker_once_announces_what_is_there(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`triage worker --once` (with a key, against the fake API) runs the watch beside its pass and checks and sends
    once more as it ends."""
    from db.migrate import open_database
    from tests.support.actors import LEAD
    from triage.alerts import config

    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    db = open_database(env["TRIAGE_DATABASE_URL"])
    with WebhookReceiver() as hook:
        config.save(db, actor=LEAD, enabled=True, webhook_url=hook.url)
        tid = add_tickets(db, [{"priority": "urgent", "team": "Ops"}])[0]
        assert main(["worker", "--once"]) == 0
        assert hook.keys() == [f"urgent:{tid}#1"]
        assert main(["worker", "--once"]) == 0
        assert hook.keys() == [f"urgent:{tid}#1"]
    db.dispose()


def test_the_watch_thread_checks_and_sends_on_its_own(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from dashboard.worker import BackgroundWorker
    from tests.support.actors import LEAD
    from triage.alerts import config
    from triage.alerts.service import Watch

    assert isinstance(BackgroundWorker(db).alerts, Watch)  # the dashboard's worker carries one, started with it
    monkeypatch.setenv("TRIAGE_ALERT_PRIVATE_HOSTS", "1")
    with WebhookReceiver() as hook:
        config.save(db, actor=LEAD, enabled=True, webhook_url=hook.url)
        watch = Watch(db, check_every=0.2, deliver_every=0.2).start()
        try:
            tid = add_tickets(db, [{"priority": "urgent"}])[0]
            deadline = time.monotonic() + 30
            while not hook.accepted and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            watch.stop()
        assert hook.keys() == [f"urgent:{tid}#1"]
