"""The Classify page's labelled-upload flow and the Quality page's confusion matrix, under AppTest."""

import json

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from db.engine import Database
from db.models import Correction, ModelCall, Ticket
from tests.dashboard.conftest import make_app
from tests.support.actors import LEAD, op
from triage import review, taxonomy
from triage.work import runs

TAX = taxonomy.default()
FILE = ("id,text,label\n"
        ",charged twice,billing\n"  # a seeded ticket, by text: Haiku said billing too (a confirmation)
        ",app crashes on upload,account\n"  # a seeded ticket, by text: corrects Haiku's technical
        "N-1,please add a dark mode,product_feedback\n"  # new
        "N-2,,billing\n"  # no text
        "N-3,refund me,Refunds\n")  # outside the taxonomy


def shown(value: object) -> str:
    """What the operator reads: the page escapes markdown in file and ticket text."""
    return str(value).replace("\\", "")


def texts(at: AppTest) -> str:
    return " ".join(shown(e.value) for kind in ("markdown", "caption", "text", "info", "success", "warning", "error")
                    for e in at.get(kind) if isinstance(e, Element))


def upload(at: AppTest, data: bytes = FILE.encode(), name: str = "helpdesk.csv") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_labelled_upload_previews_imports_and_retrains(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    at = upload(make_app())
    assert at.toggle(key="upload_labelled").value is True  # the file has a label column
    assert at.selectbox(key="upload_label_column").value == "label"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Matched": "2", "New tickets": "1", "Unknown labels": "1", "No text": "1"}
    assert "Refunds" in texts(at) and "the taxonomy has billing" in texts(at)
    assert at.button(key="classify").disabled  # a labelled file is imported, not classified
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0  # the preview wrote nothing
        calls = s.scalar(select(func.count()).select_from(ModelCall))

    at.button(key="import_labels").click().run(timeout=120)
    assert not at.exception
    assert any("Imported 3 labels from helpdesk.csv: 2 existing tickets labelled, 1 new tickets" in shown(s.value)
               for s in at.success), [s.value for s in at.success]
    assert any("retrained on 3 operator labels (billing 1, technical 0, product_feedback 1, account 1)" in
               shown(i.value) and "out-of-fold accuracy" in shown(i.value) for i in at.info)
    with db.read() as s:
        audit = s.execute(select(Correction.ticket_id, Correction.new_label, Correction.operator, Correction.source,
                                 Correction.file)).all()
        assert s.get_one(Ticket, ids["app crashes on upload"]).category == "account"
        assert s.scalar(select(func.count()).select_from(ModelCall)) == calls  # no model was asked
    assert {tuple(a)[2:] for a in audit} == {("alice", "import", "helpdesk.csv")} and len(audit) == 3
    assert {m.label: m.value for m in at.metric}["Matched"] == "3"  # the preview now shows the file imported
    assert at.button(key="import_labels").disabled
    assert (ids["app crashes on upload"], "account") in {tuple(a)[:2] for a in audit}

    again = upload(make_app())  # the same file again: nothing left to write
    assert {m.label: m.value for m in again.metric}["Matched"] == "3"
    assert again.button(key="import_labels").disabled


def test_a_labelled_upload_of_ids_and_labels_alone_labels_the_known_tickets(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    (known,) = runs.start_run(db, [("H-1", "my card was charged twice")], source="t", actor=LEAD).ticket_ids
    at = upload(make_app(), b"ticket_id,final_category\nH-1,account\nH-404,billing\n", "final.csv")
    assert at.toggle(key="upload_labelled").value is True
    assert {m.label: m.value for m in at.metric} == {"Matched": "1", "New tickets": "0", "Unknown labels": "0",
                                                      "No text": "1"}
    assert "row 2 (id H-404): no ticket has this id" in texts(at)
    at.button(key="import_labels").click().run(timeout=120)
    assert not at.exception
    with db.read() as s:
        assert (s.get_one(Ticket, known).category, s.get_one(Ticket, known).label_source) == ("account", "operator")
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.external_id == "H-404")) == 0


def test_importing_needs_an_operator_and_switching_off_classifies_instead(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = upload(make_app(operator=None))
    at.button(key="import_labels").click().run()
    assert any("Type your name" in w.value for w in at.warning)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Correction)) == 0
    at.toggle(key="upload_labelled").set_value(False).run()
    assert not at.button(key="classify").disabled and not any(b.key == "import_labels" for b in at.button)


def test_a_file_without_a_label_column_is_offered_for_classifying(app_env: str) -> None:
    at = upload(make_app(), b"ref,msg\n7,my invoice is wrong\n", "t.csv")
    assert at.toggle(key="upload_labelled").value is False
    assert not any(b.key == "import_labels" for b in at.button)


def test_quality_page_without_labels_says_how_to_get_them(seeded: tuple[Database, dict[str, int]]) -> None:
    at = make_app("quality")
    assert "No operator labels yet" in texts(at) and "import a labelled file" in texts(at)
    assert not at.get("plotly_chart")


def test_quality_page_shows_the_confusion_matrix_and_what_it_measured_on(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    truth = {"charged twice": "billing", "app crashes on upload": "account", "login or refund?": "account",
             "weird one": "technical"}
    with db.read() as s:
        versions = {t.id: t.version for t in s.scalars(select(Ticket))}
    for text, label in truth.items():
        review.correct(db, ids[text], label, actor=op("op"), expected_version=versions[ids[text]], taxonomy=TAX)
    at = make_app("quality")
    assert not at.exception
    assert "Measured on 4 tickets an operator labelled (4 corrected or confirmed in the review queue)" in texts(at)
    assert "hard tickets" in texts(at)
    assert at.selectbox(key="confusion_model").value == "Haiku"
    chart = next(c for c in at.get("plotly_chart") if "operator's label (rows)" in c.proto.spec)
    heat = json.loads(chart.proto.spec)["data"][0]
    assert heat["type"] == "heatmap" and heat["y"] == ["billing", "technical", "product_feedback", "account", "unknown"]
    # Haiku: billing->billing, account->technical (the crash), account->billing (login), technical->unknown
    assert heat["text"] == [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    at.selectbox(key="confusion_model").set_value("Sonnet").run()
    chart = next(c for c in at.get("plotly_chart") if "Sonnet: operator's label" in c.proto.spec)
    assert json.loads(chart.proto.spec)["data"][0]["text"][3] == [0, 0, 0, 1]  # login -> account, right
    assert any("macro-F1" in c.value for c in at.caption)
