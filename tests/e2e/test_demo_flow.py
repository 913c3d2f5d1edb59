"""A stakeholder demo in a real browser: an empty database, one click on 'Load demo data', every page full."""

import re

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

from tests.e2e.conftest import shoot, wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser


def test_demo_data_fills_the_dashboard(page: Page, app_url):
    page.goto(app_url)
    wait_for_run(page)
    page.get_by_role("button", name="Load demo data").click()
    wait_for_run(page, timeout=120000)
    expect(page.get_by_role("button", name="Load demo data")).to_have_count(0)

    page.get_by_test_id("stSidebarNav").get_by_text("Review queue", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text(re.compile(r"\d+ tickets · page 1 of"))).to_be_visible()
    page.wait_for_timeout(800)
    shoot(page, "demo-review")

    page.get_by_test_id("stSidebarNav").get_by_text("Spend & routing", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("simulated", exact=False).first).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=20000)
    page.wait_for_timeout(1500)
    shoot(page, "demo-spend")

    page.get_by_test_id("stSidebarNav").get_by_text("Quality", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("Haiku right")).to_be_visible()
    page.wait_for_timeout(1500)
    shoot(page, "demo-quality")

    page.get_by_test_id("stSidebarNav").get_by_text("Settings", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("Local model (tier 0)")).to_be_visible()
    shoot(page, "demo-settings")
