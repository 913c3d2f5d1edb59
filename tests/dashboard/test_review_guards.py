"""Issue 27, item 4 in the review queue (AppTest; the background worker asks the fake API server over HTTP):
escalating tickets Sonnet already decided names the price and asks first; an escalation says so after the rerun
and its rows update without Reload (a label picked meanwhile stays); the name is asked before the first correction."""

import time

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import open_ticket, pick_label, review_list, select_review_rows, texts
from tests.support.fake_anthropic import FakeAnthropic


def sonnet_requests(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if "sonnet" in str(r["body"].get("model", "")))


def test_escalating_a_sonnet_decided_ticket_asks_first_and_the_row_updates_live(
        seeded: tuple[Database, dict[str, int]], fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = make_app("review")
    frame = review_list(at)
    assert list(frame.index) == [ids["overloaded"], ids["weird one"], ids["login or refund?"]]
    select_review_rows(at, [0, 2])  # failed, and one Sonnet decided
    assert "2 selected" in texts(at)
    at.button(key="escalate_selected").click().run()
    assert not at.exception
    assert "Sonnet already decided 1 of the 2 selected tickets" in texts(at) and "$0.002" in texts(at)
    assert at.button(key="again_all").label == "Ask about all 2, about $0.002000 more"
    with db.read() as s:  # nothing queued before the operator picks
        assert not any(s.scalars(select(Ticket.escalation_requested)).all())
    time.sleep(1)
    assert sonnet_requests(fake) == 0

    at.button(key="again_others").click().run()
    assert not at.exception
    assert any("Sent 1 ticket to Sonnet" in s.value for s in at.success)  # the message survived the rerun
    assert review_list(at).loc[ids["overloaded"], "status"] == "pending"
    assert "waiting on Sonnet" in texts(at)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and review_list(at).loc[ids["overloaded"], "status"] == "pending":
        time.sleep(0.3)
        at.run()  # (what the page's one-second fragment asks for in a browser)
    row = review_list(at).loc[ids["overloaded"]]
    assert row["status"] != "pending" and row["machine label"].endswith("(Sonnet)")  # no Reload pressed
    assert sonnet_requests(fake) == 1  # only the ticket Sonnet had not decided
    with db.read() as s:
        assert not s.get_one(Ticket, ids["login or refund?"]).escalation_requested


def test_a_picked_label_survives_a_live_update(seeded: tuple[Database, dict[str, int]], fake: FakeAnthropic,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = make_app("review")
    select_review_rows(at, [0])
    at.button(key="escalate_selected").click().run()
    open_ticket(at, ids["weird one"])  # the operator goes on labelling while Sonnet works
    pick_label(at, "billing")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and review_list(at).loc[ids["overloaded"], "status"] == "pending":
        time.sleep(0.3)
        at.run()
    assert review_list(at).loc[ids["overloaded"], "status"] != "pending"
    assert review_list(at).loc[ids["weird one"], "label"] == "billing"  # the pick is still there
    assert at.button(key="pick_0").proto.type == "primary" and not at.button(key="save_next").disabled
    at.button(key="save_next").click().run()
    with db.read() as s:
        assert s.get_one(Ticket, ids["weird one"]).category == "billing"


def test_the_name_is_asked_before_the_first_correction(seeded: tuple[Database, dict[str, int]]) -> None:
    at = make_app("review", operator=None)
    assert "stamped on your corrections" in at.text_input(key="operator_name_first").label
    pick_label(at, "billing")
    assert at.button(key="save_next").disabled  # asked before, not in a warning after the click
    at.text_input(key="operator_name_first").set_value("maria").run()
    assert not at.button(key="save_next").disabled and at.session_state["operator_name"] == "maria"


def test_bulk_labels_wait_for_the_name_too(seeded: tuple[Database, dict[str, int]]) -> None:
    at = make_app("review", operator=None)
    select_review_rows(at, [0, 1])
    assert at.button(key="bulk_apply").disabled and at.button(key="confirm_selected").disabled  # asked before
    at.text_input(key="operator_name_first").set_value("maria").run()
    assert not at.button(key="bulk_apply").disabled and not at.button(key="confirm_selected").disabled
