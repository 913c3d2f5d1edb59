"""The Pilot page (AppTest): a lead uploads labelled history and queues a pilot; the background worker runs it (no
API key here: the local route only) and the page shows each route's figures. Viewers and operators get no pilot:
tests/dashboard/test_access.py runs every kind of visitor on every page, this one included."""

import time

from sqlalchemy import func, select

from db.migrate import open_database
from db.models import Pilot, Ticket
from tests.dashboard.conftest import make_app
from tests.dashboard.test_pages import texts

HISTORY = ("text,label\n" + "".join(f"{t} ({i}),{label}\n" for i in range(4) for t, label in [
    ("I was charged twice please refund", "billing"), ("the app crashes on upload", "technical"),
    ("I cannot log in to my account", "account")])).encode()


def test_a_lead_queues_a_pilot_the_worker_runs_it_and_the_page_shows_the_routes(app_env: str) -> None:
    db = open_database(app_env)
    at = make_app("pilot")
    assert at.title[0].value == "Pilot" and not at.dataframe
    at.file_uploader(key="pilot_file").set_value(("history.csv", HISTORY, "text/csv"))
    at.number_input(key="pilot_sample").set_value(6)
    at.number_input(key="pilot_cap").set_value(0.5)
    at.button[0].click().run()  # the form's Queue pilot
    assert not at.exception, [e.value for e in at.exception]
    assert any("queued" in s.value for s in at.success)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with db.read() as s:
            status = s.scalar(select(Pilot.status))
        if status == "finished":
            break
        time.sleep(0.5)
    assert status == "finished"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    frame = next(d.value for d in at.dataframe if "route" in d.value.columns)
    local = frame[frame["route"] == "Local model alone"].iloc[0]
    assert local["n"] == 6 and 0 <= local["accuracy"] <= 1 and local["$ per 1,000"] == 0
    assert frame[frame["route"] == "Haiku alone"].iloc[0]["n"] == 0  # no key: nothing paid was measured
    assert "Measured on 6 tickets of history" in texts(at)
    with db.read() as s:  # the sample's tickets are the pilot's, and none is in the review queue's
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.purpose == "pilot")) == 6
    db.dispose()


def test_a_bad_file_is_refused_on_the_page_and_nothing_is_queued(app_env: str) -> None:
    db = open_database(app_env)
    at = make_app("pilot")
    at.file_uploader(key="pilot_file").set_value(("history.csv", b"body,label\nrefund,billing\n", "text/csv"))
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("text" in e.value for e in at.error)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Pilot)) == 0
    db.dispose()
