"""Masked values in a real browser (issue 21, item 2): a hostile ticket pasted and classified shows on its Classify
card and in the ticket detail exactly as typed, its e-mail address highlighted as masked; its tags are text (no
element is created, no handler runs) and its markdown is not rendered."""

import re

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

from tests.e2e.conftest import shoot, wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser

EMAIL = "anna.k@example.com"
HOSTILE = (f'<img src=x onerror="window.__xss=1"> **bold** [x](javascript:window.__xss=2) '
           f"<b>loud</b> write to {EMAIL} about the refund")


def check_block(page: Page, block: Locator) -> None:
    expect(block).to_be_visible(timeout=30000)
    expect(block.locator("mark")).to_have_text(EMAIL)
    assert block.locator("img, b, a, strong, script").count() == 0  # the ticket's tags and markdown are text
    expect(block).to_contain_text('<img src=x onerror="window.__xss=1"> **bold** [x](javascript:window.__xss=2)')
    expect(block).to_contain_text("<b>loud</b>")
    assert page.evaluate("window.__xss === undefined")


def test_a_hostile_ticket_shows_as_typed_with_its_masked_value_marked(page: Page, app_url: str) -> None:
    page.goto(app_url)
    wait_for_run(page, timeout=90000)  # the first run imports the engine (slow on a loaded machine)
    operator = page.get_by_label("Operator", exact=True).and_(page.get_by_test_id("stTextInputField"))
    operator.fill("e2e-lead")
    operator.press("Enter")
    wait_for_run(page)
    page.get_by_label("Tickets", exact=True).fill(HOSTILE)
    page.get_by_label("Tickets", exact=True).press("Control+Enter")
    wait_for_run(page)
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.get_by_text(re.compile(r"1 of 1 done"))).to_be_visible(timeout=30000)
    check_block(page, page.locator(".triage-masked").first)
    expect(page.get_by_text("1 value masked before Claude saw it").first).to_be_visible()
    shoot(page, "masked-card")

    page.goto(app_url + "/review?run=1")  # Recent runs' link: every ticket of the run, not only those needing review
    wait_for_run(page, 90000)
    page.get_by_test_id("stDataFrame").first.click(position={"x": 200, "y": 35 + 17})  # the first row's text opens it
    wait_for_run(page, 90000)
    check_block(page, page.locator(".triage-masked").last)
    shoot(page, "masked-detail")
