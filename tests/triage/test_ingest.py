import json

import pytest

from triage.ingest import IngestError, parse, read_path, split_pasted


def test_csv_guesses_text_and_id_columns():
    b = parse("id,subject,body\nT1,Refund,I was charged twice\nT2,Crash,App crashes\n", "csv")
    assert b.items == [("T1", "I was charged twice"), ("T2", "App crashes")]


def test_csv_explicit_columns_quotes_and_semicolons():
    text = 'ref;msg\n7;"Line one\nline two; with semicolon"\n8;"He said ""hi"""\n'
    b = parse(text, "csv", text_column="msg", id_column="ref")
    assert b.items == [("7", "Line one\nline two; with semicolon"), ("8", 'He said "hi"')]


def test_csv_errors_are_clear():
    with pytest.raises(IngestError, match="columns are: a, b"):
        parse("a,b\n1,2\n", "csv")
    with pytest.raises(IngestError, match="no text column 'body'"):
        parse("text\nhello\n", "csv", text_column="body")
    with pytest.raises(IngestError, match="empty"):
        parse("", "csv")


def test_empty_rows_are_reported_not_silently_dropped():
    b = parse("text\nhello\n\"\"\nworld\n", "csv")
    assert [t for _, t in b.items] == ["hello", "world"] and b.skipped == ["row 2: empty 'text'"]


def test_json_and_jsonl_shapes():
    assert parse(json.dumps(["a", "b"]), "json").items == [(None, "a"), (None, "b")]
    assert parse(json.dumps({"tickets": [{"id": 1, "text": "x"}]}), "json").items == [("1", "x")]
    assert parse('{"message": "m1"}\n\n{"message": "m2", "id": "9"}\n', "jsonl").items == [(None, "m1"), ("9", "m2")]
    with pytest.raises(IngestError, match="line 2"):
        parse('{"text": "ok"}\n{oops\n', "jsonl")
    with pytest.raises(IngestError, match="invalid JSON"):
        parse("[1,", "json")
    with pytest.raises(IngestError, match="list of tickets"):
        parse('{"a": 1}', "json")
    with pytest.raises(IngestError, match="string or an object"):
        parse("[1, 2]", "json")


def test_plain_text_and_pasted_text():
    assert parse("one\n\n two \n", "txt").items == [(None, "one"), (None, "two")]
    assert split_pasted("a\nb\nc") == ["a", "b", "c"]
    assert split_pasted("first line\nstill first\n\nsecond") == ["first line\nstill first", "second"]
    assert split_pasted("  \n ") == []


def test_files_encoding_and_missing(tmp_path):
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
