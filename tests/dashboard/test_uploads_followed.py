"""Issue 27, item 5 (AppTest): a help-desk export is read with Subject + Description and its own ids; the ids show
on the cards and in the queue; the queue filters by run and by file; Recent runs link to their results."""

import time

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.migrate import open_database
from db.models import Ticket
from tests.dashboard.conftest import APP, make_app
from tests.dashboard.test_pages import review_list, texts
from tests.support.actors import LEAD
from triage import review
from triage.domain import ReviewFilter
from triage.work import runs

EXPORT = (b"Ticket ID,Subject,Description\n"
          b"HD-1,Refund,I was charged twice\n"
          b"HD-2,Login broken,\n"
          b"HD-3,,The app crashes on upload\n")


def test_an_export_is_combined_its_ids_guessed_and_followed_to_the_queue(app_env: str) -> None:
    db = open_database(app_env)
    at = make_app()
    at.file_uploader(key="upload").set_value(("export.csv", EXPORT, "text/csv")).run()
    assert at.multiselect(key="text_columns").value == ["Subject", "Description"]
    assert at.selectbox[0].value == "Ticket ID"  # guessed
    assert "3 new" in texts(at)  # HD-2 (no Description) is kept
    at.button(key="classify").click().run()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the local model classifies (no key)
        with db.read() as s:
            rows = s.execute(select(Ticket.external_id, Ticket.text, Ticket.status, Ticket.source)
                             .order_by(Ticket.id)).all()
        if rows and all(r.status != "pending" for r in rows):
            break
        time.sleep(0.3)
        at.run()
    assert [tuple(r)[:2] for r in rows] == [("HD-1", "Refund\n\nI was charged twice"), ("HD-2", "Login broken"),
                                           ("HD-3", "The app crashes on upload")]
    at.run()
    assert "id in the file **HD\\-2**" in texts(at)  # on the card

    assert any(e.label == "Recent runs" for e in at.expander)
    at.session_state["recent_runs"] = True  # open Recent runs: each links to its cards and to its tickets in the queue
    at.run()
    frame = next(d.value for d in at.dataframe if "results" in d.value.columns)
    assert list(frame["results"]) == ["?run=1"] and list(frame["in review"]) == ["review?run=1"]

    queue = AppTest.from_file(APP, default_timeout=60)  # the link opens a new session on the review page
    queue.query_params["run"] = "1"
    queue.session_state["operator_name"] = "alice"
    queue.run()
    queue.switch_page("app_pages/review.py").run()
    assert not queue.exception, [e.value for e in queue.exception]
    listed = review_list(queue)
    assert sorted(listed["file id"]) == ["HD-1", "HD-2", "HD-3"]  # every ticket of the run, with the file's ids
    origin = queue.selectbox(key="f_origin").value
    assert origin is not None and origin[0] == 1


def test_the_review_filter_takes_a_run_and_a_file(db: Database) -> None:
    a = runs.start_run(db, [("A-1", "refund me"), ("A-2", "app crashes")], source="a.csv", actor=LEAD)
    b = runs.start_run(db, [("B-1", "dark mode please")], source="b.csv", actor=LEAD)
    by_run = review.page(db, ReviewFilter(run_id=b.run_id), actor=LEAD)
    assert [r.external_id for r in by_run.rows] == ["B-1"]
    by_file = review.page(db, ReviewFilter(source="a.csv"), actor=LEAD)
    assert sorted(r.external_id or "" for r in by_file.rows) == ["A-1", "A-2"] and by_file.total == 2
    assert review.page(db, ReviewFilter(run_id=a.run_id, source="b.csv"), actor=LEAD).total == 0
