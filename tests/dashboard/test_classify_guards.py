"""Issue 27, item 4 on the Classify page (AppTest, the real SDK against the fake API server): asking Sonnet again
about a ticket it decided takes a confirmation that names the price, and no request leaves before it; the
Classify button is never disabled (a paste is applied by the click itself); the name is asked first."""

import time

import pytest
from sqlalchemy import select

from db.migrate import open_database
from db.models import ModelCall
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import classify_and_wait, texts
from tests.support.fake_anthropic import FakeAnthropic
from triage.domain import from_pico
from triage.work import runs


def sonnet_requests(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if "sonnet" in str(r["body"].get("model", "")))


def test_asking_sonnet_again_needs_a_confirmation_naming_the_price(app_env: str, fake: FakeAnthropic,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    db = open_database(app_env)
    at = classify_and_wait(make_app(), "refund my invoice, and my login broke [[conf=0.4]]",
                           lambda at: "1 of 1 done" in " ".join(str(p.proto.text) for p in at.get("progress")))
    [tid] = runs.run_ticket_ids(db, 1)
    assert sonnet_requests(fake) == 1  # Haiku was unsure: Sonnet decided it
    with db.read() as s:
        cost = from_pico(s.scalars(select(ModelCall.cost_pico).where(ModelCall.tier == 2)).one())

    button = at.button(key=f"esc-{tid}")
    assert button.label == "Ask again…" and not button.disabled
    button.click().run()
    assert "Sonnet already decided ticket" in texts(at) and f"{float(cost):.6f}" in texts(at)
    yes = at.button(key=f"again-yes-{tid}")
    assert f"${float(cost):.6f}" in yes.label  # the price is on the button that spends it
    time.sleep(1.5)
    assert sonnet_requests(fake) == 1  # nothing was asked before the confirmation
    at.button(key=f"again-no-{tid}").click().run()  # cancel: the question goes away, still nothing asked
    assert "Sonnet already decided ticket" not in texts(at) and sonnet_requests(fake) == 1

    at.button(key=f"esc-{tid}").click().run()
    at.button(key=f"again-yes-{tid}").click().run()
    assert not at.exception
    deadline = time.monotonic() + 20
    while sonnet_requests(fake) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sonnet_requests(fake) == 2  # confirmed: asked (and billed) once more


def test_the_classify_button_is_enabled_before_any_text_and_says_what_is_missing(app_env: str) -> None:
    at = make_app()
    assert not at.button(key="classify").disabled  # a paste applied by the click itself classifies on that click
    at.button(key="classify").click().run()
    assert any("Nothing to classify yet" in w.value for w in at.warning)


def test_the_name_is_asked_before_the_first_action_and_fills_the_sidebar(app_env: str) -> None:
    at = make_app(operator=None)
    field = at.text_input(key="operator_name_first")
    assert "stamped on your runs" in field.label
    field.set_value("maria").run()
    assert at.session_state["operator_name"] == "maria"
    assert not [t for t in at.text_input if t.key == "operator_name_first"]  # asked once
