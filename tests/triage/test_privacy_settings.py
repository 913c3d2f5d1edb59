"""The masking policy comes from the settings (issue 21, item 2 of the privacy branch: item 1 of its list): each
type switched on or off, the phone region, a lead's named patterns and the allow-list, from the environment or
saved by a lead (checked by `settings.checked`: a bad pattern is refused and nothing is saved), and every request
body is masked under the policy in force. End to end: the CLI over the real SDK to the fake API, a real SQLite."""

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent, Setting
from tests.support.actors import lead
from tests.support.fake_anthropic import FakeAnthropic
from triage import settings as config
from triage.cli import main
from triage.routing.redact import MaskPolicy, Pattern


def sent(fake: FakeAnthropic) -> str:
    return "\n".join(r["raw"].decode("utf-8") for r in fake.requests if r["raw"])


def classify(tmp_path: Path, text: str) -> int:
    src = tmp_path / "t.txt"
    src.write_text(text + "\n")
    return main(["classify", str(src), "--tier", "haiku", "--out", str(tmp_path / "o.jsonl")])


def test_a_type_a_lead_switched_off_reaches_the_api_unmasked_and_the_others_stay_masked(env: dict[str, str],
                                                                                        fake: FakeAnthropic,
                                                                                        db_url: str,
                                                                                        tmp_path: Path) -> None:
    assert main(["settings", "set", "mask_email", "off", "--operator", "maria"]) == 0
    assert classify(tmp_path, "refund my invoice, mail anna.smith@example.com, card 4111 1111 1111 1111") == 0
    body = sent(fake)
    assert "anna.smith@example.com" in body  # switched off: sent as written
    assert "4111 1111 1111 1111" not in body and "[CARD]" in body  # still on


def test_the_environment_switches_a_type_off(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_MASK_IP", "false")
    assert classify(tmp_path, "the app crashes from 192.168.1.20, mail anna.smith@example.com") == 0
    body = sent(fake)
    assert "192.168.1.20" in body and "anna.smith@example.com" not in body and "[EMAIL]" in body


def test_a_leads_pattern_masks_a_customer_number_and_the_allow_list_keeps_an_order_number(env: dict[str, str],
                                                                                          fake: FakeAnthropic,
                                                                                          tmp_path: Path) -> None:
    assert main(["settings", "set", "mask_patterns", '{"CUSTOMER": "CUST-\\\\d{8}"}']) == 0
    assert main(["settings", "set", "mask_allow", '["\\\\+1 415 555 2671"]']) == 0
    assert classify(tmp_path, "refund my invoice for CUST-12345678, call +1 415 555 2671 or +44 20 7946 0958") == 0
    body = sent(fake)
    assert "CUST-12345678" not in body and "[CUSTOMER]" in body
    assert "+1 415 555 2671" in body  # allow-listed: kept as it is
    assert "+44 20 7946 0958" not in body and "[PHONE]" in body


def test_the_phone_region_in_force_reads_national_numbers(env: dict[str, str], fake: FakeAnthropic, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_MASK_PHONE_REGION", "GB")
    assert classify(tmp_path, "please call me back on 020 7946 0958 about my login") == 0
    body = sent(fake)
    assert "020 7946 0958" not in body and "[PHONE]" in body


def test_a_bad_pattern_or_region_is_refused_with_exit_2_and_nothing_is_saved(
        cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    def stored() -> tuple[list[tuple[str, str]], list[str]]:
        with cli_db.read() as s:
            return ([(r.key, r.value) for r in s.scalars(select(Setting))],
                    [e.event for e in s.scalars(select(AuditEvent))])

    before = stored()
    for name, value in (("mask_patterns", '{"CUSTOMER": "CUST-(\\\\d"}'), ("mask_patterns", '{"card": "x"}'),
                        ("mask_patterns", '{"CARD": "x+"}'), ("mask_patterns", '{"EMPTY": "x*"}'),
                        ("mask_allow", '["("]'), ("mask_phone_region", "XX"), ("mask_card", "maybe"),
                        ("retention_days", "-1"), ("retention_days", "1.5")):
        assert main(["settings", "set", name, value]) == 2, (name, value)
        assert name in capsys.readouterr().err
    assert stored() == before


def test_a_bad_pattern_in_the_environment_refuses_the_run_before_any_call(env: dict[str, str], fake: FakeAnthropic,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_MASK_PATTERNS", '{"CUSTOMER": "CUST-(\\\\d"}')
    assert classify(tmp_path, "refund CUST-12345678") == 2
    assert "TRIAGE_MASK_PATTERNS" in capsys.readouterr().err
    assert not fake.requests  # fails closed: nothing went out


def test_triage_settings_lists_the_masking_settings_and_where_they_come_from(
        cli_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIAGE_MASK_PHONE_REGION", "DE")
    config.save_engine(cli_db, actor=lead("maria"), mask_card=False, mask_patterns={"CUSTOMER": r"CUST-\d{8}"})
    assert main(["settings", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mask_card"] == {"value": False, "source": "database", "env": "TRIAGE_MASK_CARD", "editable": True}
    assert shown["mask_email"]["value"] is True and shown["mask_email"]["source"] == "default"
    assert shown["mask_phone_region"] == {"value": "DE", "source": "environment", "env": "TRIAGE_MASK_PHONE_REGION",
                                          "editable": True}
    assert shown["mask_patterns"]["value"] == {"CUSTOMER": r"CUST-\d{8}"}
    assert shown["mask_allow"]["value"] == [] and shown["retention_days"]["value"] == 0
    assert main(["settings"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert lines["mask_patterns"].split() == ["mask_patterns", "*", "database", r"CUSTOMER=CUST-\d{8}"]
    merged = config.effective(cli_db)[0]
    assert merged.mask_policy == MaskPolicy(cards=False, phone_region="DE",
                                            patterns=(Pattern("CUSTOMER", r"CUST-\d{8}"),))
    with cli_db.read() as s:
        (event,) = s.scalars(select(AuditEvent)).all()
    assert json.loads(event.detail)["changed"]["mask_card"] == [True, False]
