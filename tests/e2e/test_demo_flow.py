"""A stakeholder demo in a real browser: an empty database, one click on 'Load demo data', every page full."""

import re

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from db.migrate import open_database  # noqa: E402
from db.models import Ticket  # noqa: E402
from tests.e2e.conftest import figures, shoot, wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser


def metric(page: Page, label: str) -> str:
    name = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=name).get_by_test_id("stMetricValue").inner_text()


def test_demo_data_fills_the_dashboard(page: Page, app_url: str, app_db_url: str) -> None:
    page.goto(app_url)
    wait_for_run(page)
    page.get_by_role("button", name="Load demo data").click()
    wait_for_run(page, timeout=120000)
    expect(page.get_by_role("button", name="Load demo data")).to_have_count(0)
    with open_database(app_db_url).read() as s:
        uncorrected = s.scalars(select(func.count()).select_from(Ticket).where(Ticket.corrected.is_(False))).one()
        labelled = s.scalars(select(func.count()).select_from(Ticket).where(Ticket.corrected.is_(True))).one()
    assert uncorrected + labelled == 315  # every sample ticket

    page.get_by_test_id("stSidebarNav").get_by_text("Review queue", exact=True).click()
    wait_for_run(page)
    caption = page.get_by_text(re.compile(r"\d+ tickets · page 1 of"))
    expect(caption).to_be_visible()
    assert 0 < int(caption.inner_text().split()[0]) <= uncorrected  # the queue holds uncorrected tickets only
    page.wait_for_timeout(800)
    shoot(page, "demo-review")

    page.get_by_test_id("stSidebarNav").get_by_text("Spend & routing", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("Includes 266 simulated Haiku/Sonnet calls", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=20000)
    page.wait_for_timeout(1500)
    drawn = sum(sum(t["y"]) for t in figures(page)["Spend per day, by model and tier"])
    assert metric(page, "Spend") == f"${drawn:,.4f}" and drawn > 0  # the chart adds up to the headline figure
    shoot(page, "demo-spend")

    page.get_by_test_id("stSidebarNav").get_by_text("Quality", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("Haiku: answers right")).to_be_visible()
    page.wait_for_timeout(1500)
    shoot(page, "demo-quality")

    page.get_by_test_id("stSidebarNav").get_by_text("Settings", exact=True).click()
    wait_for_run(page)
    expect(page.get_by_text("Local model (tier 0)")).to_be_visible()
    assert metric(page, "Operator labels") == str(labelled)  # the demo's corrections and confirmations
    shoot(page, "demo-settings")
