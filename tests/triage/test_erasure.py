"""Erasure on request (issue 21, item 2): `triage erase --ticket ID... --yes` blanks a ticket's text, deletes its
vectors, blanks the model's reasons and corrections' notes; the ticket stays with its labels, calls and costs, so
`triage spend` and `triage quality` print the same figures. The bytes are gone from the SQLite file and its WAL
(read directly), another ticket's text is still there; a dry run changes nothing; every erasure is audited with
the criterion hashed; only a lead may erase."""

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from db import vectors
from db.engine import Database
from db.models import AuditEvent, Correction, ModelCall, Ticket, TicketVector
from tests.support.actors import LEAD, OPERATOR
from tests.support.fake_anthropic import FakeAnthropic
from triage import privacy, review, taxonomy
from triage.cli import main
from triage.errors import AccessDenied, InputError

TAX = taxonomy.default()
SECRET = "Zebraquux Wellington-Smythe"  # the customer's words, as they must disappear
KEPT = "Kangaroo Oberholtzer-Vance"


def setup_tickets(env: dict[str, str], db: Database, tmp_path: Path) -> dict[str, int]:
    src = tmp_path / "t.txt"
    long = f" {SECRET} wrote again." * 400  # past a page: the text also lives on overflow pages
    src.write_text(f"{SECRET} was charged twice on the invoice, please refund{long}\n"
                   f"{KEPT} cannot log in to the account\n"
                   "the app crashes on upload\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    with db.read() as s:
        ids = {t.text.split(" was")[0].split(" cannot")[0]: t.id for t in s.scalars(select(Ticket))}
        tickets = {t.id: t for t in s.scalars(select(Ticket))}
    secret_id, kept_id = ids[SECRET], ids[KEPT]
    with db.transaction() as s:  # what the local tier and the model's reasons would hold
        vectors.store(s, {secret_id: SECRET.encode() * 4, kept_id: KEPT.encode() * 4}, "test-model")
        # plain SQL updates, as the table's own were: nothing in the session to keep in step
        s.execute(update(ModelCall).where(ModelCall.ticket_id.in_([secret_id, kept_id])).values(
            reason=ModelCall.ticket_id.cast(ModelCall.reason.type) + " says " + SECRET)
            .execution_options(synchronize_session=False))
        s.execute(update(ModelCall).where(ModelCall.ticket_id == kept_id).values(reason="about " + KEPT)
                  .execution_options(synchronize_session=False))
    review.correct(db, secret_id, "account", actor=LEAD, expected_version=tickets[secret_id].version, taxonomy=TAX,
                   note=f"customer {SECRET} phoned")
    return {"secret": secret_id, "kept": kept_id}


def file_bytes(db_url: str) -> bytes:
    path = Path(db_url.removeprefix("sqlite:///"))
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def figures(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    capsys.readouterr()
    assert main(["spend", "--json"]) == 0
    spend = json.loads(capsys.readouterr().out)
    assert main(["quality", "--json"]) == 0
    return spend, json.loads(capsys.readouterr().out)


def test_erase_removes_the_text_from_the_file_and_keeps_every_figure(env: dict[str, str], fake: FakeAnthropic,
                                                                     db: Database, db_url: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ids = setup_tickets(env, db, tmp_path)
    assert SECRET.encode() in file_bytes(db_url)
    with db.engine.connect() as c:  # freed bytes overwritten, whatever the SQLite build's default
        assert c.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    with db.read() as s:
        before = {t.id: (t.status, t.category, t.label_source, t.corrected) for t in s.scalars(select(Ticket))}
        calls_before = [(c.id, c.ticket_id, c.cost_pico, c.input_tokens, c.output_tokens, c.category, c.confidence)
                        for c in s.scalars(select(ModelCall).order_by(ModelCall.id))]
    spend, quality = figures(capsys)

    assert main(["erase", "--ticket", str(ids["secret"])]) == 0  # without --yes: what would go, nothing changes
    out = capsys.readouterr().out
    assert "would erase 1 ticket(s)" in out and "1 stored vector(s)" in out and "1 correction note(s)" in out
    assert "nothing changed" in out
    with db.read() as s:
        assert SECRET in s.get_one(Ticket, ids["secret"]).text

    assert main(["erase", "--ticket", str(ids["secret"]), "--yes", "--operator", "maria"]) == 0
    assert "erased 1 ticket(s)" in capsys.readouterr().out
    raw = file_bytes(db_url)
    for needle in (SECRET, "Zebraquux", "Wellington-Smythe"):
        assert needle.encode() not in raw and needle.encode("utf-16-le") not in raw, needle
    assert KEPT.encode() in raw  # another ticket's text is still there

    with db.read() as s:
        t = s.get_one(Ticket, ids["secret"])
        assert t.text == "" and t.text_hash is None
        assert before[t.id] == (t.status, t.category, t.label_source, t.corrected)  # its labels stay
        assert all(c.reason is None for c in s.scalars(select(ModelCall).where(ModelCall.ticket_id == t.id)))
        assert all(c.note is None for c in s.scalars(select(Correction).where(Correction.ticket_id == t.id)))
        assert s.get(TicketVector, t.id) is None and s.get(TicketVector, ids["kept"]) is not None
        assert KEPT in s.get_one(Ticket, ids["kept"]).text
        assert [(c.id, c.ticket_id, c.cost_pico, c.input_tokens, c.output_tokens, c.category, c.confidence)
                for c in s.scalars(select(ModelCall).order_by(ModelCall.id))] == calls_before
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == privacy.ERASE)).all()
    assert figures(capsys) == (spend, quality)  # Spend and Quality print the same figures

    detail = json.loads(event.detail)
    assert event.actor == "maria" and detail["tickets"] == 1 and detail["vectors"] == 1 and detail["notes"] == 1
    unsalted = hashlib.sha256(f"tickets:{ids['secret']}".encode()).hexdigest()
    assert len(detail["criterion"]) == 64 and detail["criterion"] != unsalted  # salted: no guessing it back
    assert SECRET not in event.detail

    assert main(["erase", "--ticket", str(ids["secret"]), "--yes"]) == 0  # twice: nothing left, says so
    out = capsys.readouterr().out
    assert "erased 0 ticket(s)" in out and "1 erased before" in out


def test_an_unknown_or_busy_ticket_is_refused_and_nothing_is_erased(env: dict[str, str], fake: FakeAnthropic,
                                                                    db: Database, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ids = setup_tickets(env, db, tmp_path)
    assert main(["erase", "--ticket", str(ids["secret"]), "999999", "--yes"]) == 2
    assert "no such ticket: 999999" in capsys.readouterr().err
    with db.transaction() as s:
        s.get_one(Ticket, ids["kept"]).status = "pending"
    assert main(["erase", "--ticket", str(ids["secret"]), str(ids["kept"]), "--yes"]) == 2
    assert "pending or being classified" in capsys.readouterr().err
    with db.read() as s:
        assert SECRET in s.get_one(Ticket, ids["secret"]).text
        assert not s.scalars(select(AuditEvent).where(AuditEvent.event == privacy.ERASE)).all()


def test_only_a_lead_may_erase(env: dict[str, str], fake: FakeAnthropic, db: Database, tmp_path: Path) -> None:
    ids = setup_tickets(env, db, tmp_path)
    with pytest.raises(AccessDenied):
        privacy.erase_tickets(db, [ids["secret"]], actor=OPERATOR)
    with pytest.raises(InputError):
        privacy.erase_tickets(db, [], actor=LEAD)
    with db.read() as s:
        assert SECRET in s.get_one(Ticket, ids["secret"]).text


def test_an_erased_ticket_is_never_sent_again_by_retry_or_escalation(env: dict[str, str], fake: FakeAnthropic,
                                                                     db: Database, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.txt"
    src.write_text(f"{SECRET} wants a refund [[status=400]]\n{KEPT} wants a refund\n")
    main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")])
    with db.read() as s:
        failed = {t.id: t.status for t in s.scalars(select(Ticket))}
        secret_id = next(t.id for t in s.scalars(select(Ticket)) if SECRET in t.text)
    assert failed[secret_id] == "failed"
    assert main(["erase", "--ticket", str(secret_id), "--yes"]) == 0
    sent = len(fake.requests)
    main(["retry"])
    main(["escalate", "--id", str(secret_id)])
    assert len(fake.requests) == sent  # nothing with an empty text went out
    with db.read() as s:
        t = s.get_one(Ticket, secret_id)
        assert (t.text, t.status) == ("", "failed")
