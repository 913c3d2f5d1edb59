"""Erasure by customer (issue 21, item 4): tickets imported with a requester column (`triage classify
--requester-column`) keep the requester only as a keyed hash, and `triage erase --requester EMAIL --yes` erases
every ticket of that customer (any case and spacing of the address): no byte of their text is left in the SQLite
file or its WAL, another customer's tickets and every spend and quality figure stay, and the audit event keeps a
salted hash of the criterion, never the address."""

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent, ModelCall, Ticket
from tests.support.fake_anthropic import FakeAnthropic
from tests.triage.test_erasure import figures, file_bytes
from triage import privacy
from triage.cli import main

SECRET = "Quixotic Featherstonehaugh"  # words only Anna's tickets hold
KEPT = "Bartholomew Underhill-Grey"


def import_with_requesters(tmp_path: Path) -> None:
    src = tmp_path / "tickets.csv"
    long = f" {SECRET} again." * 300  # overflow pages too
    src.write_text("id,requester,text\n"
                   f"A-1,anna@example.com,{SECRET} was charged twice please refund{long}\n"
                   f"A-2, Anna@Example.COM ,{SECRET} cannot log in since yesterday\n"
                   f"B-1,bob@example.org,{KEPT} says the app crashes on upload\n"
                   "C-1,,nobody signed this one about an invoice\n")
    assert main(["classify", str(src), "--requester-column", "requester", "--out", str(tmp_path / "o.jsonl")]) == 0


def test_erase_by_requester_leaves_no_byte_and_keeps_every_figure(env: dict[str, str], fake: FakeAnthropic,
                                                                  db: Database, db_url: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import_with_requesters(tmp_path)
    raw = file_bytes(db_url)
    assert SECRET.encode() in raw
    for address in (b"anna@example.com", b"Anna@Example.COM", b"bob@example.org"):
        assert address not in raw  # the address is never stored, only its keyed hash
    with db.read() as s:
        tickets = {t.external_id: t for t in s.scalars(select(Ticket))}
        calls_before = [(c.id, c.ticket_id, c.cost_pico, c.input_tokens, c.output_tokens, c.category)
                        for c in s.scalars(select(ModelCall).order_by(ModelCall.id))]
    anna = tickets["A-1"].requester_hash
    assert anna and anna == tickets["A-2"].requester_hash != tickets["B-1"].requester_hash
    assert tickets["C-1"].requester_hash is None
    assert anna != hashlib.sha256(b"anna@example.com").hexdigest()  # keyed: not a plain hash of the address
    spend, quality = figures(capsys)

    assert main(["erase", "--requester", "ANNA@example.com "]) == 0  # a dry run: what would go
    out = capsys.readouterr().out
    assert "would erase 2 ticket(s)" in out and "nothing changed" in out
    assert SECRET.encode() in file_bytes(db_url)

    assert main(["erase", "--requester", " Anna@Example.com", "--yes", "--operator", "maria"]) == 0
    assert "erased 2 ticket(s)" in capsys.readouterr().out
    raw = file_bytes(db_url)
    for needle in (SECRET, "Quixotic", "Featherstonehaugh"):
        assert needle.encode() not in raw and needle.encode("utf-16-le") not in raw, needle
    assert KEPT.encode() in raw and b"nobody signed this one" in raw  # other customers' tickets stay
    assert anna.encode() not in raw  # the requester's key went with the text

    with db.read() as s:
        after = {t.external_id: t for t in s.scalars(select(Ticket))}
        assert after["A-1"].text == after["A-2"].text == "" and after["A-1"].requester_hash is None
        assert KEPT in after["B-1"].text and after["B-1"].requester_hash == tickets["B-1"].requester_hash
        assert [(c.id, c.ticket_id, c.cost_pico, c.input_tokens, c.output_tokens, c.category)
                for c in s.scalars(select(ModelCall).order_by(ModelCall.id))] == calls_before
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == privacy.REQUESTER)).all()
    assert figures(capsys) == (spend, quality)
    detail = json.loads(event.detail)
    assert event.actor == "maria" and detail["tickets"] == 2 and len(detail["criterion"]) == 64
    assert "anna" not in event.detail.lower() and SECRET not in event.detail
    assert detail["criterion"] != hashlib.sha256(b"requester:anna@example.com").hexdigest()

    assert main(["erase", "--requester", "anna@example.com", "--yes"]) == 2  # nothing of hers is left to find
    assert "no ticket was imported with this requester" in capsys.readouterr().err


def test_reimporting_with_a_requester_links_the_known_tickets(env: dict[str, str], fake: FakeAnthropic, db: Database,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "plain.csv"
    src.write_text("id,text\nA-1,my card was charged twice\n")
    assert main(["classify", str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    with db.read() as s:
        assert s.scalars(select(Ticket.requester_hash)).one() is None
    src.write_text("id,text,email\nA-1,my card was charged twice,anna@example.com\n")
    assert main(["classify", str(src), "--requester-column", "email", "--out", str(tmp_path / "o.jsonl")]) == 0
    capsys.readouterr()
    assert main(["erase", "--requester", "anna@example.com", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tickets"] == [1]


def test_an_unknown_requester_column_or_address_is_refused(env: dict[str, str], fake: FakeAnthropic, db: Database,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.csv"
    src.write_text("id,text\n1,hello there\n")
    assert main(["classify", str(src), "--requester-column", "email"]) == 2
    assert "no requester column 'email'" in capsys.readouterr().err
    assert main(["erase", "--requester", "  ", "--yes"]) == 2
    assert "e-mail address" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # one criterion at a time (argparse)
        main(["erase", "--ticket", "1", "--requester", "a@b.co"])
    assert exc.value.code == 2 and "not allowed with argument --ticket" in capsys.readouterr().err
