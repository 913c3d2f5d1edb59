import json
from pathlib import Path

import pytest

from db.engine import Database
from triage.ingest import MAX_STORED_CHARS, IngestError, from_paste, parse, read_path, split_pasted


def test_csv_guesses_text_and_id_columns() -> None:
    b = parse("id,subject,body\nT1,Refund,I was charged twice\nT2,Crash,App crashes\n", "csv")
    assert b.items == [("T1", "Refund\n\nI was charged twice"), ("T2", "Crash\n\nApp crashes")]  # issue 27


def test_csv_explicit_columns_quotes_and_semicolons() -> None:
    text = 'ref;msg\n7;"Line one\nline two; with semicolon"\n8;"He said ""hi"""\n'
    b = parse(text, "csv", text_column="msg", id_column="ref")
    assert b.items == [("7", "Line one\nline two; with semicolon"), ("8", 'He said "hi"')]


def test_csv_errors_are_clear() -> None:
    with pytest.raises(IngestError, match="columns are: a, b"):
        parse("a,b\n1,2\n", "csv")
    with pytest.raises(IngestError, match="no text column 'body'"):
        parse("text\nhello\n", "csv", text_column="body")
    with pytest.raises(IngestError, match="empty"):
        parse("", "csv")


def test_empty_rows_are_reported_not_silently_dropped() -> None:
    b = parse("text\nhello\n\"\"\nworld\n", "csv")
    assert [t for _, t in b.items] == ["hello", "world"] and b.skipped == ["row 2 (line 3): empty 'text'"]


def test_json_and_jsonl_shapes() -> None:
    assert parse(json.dumps(["a", "b"]), "json").items == [(None, "a"), (None, "b")]
    assert parse(json.dumps({"tickets": [{"id": 1, "text": "x"}]}), "json").items == [("1", "x")]
    assert parse('{"message": "m1"}\n\n{"message": "m2", "id": "9"}\n', "jsonl").items == [(None, "m1"), ("9", "m2")]
    bad_line = parse('{"text": "ok"}\n{oops\n', "jsonl")
    assert bad_line.items == [(None, "ok")] and bad_line.skipped[0].startswith("line 2: not valid JSON")
    with pytest.raises(IngestError, match="invalid JSON"):
        parse("[1,", "json")
    with pytest.raises(IngestError, match="list of tickets"):
        parse('{"a": 1}', "json")
    assert parse("[1, 2]", "json").skipped == ["item 1: not a ticket (a string, or an object with a text field)",
                                               "item 2: not a ticket (a string, or an object with a text field)"]


def test_plain_text_and_pasted_text() -> None:
    assert parse("one\n\n two \n", "txt").items == [(None, "one"), (None, "two")]
    assert split_pasted("a\nb\nc") == ["a", "b", "c"]
    assert split_pasted("first line\nstill first\n\nsecond") == ["first line\nstill first", "second"]
    assert split_pasted("  \n ") == []


def test_files_encoding_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes("\ufefftext\nCafé crème\n".encode())
    assert read_path(str(p)).items == [(None, "Café crème")]
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(IngestError, match="not UTF-8"):
        read_path(str(bad))
    with pytest.raises(IngestError, match="no such file"):
        read_path(str(tmp_path / "nope.csv"))
    with pytest.raises(IngestError, match="unsupported format"):
        parse("x", "xlsx")


BIG = "x" * (MAX_STORED_CHARS + 5000)


def test_an_over_long_ticket_is_cut_the_same_way_in_every_format() -> None:
    files = {
        "csv": f"id,text\nA,{BIG}\nB,short one\n",
        "json": json.dumps([{"id": "A", "text": BIG}, {"id": "B", "text": "short one"}]),
        "jsonl": json.dumps({"id": "A", "text": BIG}) + "\n" + json.dumps({"id": "B", "text": "short one"}) + "\n",
        "txt": f"{BIG}\nshort one\n",
    }
    for fmt, text in files.items():
        b = parse(text, fmt)
        assert [len(t) for _, t in b.items] == [MAX_STORED_CHARS, len("short one")], fmt
        assert len(b.cut) == 1 and f"{MAX_STORED_CHARS:,}" in b.cut[0] and not b.skipped, (fmt, b.cut, b.skipped)
        assert b.report == [f"cut {b.cut[0]}"]
    pasted = from_paste(f"{BIG}\n\nshort one")
    assert [len(t) for _, t in pasted.items] == [MAX_STORED_CHARS, 9] and pasted.cut[0].startswith("ticket 1:")


def test_one_bad_row_is_named_and_skipped_never_the_whole_file() -> None:
    jsonl = "\n".join(['{"text": "fine one"}', '{"text": "lone \\ud800 surrogate"}', '{"text": {"nested": 1}}',
                       '{"text": ["a", "list"]}', '{"text": "nul \\u0000 byte"}', '[[[[[[' * 5000,
                       '{"text": "fine two", "id": {"x": 1}}', '{"text": "fine three"}'])
    b = parse(jsonl, "jsonl")
    assert b.items == [(None, "fine one"), (None, "fine three")]
    assert [s.split(":")[0] for s in b.skipped] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "lone surrogate (U+D800)" in b.skipped[0] and "object" in b.skipped[1] and "list" in b.skipped[2]
    assert "NUL" in b.skipped[3] and "id is an object" in b.skipped[5]
    mixed = parse(json.dumps(["plain string", {"text": "object one", "id": 7}, 42, None]), "json")
    assert mixed.items == [(None, "plain string"), ("7", "object one")] and len(mixed.skipped) == 2
    long_id = parse(f"id,text\n{'9' * 300},hello\nok,fine\n", "csv")
    assert long_id.items == [("ok", "fine")] and "id is longer than 255" in long_id.skipped[0]


def test_csv_broken_quoting_skips_that_row_and_never_swallows_the_next_ones() -> None:
    unclosed = 'id,text\n1,"this quote never closes\n2,second ticket\n3,third ticket\n'
    b = parse(unclosed, "csv")
    assert b.items == [("2", "second ticket"), ("3", "third ticket")]
    assert b.skipped[0].startswith("row 1 (line 2): broken quoting")
    closed_later = 'id,text\n1,"opens here\n2,second\n3,"third"\n4,fourth\n'
    b = parse(closed_later, "csv")
    assert ("2", "second") in b.items and ("4", "fourth") in b.items and len(b.items) == 3
    assert not any("opens here" in t for _, t in b.items)
    assert parse('id,text\n1,"multi\nline, fine"\n2,next\n', "csv").items == [("1", "multi\nline, fine"),
                                                                             ("2", "next")]
    too_many = parse("id,text\n1,hello, world\n2,fine\n", "csv")
    assert too_many.items == [("2", "fine")] and "3 fields where the header has 2" in too_many.skipped[0]


def test_an_over_long_csv_field_is_a_long_ticket_not_a_rejected_file() -> None:
    b = parse(f"id,text\nA,\"{'y' * 1_000_000}\"\nB,ok\n", "csv")
    assert [(i, len(t)) for i, t in b.items] == [("A", MAX_STORED_CHARS), ("B", 2)] and len(b.cut) == 1


def test_stdin_gets_the_utf8_check_of_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    class Stdin:
        buffer = io.BytesIO("caf\xe9\n".encode("latin-1"))

    monkeypatch.setattr(sys, "stdin", Stdin())
    with pytest.raises(IngestError, match="not UTF-8"):
        read_path("-")


def test_preview_counts_known_tickets_of_a_hostile_file(db: Database) -> None:
    from triage.work import runs

    batch = parse('{"text": "ok \\ud83d"}\n{"text": "fine"}\n', "jsonl")  # half an emoji: a lone surrogate
    assert runs.count_known(db, batch.items) == 0 and batch.items == [(None, "fine")]
