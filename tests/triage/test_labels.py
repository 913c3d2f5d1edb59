"""Bulk operator labels: matching by id and by text, new tickets, rows left out, idempotency, the audit trail,
optimistic concurrency, and the local tier retrained afterwards."""

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import Correction, ModelCall, Ticket
from tests.support.actors import LEAD, lead, op
from tests.support.fakes import ScriptedProvider
from triage import ingest, labels, review, taxonomy
from triage.routing.router import Router
from triage.work import pipeline, runs

TAX = taxonomy.default()
SEED = {  # (external id, text) -> Haiku's answer
    ("T-1", "I was charged twice for my plan"): ("billing", 0.95),
    (None, "the app crashes on upload"): ("billing", 0.6),
    ("T-3", "I cannot log in"): ("technical", 0.8),
}
CSV = (
    "id,text,label\n"
    "T-1,I was charged twice for my plan (edited in the helpdesk),billing\n"  # by id; text differs; label confirmed
    ",the  app   crashes on upload,technical\n"  # by text (whitespace differs), corrects Haiku
    "X-9,I cannot log in,Account\n"  # unknown id: by text; 'Account' is the category account
    "N-1,please add a dark mode,product_feedback\n"  # matches nothing: a new ticket
    "N-2,,billing\n"  # no text
    "N-3,refund me now,Refunds\n"  # outside the taxonomy
    "N-4,where is my invoice,refunds\n"  # outside the taxonomy
    "N-5,something without a label,\n"  # no label
)


@pytest.fixture
def seeded(db: Database) -> tuple[Database, dict[str, int]]:
    texts = {text: answer for (_, text), answer in SEED.items()}
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: texts[t]),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: ("billing", 0.9)), TAX)
    imp = runs.start_run(db, list(SEED), source="seed", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=1))
    return db, dict(zip([t for _, t in SEED], imp.ticket_ids, strict=True))


def parse(text: str = CSV, fmt: str = "csv", **kw: Any) -> ingest.LabelledBatch:
    return ingest.parse_labelled(text, fmt, **kw)


def state(db: Database) -> tuple[dict[int, tuple[Any, ...]], list[tuple[Any, ...]], int | None]:
    with db.read() as s:
        tickets = {t.id: (t.external_id, t.text, t.status, t.category, t.label_source, t.corrected, t.corrected_by,
                          t.version) for t in s.scalars(select(Ticket))}
        audit = [(c.ticket_id, c.previous_label, c.new_label, c.operator, c.source, c.file)
                 for c in s.scalars(select(Correction).order_by(Correction.id))]
        calls = s.scalar(select(func.count()).select_from(ModelCall))
    return tickets, audit, calls


def test_rows_match_by_id_then_by_text_and_the_rest_are_new_or_left_out(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    before, _, calls_before = state(db)
    plan = labels.plan(db, parse(), TAX, "helpdesk.csv")
    c = plan.counts()
    assert (c["rows"], c["matched"], c["by_id"], c["by_text"], c["unchanged"], c["new"]) == (8, 3, 1, 2, 0, 1)
    assert (c["unknown_label"], c["no_text"], c["no_label"], c["conflicting"]) == (2, 1, 1, 0)
    assert plan.unknown_labels == {"Refunds": 1, "refunds": 1}
    assert plan.problems["unknown_label"].examples == ["row 6 (id N-3): 'Refunds'", "row 7 (id N-4): 'refunds'"]
    assert plan.problems["no_text"].examples == ["row 5 (id N-2): no ticket has this id"]
    assert any("the taxonomy has billing, technical, product_feedback, account" in line for line in plan.left_out())
    assert state(db)[0] == before  # planning writes nothing

    result = labels.apply(db, plan, actor=lead("maria"))
    assert (result.labelled, result.created, result.conflicts) == (3, 1, [])
    tickets, audit, calls = state(db)
    crash, login = ids["the app crashes on upload"], ids["I cannot log in"]
    charged = ids["I was charged twice for my plan"]
    assert tickets[charged][3:7] == ("billing", "operator", True, "maria")
    assert tickets[crash][3:7] == ("technical", "operator", True, "maria")
    assert tickets[login][3:7] == ("account", "operator", True, "maria")
    assert tickets[crash][7] == before[crash][7] + 1  # the version moved on (optimistic concurrency)
    (new_id,) = set(tickets) - set(before)
    assert tickets[new_id][:8] == ("N-1", "please add a dark mode", "classified", "product_feedback", "operator",
                                   True, "maria", 1)
    assert calls == calls_before  # no model was called for the new ticket: no cost
    assert len(tickets) == len(before) + 1  # nothing of the rows left out was written
    assert sorted(audit) == sorted([
        (charged, "billing", "billing", "maria", "import", "helpdesk.csv"),  # a confirmation
        (crash, "billing", "technical", "maria", "import", "helpdesk.csv"),
        (login, "technical", "account", "maria", "import", "helpdesk.csv"),
        (new_id, None, "product_feedback", "maria", "import", "helpdesk.csv"),
    ])
    detail = review.detail(db, crash, actor=LEAD)
    assert detail is not None and detail.history[-1]["note"] == "imported from helpdesk.csv"


def test_importing_the_same_file_twice_changes_nothing(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    labels.apply(db, labels.plan(db, parse(), TAX, "helpdesk.csv"), actor=lead("maria"))
    after_first = state(db)
    again = labels.plan(db, parse(), TAX, "helpdesk.csv")
    assert (again.writes, again.unchanged, again.counts()["new"]) == (0, 4, 0)  # the new ticket is now matched by id
    result = labels.apply(db, again, actor=lead("lee"))
    assert (result.labelled, result.created) == (0, 0)
    assert state(db) == after_first  # no label, version or audit row changed


def test_a_different_label_replaces_an_operator_label_and_is_audited(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    labels.apply(db, labels.plan(db, parse(), TAX, "a.csv"), actor=lead("maria"))
    plan = labels.plan(db, parse("text,category\nthe app crashes on upload,account\n"), TAX, "b.csv")
    assert plan.counts()["overrides_operator"] == 1 and "replace another operator's label" in plan.summary()
    labels.apply(db, plan, actor=lead("lee"))
    tickets, audit, _ = state(db)
    assert tickets[ids["the app crashes on upload"]][3] == "account"
    assert audit[-1] == (ids["the app crashes on upload"], "technical", "account", "lee", "import", "b.csv")


def test_a_ticket_changed_after_the_preview_is_left_alone(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    plan = labels.plan(db, parse(), TAX, "helpdesk.csv")
    crash = ids["the app crashes on upload"]
    with db.read() as s:
        version = s.get_one(Ticket, crash).version
    review.correct(db, crash, "account", actor=op("carol"), expected_version=version, taxonomy=TAX)
    result = labels.apply(db, plan, actor=lead("maria"))
    assert result.labelled == 2 and len(result.conflicts) == 1
    assert "changed by carol" in result.conflicts[0] and "import again" in result.summary()
    assert state(db)[0][crash][3] == "account"  # carol's label stands
    again = labels.apply(db, labels.plan(db, parse(), TAX, "helpdesk.csv"), actor=lead("maria"))
    assert again.labelled == 1 and state(db)[0][crash][3] == "technical"  # importing again applies it


def test_conflicting_rows_and_ambiguous_ids_are_reported_not_written(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    runs.start_run(db, [("T-3", "a different text under the same id")], source="other", actor=LEAD)
    text = ("id,text,label\n"
            "T-3,yet another text,billing\n"  # two tickets carry id T-3, neither with this text
            ",please call me back,billing\n"
            ",please   call me back,account\n")  # the same new ticket, two labels
    plan = labels.plan(db, parse(text), TAX, "x.csv")
    c = plan.counts()
    assert (c["ambiguous_id"], c["conflicting"], c["new"], plan.writes) == (1, 2, 0, 0)
    assert plan.problems["conflicting"].examples[0] == "rows 2, 3: 'billing' vs 'account' for the same new ticket"
    assert plan.problems["ambiguous_id"].examples[0].startswith("row 1: id T-3 is on tickets")
    before = state(db)
    labels.apply(db, plan, actor=lead("maria"))
    assert state(db) == before


def test_a_file_of_ids_and_labels_labels_the_tickets_those_ids_name(seeded: tuple[Database, dict[str, int]]) -> None:
    """A helpdesk export of final categories: ids and labels, no text. Known ids are labelled; an id matching
    nothing cannot make a ticket (there is no text to classify or show): reported with examples, not written."""
    db, ids = seeded
    batch = parse("ticket_id,final_category\nT-1,account\nT-3,Account\nZ-1,billing\nZ-2,technical\n,billing\n")
    assert (batch.text_column, batch.id_column, batch.label_column) == (None, "ticket_id", "final_category")
    before = state(db)
    plan = labels.plan(db, batch, TAX, "export.csv")
    c = plan.counts()
    assert (c["matched"], c["by_id"], c["to_label"], c["new"], c["no_text"]) == (2, 2, 2, 0, 3)
    assert plan.problems["no_text"].examples == ["row 5", "row 3 (id Z-1): no ticket has this id",
                                                 "row 4 (id Z-2): no ticket has this id"]
    assert any(line.startswith("3 rows left out, no text: ") for line in plan.left_out())
    assert plan.to_dict()["columns"] == {"text": None, "id": "ticket_id", "label": "final_category"}

    result = labels.apply(db, plan, actor=lead("maria"))
    assert (result.labelled, result.created, result.conflicts) == (2, 0, [])
    tickets, audit, _ = state(db)
    charged, login = ids["I was charged twice for my plan"], ids["I cannot log in"]
    assert tickets[charged][3:7] == ("account", "operator", True, "maria")
    assert tickets[login][3:7] == ("account", "operator", True, "maria")
    assert tickets[charged][1] == before[0][charged][1]  # the ticket keeps its text
    assert set(tickets) == set(before[0])  # no ticket made for the unknown ids
    assert sorted(audit[len(before[1]):]) == sorted([
        (charged, "billing", "account", "maria", "import", "export.csv"),
        (login, "technical", "account", "maria", "import", "export.csv")])
    assert labels.plan(db, batch, TAX, "export.csv").writes == 0  # importing it again changes nothing


def test_an_id_alone_shared_by_several_tickets_is_ambiguous(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    runs.start_run(db, [("T-3", "a different text under the same id")], source="other", actor=LEAD)
    plan = labels.plan(db, parse("id,label\nT-3,billing\n"), TAX, "x.csv")
    assert (plan.counts()["ambiguous_id"], plan.writes) == (1, 0)


def test_a_file_without_text_or_id_column_is_explained() -> None:
    with pytest.raises(ingest.IngestError, match="which column holds the ticket text, or the ticket id"):
        parse("name,label\nx,billing\n")


def test_json_and_jsonl_files_and_the_columns_guessed(seeded: tuple[Database, dict[str, int]]) -> None:
    db, ids = seeded
    rows = [{"ticket_id": "T-1", "body": "whatever", "category": "account"}, {"body": "new one", "category": "billing"}]
    for fmt, text in (("json", json.dumps(rows)), ("jsonl", "\n".join(json.dumps(r) for r in rows))):
        batch = parse(text, fmt)
        assert (batch.text_column, batch.id_column, batch.label_column) == ("body", "ticket_id", "category")
        plan = labels.plan(db, batch, TAX, f"f.{fmt}")
        assert (plan.counts()["by_id"], plan.counts()["new"]) == (1, 1)


def test_bad_label_files_are_explained() -> None:
    with pytest.raises(ingest.IngestError, match="--label-column"):
        parse("id,text\n1,hello\n")
    with pytest.raises(ingest.IngestError, match="no label column 'kind'"):
        parse("text,label\nhello,billing\n", label_column="kind")
    with pytest.raises(ingest.IngestError, match="CSV, JSON or JSONL"):
        parse("hello", "txt")
    with pytest.raises(ingest.IngestError, match="object"):
        parse('["just a string"]', "json")


def test_only_a_lead_may_import_and_a_refusal_writes_nothing(seeded: tuple[Database, dict[str, int]]) -> None:
    from tests.support.actors import op
    from triage.errors import AccessDenied

    db, _ = seeded
    before = state(db)
    with pytest.raises(AccessDenied, match="lead"):
        labels.import_labels(db, parse(), TAX, file="f.csv", actor=op("maria"))
    assert state(db) == before


def test_the_local_tier_retrains_on_the_imported_labels(db: Database) -> None:
    from triage.demo import load_samples
    from triage.local import tier as local

    rows = load_samples()
    picked = [r for c in TAX.names for r in [x for x in rows if x["label"] == c][:8]]
    text = "\n".join(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}) for r in picked)
    result = labels.import_labels(db, parse(text, "jsonl"), TAX, file="history.jsonl", actor=lead("maria"))
    assert result.created == 32
    learned = result.learned
    assert learned is not None
    assert learned.per_category == {c: 8 for c in TAX.names}
    assert learned.human_n == 32 and learned.human_accuracy is not None and 0.0 <= learned.human_accuracy <= 1.0
    assert "retrained on 32 operator labels (billing 8, technical 8, product_feedback 8, account 8)" in learned.text()
    assert "out-of-fold accuracy" in learned.text()
    stored = local.stored_metrics(db)
    assert stored is not None and stored["labels"] == {"operator": 32} and stored["human_n"] == 32
    again = labels.import_labels(db, parse(text, "jsonl"), TAX, file="history.jsonl", actor=lead("maria"))
    assert again.learned is None and local.stored_metrics(db) == stored  # nothing new: no retraining either
