import csv
import io
import json

from db.engine import Database
from tests.support.actors import LEAD
from triage import export
from triage.export import safe_cell, to_csv
from triage.work import runs


def test_formula_cells_are_neutralised_in_csv_only() -> None:
    rows = [{"text": "=HYPERLINK(\"http://evil\")", "n": 1}, {"text": "+1-555", "n": 2}, {"text": "@SUM(A1)", "n": 3},
            {"text": "-2+3", "n": 4}, {"text": "plain", "n": 5}]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["text"] for r in parsed] == ["'=HYPERLINK(\"http://evil\")", "'+1-555", "'@SUM(A1)", "'-2+3", "plain"]
    assert safe_cell(-3) == -3


def test_ticket_export_has_labels_costs_and_safe_cells(db: Database) -> None:
    runs.start_run(db, [("X-1", "=cmd|' /C calc'!A0 my invoice"), (None, "fine ticket")], source="t", actor=LEAD)
    data, name = export.export_tickets(db, "csv", actor=LEAD)
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert name.endswith(".csv") and rows[0]["text"].startswith("'=cmd") and rows[0]["external_id"] == "X-1"
    wanted = {"ticket_id", "category", "confidence", "label_source", "status", "cost_usd", "corrected_by"}
    assert wanted <= rows[0].keys()
    data, name = export.export_tickets(db, "jsonl", actor=LEAD)
    first = json.loads(data.decode().splitlines()[0])
    assert first["text"].startswith("=cmd")  # JSONL keeps the text exactly
