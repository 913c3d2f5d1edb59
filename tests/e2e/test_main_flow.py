"""The main flow in a real browser: paste three tickets, watch them labelled, escalate one, correct one in the
review queue, read its history, see the spend charts."""

import re

import pytest

from tests.support.fake_anthropic import FakeAnthropic

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from db.migrate import open_database  # noqa: E402
from db.models import Correction, ModelCall, Ticket  # noqa: E402
from tests.e2e.conftest import figures, shoot, wait_for_run  # noqa: E402
from triage.domain import from_pico  # noqa: E402

pytestmark = pytest.mark.browser

TICKETS = ("I was charged twice this month, please refund the invoice\n"
           "The app crashes with error 500 whenever I upload a file\n"
           "Would be nice to have dark mode, also my login broke? [[conf=0.4]] [[conf2=0.6]]")


def sidebar_page(page: Page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
    wait_for_run(page)


def test_paste_classify_escalate_correct_and_chart(page: Page, app_url: str, app_db_url: str,
                                                   fake_api: FakeAnthropic) -> None:
    page.goto(app_url)
    wait_for_run(page)
    operator = page.get_by_label("Operator", exact=True).and_(page.get_by_test_id("stTextInputField"))
    operator.fill("e2e-lead")
    operator.press("Enter")
    wait_for_run(page)

    page.get_by_label("Tickets", exact=True).fill(TICKETS)
    page.get_by_label("Tickets", exact=True).press("Control+Enter")
    wait_for_run(page)
    expect(page.get_by_text("3 new", exact=False)).to_be_visible()
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.get_by_text(re.compile(r"3 of 3 done"))).to_be_visible(timeout=30000)
    expect(page.get_by_text("billing", exact=True)).to_be_visible()
    expect(page.get_by_text("technical", exact=True)).to_be_visible()
    shoot(page, "1-classify")

    page.get_by_role("button", name="Ask Sonnet", exact=True).first.click()
    expect(page.get_by_text(re.compile(r"claude-sonnet-5-5")).first).to_be_visible(timeout=30000)
    expect(page.get_by_text(re.compile(r"1 escalated"))).to_be_visible(timeout=30000)

    sidebar_page(page, "Review queue")
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_be_visible()
    panel = page.locator(".st-key-focus_panel")
    expect(panel).to_contain_text("#3")  # the first row (least confident) is open beside the list
    panel.get_by_role("button", name=re.compile(r"^\d+ account$")).click()  # a label's button (or its number key)
    wait_for_run(page)
    panel.get_by_role("button", name=re.compile(r"Save & next")).click()
    wait_for_run(page)
    expect(page.get_by_text("Saved 1 ticket")).to_be_visible()
    db = open_database(app_db_url)
    with db.read() as s:  # the label picked is in the database, by the operator who picked it
        c = s.scalars(select(Correction)).one()
        t = s.get(Ticket, c.ticket_id)
        assert t is not None
        assert (c.ticket_id, c.new_label, c.operator) == (3, "account", "e2e-lead")
        assert (t.category, t.label_source, t.corrected, t.corrected_by) == ("account", "operator", True, "e2e-lead")

    expect(page.get_by_text("Every ticket on this page is done")).to_be_visible()  # it was the only one
    expect(panel).to_contain_text("#3")
    panel.get_by_text(re.compile(r"History \(1\)")).click()
    expect(page.get_by_text(re.compile(r"e2e-lead.*changed"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"→ account"))).to_be_visible()
    shoot(page, "2-review")

    sidebar_page(page, "Spend & routing")
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=20000)
    assert page.get_by_test_id("stPlotlyChart").count() == 6
    page.wait_for_timeout(1000)
    with db.read() as s:
        cost = {m: float(from_pico(p)) for m, p in s.execute(select(ModelCall.model, func.sum(ModelCall.cost_pico))
                                                            .group_by(ModelCall.model))}
        tickets = s.scalar(select(func.count(func.distinct(ModelCall.ticket_id))))
    drawn = figures(page)
    spend = {t["name"]: sum(t["y"]) for t in drawn["Spend per day, by model and tier"]}
    assert spend.keys() == {"claude-haiku-5-5 (tier 1)", "claude-sonnet-5-5 (tier 2)"}
    assert spend["claude-haiku-5-5 (tier 1)"] == pytest.approx(cost["claude-haiku-5-5"])  # what is on the books
    assert spend["claude-sonnet-5-5 (tier 2)"] == pytest.approx(cost["claude-sonnet-5-5"]) and cost["claude-sonnet-5-5"]
    per_day = {t["name"]: t["y"] for t in drawn["Tickets classified and cost per ticket"]}
    assert per_day["tickets"] == [tickets] == [3]
    assert per_day["cost per ticket"] == [pytest.approx(sum(cost.values()) / 3)]
    shoot(page, "3-spend")

    sidebar_page(page, "Settings")
    expect(page.get_by_text("An API key is configured")).to_be_visible()
    shoot(page, "4-settings")
    assert sum(1 for u in fake_api.usage_log if "sonnet" in u["model"]) == 2
