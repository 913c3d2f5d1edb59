"""Issue 27, item 4 in a real browser at 1024x768 and 1400x1000: a paste is classified on the first click (no
Ctrl+Enter, no second click), and a ticket Sonnet decided cannot be asked again without a confirmation that names
the price: no request reaches the fake API before it."""

import re

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from tests.e2e.conftest import wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser


def sonnet_requests(fake) -> int:
    return sum(1 for r in fake.requests if "sonnet" in str(r["body"].get("model", "")))


@pytest.mark.parametrize("width, height", [(1024, 768), (1400, 1000)])
def test_paste_classifies_on_the_first_click_and_asking_again_is_confirmed(browser, app_url, fake_api, width,
                                                                           height):
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
    finally:
        context.close()
