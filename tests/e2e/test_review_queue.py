"""The review queue in a real browser at 1024x768 and 1400x1000 (issue 27, items 1-3): the open ticket's text, its
label buttons, Save and the list's first row on the first screen (no scrolling); ten tickets labelled with
the keyboard alone (typed as fast as Playwright types: nothing lost) and the labels per hour that reaches, a row
clicked open, every row of the page ticked by the header's box, every ticket matching a filter labelled in bulk, and
the last save undone."""

import asyncio
import threading
import time

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402
from sqlalchemy import select  # noqa: E402

from db.migrate import open_database  # noqa: E402
from db.models import Correction, Ticket  # noqa: E402
from tests.e2e.conftest import ARTIFACTS, wait_for_run  # noqa: E402
from tests.support.actors import LEAD  # noqa: E402
from tests.support.fakes import ScriptedProvider  # noqa: E402
from tests.support.streamlit_server import ROOT  # noqa: E402
from triage import review, taxonomy  # noqa: E402
from triage.domain import ReviewFilter  # noqa: E402
from triage.routing.router import Router  # noqa: E402
from triage.work import pipeline, runs  # noqa: E402

pytestmark = pytest.mark.browser
TAX = taxonomy.default()
N = 30
WORDS = ("refund my invoice", "app crashes on save", "cannot log in", "please add dark mode", "where is my parcel")


def answer(text: str) -> tuple[str, float]:
    i = int(text.split("#")[1].rstrip(")"))
    return TAX.names[i % len(TAX.names)], 0.30 + i / 100  # all under the threshold: all need review


@pytest.fixture(scope="module")
def queue_url(request: pytest.FixtureRequest, app_db_url: str) -> str:
    db = open_database(app_db_url)
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=answer),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: (answer(t)[0], 0.6)), TAX)
    imp = runs.start_run(db, [(f"T-{i}", f"{WORDS[i % 5]} (ticket #{i})") for i in range(N)], source="seed.csv",
                         actor=LEAD)
    worker = threading.Thread(target=lambda: asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id)))
    worker.start()  # (Playwright's own event loop runs in this thread)
    worker.join()
    db.dispose()
    url: str = request.getfixturevalue("app_url")
    return url


def shoot(page: Page, name: str) -> None:
    """Into test-artifacts/; the first view at each size also into docs/img/ (docs/dashboard.md shows them)."""
    for folder in (ARTIFACTS, *([ROOT / "docs" / "img"] if name.startswith("review-1") else [])):
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))


def on_first_screen(page: Page, width: int, height: int) -> None:
    """What the loop needs is inside the viewport as the page opens, nothing scrolled: the open ticket's text, every
    label's button, Machine's and Save & next, and the list's header and first row (the grid draws on a canvas:
    35 px a row)."""
    boxes = {"text": page.locator(".st-key-focus_text").bounding_box()}
    for key in [*(f"pick_{i}" for i in range(len(TAX.names))), "accept_machine", "save_next"]:
        boxes[key] = page.locator(f".st-key-{key}").get_by_role("button").bounding_box()
    grid = page.get_by_test_id("stDataFrame").first.bounding_box()
    assert grid is not None
    boxes["first row"] = {**grid, "height": 2 * 35}
    outside = {k: b for k, b in boxes.items() if b is None or b["y"] < 0 or b["x"] < 0 or b["x"] + b["width"] > width
               or b["y"] + b["height"] > height}
    assert not outside, f"off the first screen at {width}x{height}: {outside}"


def corrections(db_url: str) -> list[tuple[int, str, str, str | None]]:
    db = open_database(db_url)
    try:
        with db.read() as s:
            return [(c.ticket_id, c.new_label, c.operator, c.note) for c in s.scalars(select(Correction)
                                                                                      .order_by(Correction.id))]
    finally:
        db.dispose()


@pytest.mark.parametrize("width, height", [(1024, 768), (1400, 1000)])
def test_keyboard_loop_row_click_bulk_by_filter_and_undo(page: Page, queue_url: str, app_db_url: str, width: int,
                                                         height: int) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.set_default_timeout(60000)
    page.goto(queue_url + "/review")
    wait_for_run(page, 90000)
    name = page.get_by_role("textbox", name="Your name, stamped on your corrections")
    name.fill(f"kb-{width}")
    name.press("Enter")
    wait_for_run(page, 90000)
    expect(page.locator(".st-key-focus_panel")).to_be_visible()
    before = len(corrections(app_db_url))
    db = open_database(app_db_url)
    order = [r.id for r in review.page(db, ReviewFilter(reasons=("low_confidence", "unknown", "failed",
                                                                    "disagreement"), threshold=0.7, corrected=False),
                                       actor=LEAD).rows][:10]
    db.dispose()
    on_first_screen(page, width, height)
    shoot(page, f"review-{width}")

    # ten tickets, keyboard alone: a number picks a label, Enter saves and opens the next (typed without pauses)
    page.get_by_role("heading", name="Review queue").click()  # nothing focused that takes keys
    keys = [str(1 + i % len(TAX.names)) for i in range(10)]
    start = time.monotonic()
    for k in keys:
        page.keyboard.press(k)
        page.keyboard.press("Enter")
    deadline = time.monotonic() + 60
    while len(corrections(app_db_url)) < before + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    elapsed = time.monotonic() - start
    saved = corrections(app_db_url)[before:]
    assert [(t, label, who) for t, label, who, _ in saved] == [
        (tid, TAX.names[int(k) - 1], f"kb-{width}") for tid, k in zip(order, keys, strict=True)]
    per_hour = 10 / elapsed * 3600
    print(f"\nreview queue at {width}x{height}: 10 labels by keyboard in {elapsed:.1f} s = {per_hour:,.0f} labels/hour "
          "(machine speed: the server's share of an operator's time)")
    wait_for_run(page, 90000)
    expect(page.get_by_text("Saved 1 ticket")).to_be_visible()
    shoot(page, f"review-keyboard-{width}")

    # a click on a row opens it beside the list
    grid = page.get_by_test_id("stDataFrame").first
    grid.click(position={"x": 200, "y": 35 + 35 * 12 + 17})  # the thirteenth row's text
    wait_for_run(page, 90000)
    db = open_database(app_db_url)
    with db.read() as s:
        shown = page.locator(".st-key-focus_panel").inner_text()
        thirteenth = s.scalars(select(Ticket).where(Ticket.id.not_in([t for t, *_ in saved]),
                                                    Ticket.corrected.is_(False))
                               .order_by(Ticket.confidence, Ticket.id)).all()
    db.dispose()
    assert any(f"#{t.id}" in shown and t.text in shown for t in thirteenth)
    expect(page.locator(".st-key-bulk_bar")).to_have_count(0)  # opening a row ticks nothing

    # bulk: a row's checkbox, then every ticket matching the filter (search narrows it to one kind of ticket; one
    # database for both sizes, so each size its own kind)
    word = {1024: "dark mode", 1400: "parcel"}[width]
    db = open_database(app_db_url)
    with db.read() as s:
        waiting = {t.id: t.category for t in s.scalars(select(Ticket).where(Ticket.text.like(f"%{word}%"),
                                                                            Ticket.corrected.is_(False)))}
    assert len(waiting) >= 2
    search = page.get_by_label("Search ticket text")
    search.fill(word)
    search.press("Enter")
    wait_for_run(page, 90000)
    page.get_by_test_id("stDataFrame").first.click(position={"x": 15, "y": 17})  # the header's: all on the page
    wait_for_run(page, 90000)
    expect(page.get_by_text(f"{len(waiting)} selected")).to_be_visible()
    page.locator(".st-key-clear_selection").get_by_role("button").click()
    wait_for_run(page, 90000)
    expect(page.locator(".st-key-bulk_bar")).to_have_count(0)
    page.get_by_test_id("stDataFrame").first.click(position={"x": 15, "y": 35 + 17})  # the first row's checkbox
    wait_for_run(page, 90000)
    expect(page.get_by_text("1 selected")).to_be_visible()
    page.get_by_role("button", name=f"Select all {len(waiting)} matching").click()
    wait_for_run(page, 90000)
    expect(page.get_by_text(f"All {len(waiting)} matching")).to_be_visible()
    page.locator(".st-key-bulk_apply").get_by_role("button").click()  # (the DOM holds a hidden copy of each button)
    wait_for_run(page, 90000)
    expect(page.get_by_text(f"Labelled {len(waiting)} tickets")).to_be_visible()
    with db.read() as s:
        now = {t.id: (t.category, t.corrected_by) for t in s.scalars(select(Ticket).where(Ticket.id.in_(waiting)))}
    assert now == {t: (TAX.names[0], f"kb-{width}") for t in waiting}
    shoot(page, f"review-bulk-{width}")

    # undo takes the last save back
    page.locator(".st-key-undo").get_by_role("button").click()
    wait_for_run(page, 90000)
    expect(page.get_by_text(f"Undone: {len(waiting)} tickets")).to_be_visible()
    with db.read() as s:
        back = {t.id: t.category for t in s.scalars(select(Ticket).where(Ticket.id.in_(waiting)))}
    db.dispose()
    assert back == waiting
