"""Issue 27, item 4 in a real browser at 1024x768 and 1400x1000: a paste is classified on the first click (no
Ctrl+Enter, no second click), and a ticket Sonnet decided cannot be asked again without a confirmation that names
the price, on the Classify page and in the review queue (the open ticket's button, and the bulk bar's): no request
reaches the fake API before it (counted at the fake server), exactly one after it."""

import re
import time

import pytest
from playwright.sync_api import Browser, Page

from tests.support.fake_anthropic import FakeAnthropic

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402
from sqlalchemy import select  # noqa: E402

from db.migrate import open_database  # noqa: E402
from db.models import Ticket  # noqa: E402
from tests.e2e.conftest import wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser


def sonnet_requests(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if "sonnet" in str(r["body"].get("model", "")))


@pytest.mark.parametrize("width, height", [(1024, 768), (1400, 1000)])
def test_paste_classifies_on_the_first_click_and_asking_again_is_confirmed(browser: Browser, app_url: str,
                                                                           app_db_url: str, fake_api: FakeAnthropic,
                                                                           width: int, height: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(90000)  # the box is shared: a first page run can take a while
    expect.set_options(timeout=60000)
    try:
        page.goto(app_url)
        wait_for_run(page, timeout=120000)
        name = page.get_by_label(re.compile(r"^Your name, stamped on your runs")) \
            .and_(page.get_by_test_id("stTextInputField"))
        expect(name).to_be_visible()  # asked before the first action
        name.fill(f"e2e-{width}")
        name.press("Enter")
        wait_for_run(page)
        expect(page.get_by_label("Operator", exact=True).and_(page.get_by_test_id("stTextInputField"))) \
            .to_have_value(f"e2e-{width}")

        page.get_by_label("Tickets", exact=True).fill(
            f"I was charged twice for order {width}, refund please\n"
            f"Screen {width} froze and my login broke [[conf=0.4]]")
        page.get_by_role("button", name="Classify", exact=True).click()  # one click, straight after the paste
        expect(page.get_by_text(re.compile(r"2 of 2 done"))).to_be_visible(timeout=90000)
        page.screenshot(path=f"/tmp/queue-classify-{width}.png", full_page=True)

        again = page.get_by_role("button", name="Ask again…")
        expect(again).to_have_count(1)  # the unsure ticket was escalated: Sonnet decided it
        asked = sonnet_requests(fake_api)
        again.click()
        wait_for_run(page)
        expect(page.get_by_text(re.compile(r"Sonnet already decided ticket \d+"))).to_be_visible()
        confirm = page.get_by_role("button", name=re.compile(r"Ask again for about \$0\.\d+"))
        expect(confirm).to_be_visible()
        page.screenshot(path=f"/tmp/queue-again-{width}.png", full_page=True)
        page.wait_for_timeout(1500)
        assert sonnet_requests(fake_api) == asked  # nothing was sent before the confirmation
        confirm.click()
        expect(page.get_by_text(re.compile(r"sent to Sonnet again"))).to_be_visible(timeout=10000)
        for _ in range(100):
            if sonnet_requests(fake_api) > asked:
                break
            page.wait_for_timeout(200)
        assert sonnet_requests(fake_api) == asked + 1

        asked_again_in_the_queue(page, app_url, app_db_url, fake_api, width)
    finally:
        context.close()


def settle(fake: FakeAnthropic, before: int) -> int:
    """The Sonnet requests counted at the fake server once one more than `before` arrived (or 20 s passed), then
    a second and a half more: a second request would have been counted by then."""
    for _ in range(100):
        if sonnet_requests(fake) > before:
            break
        time.sleep(0.2)
    time.sleep(1.5)
    return sonnet_requests(fake)


def asked_again_in_the_queue(page: Page, app_url: str, db_url: str, fake: FakeAnthropic, width: int) -> None:
    """The same ticket in the review queue (Recent runs' link: every ticket of its run): the bulk bar's Sonnet
    button and the open ticket's both name the price and send nothing before the confirmation; confirmed, one."""
    db = open_database(db_url)
    try:
        with db.read() as s:
            ticket = s.scalars(select(Ticket).where(Ticket.text.like(f"Screen {width} froze%"))).one()
            tid, run = ticket.id, ticket.run_id
    finally:
        db.dispose()
    page.goto(f"{app_url}/review?run={run}")
    wait_for_run(page)
    search = page.get_by_label("Search ticket text")
    search.fill(f"Screen {width}")
    search.press("Enter")
    wait_for_run(page)
    panel = page.locator(".st-key-focus_panel")
    expect(panel).to_contain_text(f"#{tid}")  # the only match, open
    ask = page.locator(".st-key-ask_sonnet").get_by_role("button")
    expect(ask).to_contain_text("Ask Sonnet again")
    expect(ask).to_be_enabled()  # (once the Classify page's second answer is in: the page follows it live)
    asked = sonnet_requests(fake)

    # the bulk bar: the row ticked, Sonnet pressed -> the price is named, nothing sent; Cancel sends nothing
    page.get_by_test_id("stDataFrame").first.click(position={"x": 15, "y": 35 + 17})
    wait_for_run(page)
    page.locator(".st-key-escalate_selected").get_by_role("button").click()
    wait_for_run(page)
    box = page.locator(".st-key-review_again_box")
    expect(box).to_contain_text("Sonnet already decided 1 of the 1 selected tickets")
    expect(box).to_contain_text(re.compile(r"billed again: about \$0\.\d+"))
    box.get_by_role("button", name="Cancel").click()
    wait_for_run(page)
    expect(box).to_have_count(0)

    # the open ticket's button: a confirmation naming the price, nothing sent before it
    ask.click()
    wait_for_run(page)
    confirm_box = page.locator(".st-key-panel_again_box")
    expect(confirm_box).to_contain_text(f"Sonnet already decided ticket {tid}")
    confirm = confirm_box.get_by_role("button", name=re.compile(r"Ask again for about \$0\.\d+"))
    expect(confirm).to_be_visible()
    page.screenshot(path=f"/tmp/queue-review-again-{width}.png")
    time.sleep(1.5)
    assert sonnet_requests(fake) == asked  # neither the bulk bar nor the panel sent anything
    confirm.click()
    expect(page.get_by_text(re.compile(r"Sent 1 ticket to Sonnet again"))).to_be_visible(timeout=10000)
    assert settle(fake, asked) == asked + 1  # exactly one request, after the confirmation
