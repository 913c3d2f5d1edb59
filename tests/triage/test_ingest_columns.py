"""Issue 27, item 5: a help-desk export's Subject and Description are combined (a row with an empty Description
but a Subject is kept), and common id headers are guessed ("Ticket ID", "ticket_id", "id")."""

import json

import pytest

from triage import ingest

EXPORT = ("Ticket ID,Subject,Description,Status\n"
          "HD-1,Refund,I was charged twice,open\n"
          "HD-2,Login broken,,open\n"  # no Description: kept, on its Subject
          "HD-3,,The app crashes on upload,open\n"
          "HD-4,,,open\n")  # nothing to classify: named and skipped


def test_subject_and_description_are_guessed_together_and_no_row_with_a_subject_is_lost() -> None:
    batch = ingest.parse(EXPORT, "csv")
    assert batch.items == [("HD-1", "Refund\n\nI was charged twice"), ("HD-2", "Login broken"),
                           ("HD-3", "The app crashes on upload")]
    assert batch.skipped == ["row 4 (line 5): empty 'Subject + Description'"]
    assert ingest.guess_text_columns(batch.columns) == ["Subject", "Description"]


def test_the_operator_can_pick_the_columns_and_their_order_or_just_one() -> None:
    assert ingest.parse(EXPORT, "csv", text_column=["Description", "Subject"]).items[0] == \
        ("HD-1", "I was charged twice\n\nRefund")
    one = ingest.parse(EXPORT, "csv", text_column="Description")
    assert [t for _, t in one.items] == ["I was charged twice", "The app crashes on upload"]
    with pytest.raises(ingest.IngestError, match="no text column 'Body'"):
        ingest.parse(EXPORT, "csv", text_column=["Subject", "Body"])


@pytest.mark.parametrize("header", ["Ticket ID", "ticket_id", "id", "Ticket-Id", " TICKET ID "])
def test_common_id_headers_are_guessed(header: str) -> None:
    assert ingest.guess_column([header, "Description"], "id") == header
    batch = ingest.parse(f'"{header}",Description\nT-9,my invoice is wrong\n', "csv")
    assert batch.items == [("T-9", "my invoice is wrong")]


def test_json_records_combine_the_same_way_and_an_object_is_still_reported() -> None:
    records = [{"ticket_id": 1, "subject": "Refund", "description": "charged twice"},
               {"ticket_id": 2, "subject": "Login", "description": None},
               {"ticket_id": 3, "subject": "x", "description": {"html": "<p>hi</p>"}}]
    batch = ingest.parse(json.dumps(records), "json")
    assert batch.items == [("1", "Refund\n\ncharged twice"), ("2", "Login")]
    assert batch.skipped == ["item 3: the subject + description is an object, not text"]


def test_a_file_with_one_text_column_reads_as_before() -> None:
    assert ingest.parse("id,text\n1,hello\n", "csv").items == [("1", "hello")]
    assert ingest.guess_text_columns(["id", "body", "status"]) == ["body"]
    assert ingest.guess_text_columns(["id", "status"]) == []
