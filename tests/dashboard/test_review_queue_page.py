"""Issue 27, items 1-3 (AppTest, per role with at.user): the review queue's list beside the open ticket. An operator
opens a ticket, picks a label, saves, and the next one opens; Undo takes the save back. A viewer gets no queue and
no save. Escalating a ticket Sonnet already decided names the price before anything is sent."""

import time

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.models import Correction, Ticket
from tests.dashboard.conftest import signed_in_app
from tests.dashboard.test_access import PAGE_FILE
from tests.dashboard.test_pages import open_ticket, pick_label, review_list, select_review_rows, texts
from tests.dashboard.test_review_guards import sonnet_requests
from tests.support.fake_anthropic import FakeAnthropic


def review_as(kind: str) -> AppTest:
    at = signed_in_app(kind)
    at.run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_operator_opens_a_ticket_picks_a_label_saves_and_the_next_one_opens(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = review_as("operator")
    assert list(review_list(at).index) == [ids["overloaded"], ids["weird one"], ids["login or refund?"]]
    open_ticket(at, ids["weird one"])
    assert any("weird one" in h.value for h in at.html)  # its full text (masked values highlighted), beside the list
    assert at.button(key="save_next").disabled  # nothing picked yet
    pick_label(at, "billing")
    assert review_list(at).loc[ids["weird one"], "label"] == "billing"  # the pick shows in the list before saving
    at.button(key="save_next").click().run()
    assert not at.exception and "Saved 1 ticket" in texts(at)
    with db.read() as s:
        c = s.scalars(select(Correction)).one()
        assert (c.ticket_id, c.previous_label, c.new_label, c.operator) == (ids["weird one"], "technical", "billing",
                                                                             "olga@ops.example.com")
    assert at.session_state["desk"]["focus"] == ids["login or refund?"]  # the next one not done yet is open
    assert review_list(at).loc[ids["weird one"], ""] == "✓"

    assert at.button(key="undo").label.endswith("Undo (1)")
    at.button(key="undo").click().run()
    assert "Undone: 1 ticket" in texts(at)
    with db.read() as s:
        assert s.get_one(Ticket, ids["weird one"]).category == "technical"
    assert at.session_state["desk"]["focus"] == ids["weird one"] and at.button(key="undo").disabled


def test_a_viewer_gets_no_queue_and_cannot_save(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = signed_in_app("viewer", entry=PAGE_FILE["review"])  # the page opened by URL
    at.run()
    assert not at.exception
    assert any("may not" in e.value for e in at.error)
    assert not at.get("dataframe") and not any(b.key in ("save_next", "bulk_apply", "confirm_selected")
                                               for b in at.button)
    with db.read() as s:
        assert not s.scalars(select(Correction)).all()


def test_asking_sonnet_again_names_the_price_first(seeded: tuple[Database, dict[str, int]], fake: FakeAnthropic,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = review_as("operator")
    select_review_rows(at, [2])  # Sonnet decided this one
    at.button(key="escalate_selected").click().run()
    assert "Sonnet already decided 1 of the 1 selected tickets" in texts(at) and "$0.002" in texts(at)
    assert at.button(key="again_others").disabled  # nothing else to send
    time.sleep(1)
    assert sonnet_requests(fake) == 0  # nothing sent before the choice
    with db.read() as s:
        assert not s.get_one(Ticket, ids["login or refund?"]).escalation_requested
    at.button(key="again_all").click().run()
    assert any("Sent 1 ticket to Sonnet again" in s.value for s in at.success)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sonnet_requests(fake):
        time.sleep(0.3)
    assert sonnet_requests(fake) == 1  # asked again, once confirmed


def test_an_operator_sets_a_priority_in_the_open_ticket_and_the_queue_filters_by_it(
        seeded: tuple[Database, dict[str, int]]) -> None:
    """The open ticket shows its priority, language and team; an operator sets the priority there (audited as a
    priority correction), and the Priority filter then finds the ticket (urgent first within the filters)."""
    from db.models import PriorityCorrection

    db, ids = seeded
    at = review_as("operator")
    open_ticket(at, ids["weird one"])
    assert any(c.value.startswith("Priority unknown") for c in at.caption)
    at.selectbox(key=f"priority_{ids['weird one']}").set_value("urgent").run()
    at.button(key=f"set_priority_{ids['weird one']}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with db.read() as s:
        got = s.scalars(select(PriorityCorrection)).one()
        assert (got.ticket_id, got.new_priority, got.operator) == (ids["weird one"], "urgent", "olga@ops.example.com")
        assert s.get_one(Ticket, ids["weird one"]).priority == "urgent"
    at.multiselect(key="f_priorities").set_value(["urgent"]).run()
    assert list(review_list(at).index) == [ids["weird one"]]


def test_the_open_tickets_ask_sonnet_again_names_the_price_first(seeded: tuple[Database, dict[str, int]],
                                                                 fake: FakeAnthropic,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The open ticket's own button: on a ticket Sonnet decided it reads "Ask Sonnet again…" and opens a
    confirmation naming the price; nothing is queued or sent before it, exactly one request after it."""
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = review_as("operator")
    open_ticket(at, ids["login or refund?"])  # Sonnet decided this one
    assert "Ask Sonnet again" in at.button(key="ask_sonnet").label
    at.button(key="ask_sonnet").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"Sonnet already decided ticket {ids['login or refund?']}" in texts(at) and "$0.002" in texts(at)
    assert at.button(key="panel_again_yes").label == "Ask again for about $0.002000"
    time.sleep(1)
    assert sonnet_requests(fake) == 0  # nothing sent on the first click
    with db.read() as s:
        assert not s.get_one(Ticket, ids["login or refund?"]).escalation_requested
    at.button(key="panel_again_no").click().run()  # Cancel: the box goes, nothing is sent
    assert not any(b.key == "panel_again_yes" for b in at.button) and sonnet_requests(fake) == 0

    at.button(key="ask_sonnet").click().run()
    at.button(key="panel_again_yes").click().run()
    assert any("Sent 1 ticket to Sonnet again" in s.value for s in at.success)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sonnet_requests(fake):
        time.sleep(0.3)
    time.sleep(1)
    assert sonnet_requests(fake) == 1  # asked again once, after the confirmation


def test_the_open_ticket_not_yet_decided_by_sonnet_is_asked_at_once(seeded: tuple[Database, dict[str, int]],
                                                                    fake: FakeAnthropic,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = review_as("operator")
    open_ticket(at, ids["overloaded"])  # Haiku failed: Sonnet never answered
    assert at.button(key="ask_sonnet").label.endswith("Ask Sonnet")
    at.button(key="ask_sonnet").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Sent 1 ticket to Sonnet" in s.value for s in at.success)
    assert not any(b.key == "panel_again_yes" for b in at.button)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sonnet_requests(fake):
        time.sleep(0.3)
    assert sonnet_requests(fake) == 1
