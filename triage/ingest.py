"""Read tickets from CSV, JSON, JSONL or plain text. Bad input raises IngestError with a clear message."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from triage.errors import InputError

TEXT_COLUMNS = ("text", "ticket", "body", "message", "description", "content", "comment", "subject")
ID_COLUMNS = ("id", "ticket_id", "external_id", "key", "number")
MAX_TICKET_CHARS = 100_000
FORMATS = ("csv", "json", "jsonl", "txt")


class IngestError(InputError):
    """A file or paste that cannot be read; the message says where and why."""


@dataclass
class Batch:
    items: list[tuple[str | None, str]]  # (external id or None, text)
    skipped: list[str] = field(default_factory=list)  # why rows were left out, one line each
    columns: list[str] = field(default_factory=list)


def detect_format(name: str) -> str:
    ext = Path(name).suffix.lower().lstrip(".")
    return {"tsv": "csv", "ndjson": "jsonl", "text": "txt", "": "txt"}.get(ext, ext)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again") from exc


def read_path(path: str, fmt: str | None = None, **kw) -> Batch:
    if path == "-":
        return parse(sys.stdin.read(), fmt or "txt", **kw)
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {path}")
    return parse(decode(p.read_bytes()), fmt or detect_format(p.name), **kw)


def parse(text: str, fmt: str, *, text_column: str | None = None, id_column: str | None = None) -> Batch:
    if fmt not in FORMATS:
        raise IngestError(f"unsupported format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return _csv(text, text_column, id_column)
    if fmt in ("json", "jsonl"):
        return _records(_load_records(text, fmt), text_column, id_column)
    return Batch([(None, line.strip()) for line in text.splitlines() if line.strip()])


def columns_of(text: str, fmt: str) -> list[str]:
    """The columns (CSV) or fields (JSON/JSONL objects) a file offers, for picking the text and id columns."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
        return [c for c in (reader.fieldnames or []) if c is not None]
    if fmt in ("json", "jsonl"):
        return list(dict.fromkeys(k for r in _load_records(text, fmt) if isinstance(r, dict) for k in r))
    return []


def _load_records(text: str, fmt: str) -> list:
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        if isinstance(data, dict):
            data = data.get("tickets", data.get("items"))
        if not isinstance(data, list):
            raise IngestError('JSON must be a list of tickets, or an object with a "tickets" list')
        return data
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IngestError(f"line {n} is not valid JSON: {exc.msg}") from exc
    return records


def read_labelled(path: str, text_column: str = "text", label_column: str = "label") -> list[tuple[str, str]]:
    """(text, label) rows of a gold file (CSV, JSON or JSONL)."""
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {path}")
    fmt = detect_format(p.name)
    text = decode(p.read_bytes())
    if fmt == "csv":
        records = list(csv.DictReader(io.StringIO(text), dialect=_dialect(text)))
    elif fmt in ("json", "jsonl"):
        records = _load_records(text, fmt)
    else:
        raise IngestError("a gold file must be CSV, JSON or JSONL with text and label columns")
    rows = []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict) or text_column not in r or label_column not in r:
            raise IngestError(f"row {n} needs both {text_column!r} and {label_column!r}")
        if str(r[text_column] or "").strip():
            rows.append((str(r[text_column]).strip(), str(r[label_column] or "").strip()))
    return rows


def guess_column(columns: list[str], kind: str) -> str | None:
    return _pick(columns, None, TEXT_COLUMNS if kind == "text" else ID_COLUMNS, kind)


def split_pasted(text: str) -> list[str]:
    """Pasted tickets: separated by blank lines when there are any, else one per line."""
    text = text.strip()
    if not text:
        return []
    if re.search(r"\n\s*\n", text):
        return [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str | None:
    if wanted:
        if wanted not in columns:
            raise IngestError(f"no {what} column {wanted!r}; columns are: {', '.join(columns) or '(none)'}")
        return wanted
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _dialect(text: str):
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _csv(text: str, text_column: str | None, id_column: str | None) -> Batch:
    reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    if not columns:
        raise IngestError("the CSV file is empty or has no header row")
    tcol = _pick(columns, text_column, TEXT_COLUMNS, "text")
    if tcol is None:
        if len(columns) == 1:
            tcol = columns[0]
        else:
            raise IngestError(f"which column holds the ticket text? Pass --text-column; columns are: "
                              f"{', '.join(columns)}")
    icol = _pick(columns, id_column, ID_COLUMNS, "id")
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise IngestError(f"the CSV file is malformed: {exc}") from exc
    return _collect(rows, tcol, icol, columns)


def _records(records: list, text_column: str | None, id_column: str | None) -> Batch:
    if all(isinstance(r, str) for r in records):
        return Batch([(None, r.strip()) for r in records if r.strip()])
    dicts = [r for r in records if isinstance(r, dict)]
    if len(dicts) != len(records):
        raise IngestError("each ticket must be a string or an object with a text field")
    columns = list(dict.fromkeys(k for r in dicts for k in r))
    tcol = _pick(columns, text_column, TEXT_COLUMNS, "text")
    if tcol is None:
        raise IngestError(f"which field holds the ticket text? Pass --text-column; fields are: {', '.join(columns)}")
    return _collect(dicts, tcol, _pick(columns, id_column, ID_COLUMNS, "id"), columns)


def _collect(rows: list[dict], tcol: str, icol: str | None, columns: list[str]) -> Batch:
    batch = Batch([], columns=columns)
    for n, row in enumerate(rows, 1):
        value = row.get(tcol)
        text = "" if value is None else str(value).strip()
        if not text:
            batch.skipped.append(f"row {n}: empty {tcol!r}")
            continue
        if len(text) > MAX_TICKET_CHARS:
            batch.skipped.append(f"row {n}: longer than {MAX_TICKET_CHARS:,} characters")
            continue
        ext = row.get(icol) if icol else None
        batch.items.append((str(ext).strip() if ext not in (None, "") else None, text))
    return batch
