"""What was masked, shown and stored (issue 21, item 2): the spans under the policy in force, rendered escaped;
`masked_count` counted at import and the review queue's filter on it; `mask_store` keeps only the masked text
(the original value is nowhere in the SQLite file); exports offer the masked text (`triage export --masked`)."""

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard.ui import masked_html
from db.engine import Database
from db.models import AuditEvent, Ticket
from tests.support.actors import LEAD
from tests.triage.test_erasure import file_bytes
from triage import audit, export, ingest, privacy, review
from triage import settings as config
from triage.cli import main
from triage.domain import ReviewFilter
from triage.routing import redact
from triage.work import runs

CARD = "4111 1111 1111 1111"
EMAIL = "anna.k@example.com"
TEXTS = [f"charged twice on card {CARD}, write to {EMAIL}", "the app crashes on upload", f"reply to {EMAIL} please"]


def test_spans_name_each_masked_value_with_its_place_and_placeholder() -> None:
    found = privacy.spans(TEXTS[0], redact.DEFAULT_POLICY)
    assert found.count == 2
    assert [(s.kind, TEXTS[0][s.start:s.end], s.placeholder) for s in found.spans] == [
        ("CARD", CARD, "[CARD]"), ("EMAIL", EMAIL, "[EMAIL]")]
    assert found.masked_text == "charged twice on card [CARD], write to [EMAIL]"
    assert privacy.spans(TEXTS[0], redact.MaskPolicy(emails=False)).count == 1  # the policy in force decides


def test_a_hostile_ticket_is_rendered_as_typed_with_its_masked_values_marked() -> None:
    hostile = ('<script>alert(1)</script><img src=x onerror="alert(2)"> **bold** [x](javascript:alert(3)) &amp; '
               f"mail {EMAIL}\n\n<div>second paragraph</div>")
    out = masked_html(privacy.spans(hostile, redact.DEFAULT_POLICY))
    assert out.count("<mark") == 1 and f">{EMAIL}</mark>" in out
    for tag in ("<script", "<img", "<div>second", "<a "):
        assert tag not in out, tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "&amp;amp;" in out and "**bold**" in out
    assert 'title="EMAIL: sent as [EMAIL]"' in out
    short = masked_html(privacy.spans(TEXTS[0], redact.DEFAULT_POLICY), limit=30)
    assert f">{CARD}</mark>" in short and EMAIL not in short and short.endswith("…</div>")


def test_masked_count_is_stored_at_import_and_the_review_queue_filters_on_it(db: Database) -> None:
    imported = runs.start_run(db, [(None, t) for t in TEXTS], source="t", actor=LEAD, mode="local")
    with db.read() as s:
        counts = {t.id: t.masked_count for t in s.scalars(select(Ticket))}
        assert [s.get_one(Ticket, i).text for i in imported.ticket_ids] == TEXTS  # stored as written by default
    assert [counts[i] for i in imported.ticket_ids] == [2, 0, 1]
    page = review.page(db, ReviewFilter(masked=True), actor=LEAD)
    assert sorted(r.id for r in page.rows) == sorted([imported.ticket_ids[0], imported.ticket_ids[2]])
    assert page.total == 2
    assert review.page(db, ReviewFilter(), actor=LEAD).total == 3
    detail = review.detail(db, imported.ticket_ids[0], actor=LEAD)
    assert detail is not None and detail.ticket.masked_count == 2


def test_mask_store_keeps_only_the_masked_text(db: Database, db_url: str) -> None:
    config.save_engine(db, actor=LEAD, mask_store="on")
    assert config.effective(db)[0].mask_store is True
    imported = runs.start_run(db, [("T-1", TEXTS[0]), ("T-2", TEXTS[2])], source="t", actor=LEAD, mode="local")
    raw = file_bytes(db_url)
    for value in (CARD, CARD.replace(" ", ""), EMAIL, "anna.k"):
        assert value.encode() not in raw and value.encode("utf-16-le") not in raw, value
    with db.read() as s:
        stored = [s.get_one(Ticket, i) for i in imported.ticket_ids]
    assert [t.text for t in stored] == ["charged twice on card [CARD], write to [EMAIL]", "reply to [EMAIL] please"]
    assert [t.masked_count for t in stored] == [2, 1]
    assert runs.count_known(db, [("T-1", TEXTS[0])]) == 1  # the same ticket again is known, not new
    again = runs.start_run(db, [("T-1", TEXTS[0])], source="t", actor=LEAD, mode="local")
    assert again.known_ids == [imported.ticket_ids[0]] and not again.new_ids


def test_mask_store_is_refused_unless_on_or_off(db: Database) -> None:
    import pytest

    from triage.errors import InputError

    with pytest.raises(InputError, match="mask_store is on or off"):
        config.save_engine(db, actor=LEAD, mask_store="maybe")
    assert config.Settings.from_env({"TRIAGE_MASK_STORE": "1"}).mask_store is True


def test_export_offers_the_masked_text(db: Database) -> None:
    runs.start_run(db, [(None, t) for t in TEXTS], source="t", actor=LEAD, mode="local")
    data, name = export.export_tickets(db, "csv", actor=LEAD, masked=True)
    text = data.decode()
    assert name.endswith(".csv") and EMAIL not in text and CARD not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["text"] == "charged twice on card [CARD], write to [EMAIL]"
    plain, _ = export.export_tickets(db, "jsonl", actor=LEAD)
    assert EMAIL in plain.decode()  # without the option: the text as stored
    with db.read() as s:
        details = [json.loads(e.detail) for e in s.scalars(select(AuditEvent).where(AuditEvent.event == audit.EXPORT))]
    assert [d.get("masked", False) for d in details] == [True, False]


def test_triage_export_writes_masked_text(cli_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs.start_run(cli_db, [(None, t) for t in TEXTS], source="t", actor=LEAD, mode="local")
    out = tmp_path / "all.jsonl"
    assert main(["export", "--out", str(out), "--masked"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(EMAIL not in r["text"] for r in rows)
    assert "[EMAIL]" in rows[2]["text"] and "(masked text)" in capsys.readouterr().out
    assert main(["export", "--out", str(tmp_path / "all.txt")]) == 2


def test_the_requester_column_is_read_and_never_guessed() -> None:
    text = "id,text,email\n1,hello there,Anna@Example.com \n2,second one,\n"
    batch = ingest.parse(text, "csv", requester_column="email")
    assert batch.requesters == ["Anna@Example.com", None] and batch.has_requesters
    assert not ingest.parse(text, "csv").has_requesters  # never guessed
    jsonl = '{"text": "hi", "from": "b@c.de"}\n{"text": "yo"}\n'
    assert ingest.parse(jsonl, "jsonl", requester_column="from").requesters == ["b@c.de", None]
    import pytest

    with pytest.raises(ingest.IngestError, match="no requester column"):
        ingest.parse(text, "csv", requester_column="mail")
    with pytest.raises(ingest.IngestError, match="requester column needs CSV"):
        ingest.parse("just text", "txt", requester_column="mail")
    assert privacy.requester_key("s", " Anna@Example.com") == privacy.requester_key("s", "anna@example.com")
    assert privacy.requester_key("s", "anna@example.com") != privacy.requester_key("t", "anna@example.com")
    assert privacy.requester_key("s", "  ") is None


def test_labelled_imports_store_new_tickets_as_an_import_does(db: Database, db_url: str) -> None:
    from triage import labels, taxonomy

    config.save_engine(db, actor=LEAD, mask_store="on")
    plan = labels.plan(db, ingest.parse_labelled(f"id,text,label\nL-1,card {CARD} was charged twice,billing\n",
                                                 "csv"), taxonomy.default(), file="history.csv")
    assert labels.apply(db, plan, actor=LEAD).created == 1
    with db.read() as s:
        t = s.scalars(select(Ticket)).one()
    assert (t.text, t.masked_count, t.category) == ("card [CARD] was charged twice", 1, "billing")
    assert CARD.encode() not in file_bytes(db_url)


def test_the_economy_route_imports_as_a_run_does(db: Database, db_url: str) -> None:
    from triage import taxonomy
    from triage.settings import Settings
    from triage.work import classify

    config.save_engine(db, actor=LEAD, mask_store="on")
    settings, _ = config.effective(db, Settings(api_key="sk-test"))
    started = classify.start(db, settings, taxonomy.default(), [("E-1", TEXTS[0])], actor=LEAD, source="dashboard",
                             route="auto", batch=True, background=True, requesters=["Anna@Example.com"])
    assert started.batch
    with db.read() as s:
        t = s.scalars(select(Ticket)).one()
    assert (t.text, t.masked_count) == ("charged twice on card [CARD], write to [EMAIL]", 2)
    with db.transaction() as s:
        from db import privacy as db_privacy

        assert t.requester_hash == privacy.requester_key(db_privacy.salt(s), "anna@example.com")
    assert CARD.encode() not in file_bytes(db_url) and b"Anna@Example.com" not in file_bytes(db_url)
