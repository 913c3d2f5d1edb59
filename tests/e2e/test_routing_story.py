"""The Routing story page in a real browser on the demo data (`triage demo`), at 1024 and 1400 px: the Sankey
drawn with no two node labels overlapping, the headline and the metrics' deltas shown whole; screenshots saved to
docs/img/routing-*.png."""

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

from db.migrate import open_database  # noqa: E402
from tests.e2e.conftest import wait_for_run  # noqa: E402
from tests.support.actors import LEAD  # noqa: E402
from tests.support.streamlit_server import ROOT  # noqa: E402
from triage import demo, taxonomy  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1024, 1400])
def test_routing_story_draws_the_sankey(page: Page, app_url: str, app_db_url: str, width: int) -> None:
    db = open_database(app_db_url)
    with db.read() as s:
        from sqlalchemy import func, select

        from db.models import Ticket
        empty = not s.scalar(select(func.count()).select_from(Ticket))
    if empty:
        demo.fill(db, taxonomy.default(), actor=LEAD)
    db.dispose()
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(app_url)
    wait_for_run(page, timeout=120000)
    page.get_by_test_id("stSidebarNav").get_by_text("Routing story", exact=True).click()
    wait_for_run(page, timeout=120000)
    expect(page.get_by_text("Operators reviewed", exact=False)).to_be_visible(timeout=90000)
    expect(page.locator(".js-plotly-plot .sankey").first).to_be_attached(timeout=90000)
    nodes = page.eval_on_selector(".js-plotly-plot", "p => p.data[0].node.label")
    assert any(n.startswith("Haiku<br>") for n in nodes) and any(n.startswith("Sonnet<br>") for n in nodes)
    page.wait_for_timeout(1500)
    boxes = [b for b in (t.bounding_box() for t in page.locator(".js-plotly-plot .node-label").all())
             if b and b["width"]]
    assert len(boxes) >= 6
    for i, a in enumerate(boxes):  # legible: no node label drawn over another
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                     or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
            assert apart, (a, b)
    for delta in page.get_by_test_id("stMetricDelta").all():  # shown whole, not cut off with an ellipsis
        assert delta.evaluate("e => [...e.querySelectorAll('*')].every(c => c.scrollWidth <= c.clientWidth + 1)")
    page.set_viewport_size({"width": width, "height": 2300})  # Streamlit scrolls inside the page: show it all
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ROOT / "docs" / "img" / f"routing-{width}.png"), full_page=True)
