"""An open Classify tab costs nothing once its run is done, and shows a run in progress as it happens.

Counted off the tab's WebSocket in a real browser: every rerun the page asks for (its fragment's timer sends a
BackMsg `rerun_script`) and every script run the server does for it (a ForwardMsg `script_finished`)."""

import re
import time
from datetime import UTC

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, WebSocket, expect  # noqa: E402

from tests.e2e.conftest import wait_for_run  # noqa: E402

pytestmark = pytest.mark.browser

POLL_SECONDS = 1.0  # dashboard/app_pages/classify.py
RENDER_SLACK = 1.5  # a full page run and the browser's redraw on a busy 2-core machine
CARD = "[class*='st-key-card-']"


class Traffic:
    """Reruns a page asked for and script runs the server did for it, read off the page's WebSocket."""

    def __init__(self, page: Page) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.asked = self.asked_fragment = self.runs = 0

        def sent(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                msg = BackMsg.FromString(payload)
                if msg.WhichOneof("type") == "rerun_script":
                    self.asked += 1
                    self.asked_fragment += bool(msg.rerun_script.fragment_id)

        def received(payload: str | bytes) -> None:
            if isinstance(payload, bytes) and ForwardMsg.FromString(payload).WhichOneof("type") == "script_finished":
                self.runs += 1

        def watch(ws: WebSocket) -> None:
            ws.on("framesent", sent)
            ws.on("framereceived", received)

        page.on("websocket", watch)

    def snapshot(self) -> tuple[int, int]:
        return self.asked, self.runs


def paste_and_classify(page: Page, app_url: str, tickets: list[str]) -> None:
    page.goto(app_url)
    wait_for_run(page)
    box = page.get_by_label("Tickets", exact=True)
    box.fill("\n".join(tickets))
    box.press("Control+Enter")
    wait_for_run(page)
    page.get_by_role("button", name="Classify", exact=True).click()


def quiet_for(page: Page, traffic: Traffic, seconds: float) -> tuple[int, int]:
    """Reruns asked and script runs done over `seconds` (Playwright delivers events while it waits)."""
    asked, runs = traffic.snapshot()
    page.wait_for_timeout(seconds * 1000)
    return traffic.asked - asked, traffic.runs - runs


def test_a_finished_run_is_not_polled_and_an_escalation_is_polled_until_answered(page: Page, app_url: str) -> None:
    traffic = Traffic(page)
    paste_and_classify(page, app_url, ["refund the double charge on invoice 77 [[conf=0.95]] [[slow=2]]",
                                       "the app crashes with error 500 on upload, ticket 78 [[conf=0.95]]"])
    expect(page.get_by_text(re.compile(r"2 of 2 done · 2 classified"))).to_be_visible(timeout=30000)
    assert traffic.asked_fragment >= 1, "the page did not poll while a ticket was still out"
    page.wait_for_timeout(1500)  # the redraw that follows the last result
    assert quiet_for(page, traffic, 5) == (0, 0), "a finished run's page kept rerunning"

    polled = traffic.asked_fragment
    page.locator(CARD).filter(has_text="invoice 77").get_by_role("button", name="Ask Sonnet", exact=True).click()
    expect(page.get_by_text(re.compile(r"1 escalated"))).to_be_visible(timeout=30000)
    assert traffic.asked_fragment > polled, "the page did not poll while Sonnet was answering"
    page.wait_for_timeout(1500)
    assert quiet_for(page, traffic, 5) == (0, 0), "the page kept rerunning after the escalation was answered"


def test_results_of_a_run_in_progress_show_within_the_poll_interval(page: Page, app_url: str, app_db_url: str) -> None:
    from sqlalchemy import select

    from db.engine import Database
    from db.models import Ticket

    tickets = [f"please refund invoice {n}, charged twice [[conf=0.95]] [[slow={delay}]]"
               for n, delay in ((901, 0.5), (902, 2.0), (903, 3.5), (904, 5.0))]
    paste_and_classify(page, app_url, tickets)
    shown: dict[str, float] = {}
    deadline = time.monotonic() + 40
    while len(shown) < len(tickets) and time.monotonic() < deadline:
        for card in page.locator(CARD).all_inner_texts():
            for t in tickets:
                if t in card and "classified" in card:
                    shown.setdefault(t, time.time())
        page.wait_for_timeout(100)
    assert len(shown) == len(tickets), f"results never shown: {set(tickets) - set(shown)}"

    db = Database(app_db_url)
    with db.read() as s:
        stored = {text: (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
                  for text, when in s.execute(select(Ticket.text, Ticket.updated_at).where(Ticket.text.in_(tickets)))}
    db.dispose()
    lags = {t[:27]: round(shown[t] - stored[t], 2) for t in tickets}
    assert all(-0.2 <= lag <= POLL_SECONDS + RENDER_SLACK for lag in lags.values()), lags
    first, last = tickets[0], tickets[-1]
    assert shown[first] < stored[last] - 2, "results were held back until the run ended"
