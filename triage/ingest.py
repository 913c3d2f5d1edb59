"""Read tickets from CSV, JSON, JSONL, plain text or a paste, row by row.

The same rules hold for every format: a ticket longer than MAX_STORED_CHARS is cut to it (the operator is told
which rows); a row that cannot be a ticket (empty, an object or list where text belongs, an invalid character
such as a lone surrogate or NUL, an id too long to store, a CSV record with broken quoting or too many fields)
is named by its row number and skipped, never the whole file and never merged into its neighbours. Only a file
that cannot be read at all (not UTF-8, invalid JSON document, no header, no text column) raises IngestError.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.errors import InputError

TEXT_COLUMNS = ("text", "ticket", "body", "message", "description", "content", "comment", "subject")
SUBJECT_COLUMNS = ("subject", "title", "summary")  # with a body column, guessed as text together with it
ID_COLUMNS = ("id", "ticket_id", "external_id", "key", "number", "ticket_number", "case_id", "case_number")
TextColumns = str | Sequence[str] | None  # one column, several combined (Subject + Description), or a guess
LABEL_COLUMNS = ("label", "category", "final_category", "class", "intent", "topic")
MAX_STORED_CHARS = 100_000  # a longer ticket is stored cut to this; the prompt clips further (prompts.PROMPT_CHARS)
MAX_ID_CHARS = 255  # tickets.external_id
FORMATS = ("csv", "json", "jsonl", "txt")
_INVALID = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL cannot store it) and lone surrogates


class IngestError(InputError):
    """A file or paste that cannot be read; the message says where and why."""


@dataclass
class LabelledRow:
    row: int  # 1-based, as a spreadsheet counts data rows
    external_id: str | None
    text: str  # "" when the row has none
    label: str  # "" when the row has none


@dataclass
class LabelledBatch:
    """Every data row of a labelled file, empty ones included, so the caller can report them."""

    rows: list[LabelledRow]
    columns: list[str]
    text_column: str | None  # None: a file of ids and labels (rows match known tickets by id)
    id_column: str | None
    label_column: str


@dataclass
class Batch:
    items: list[tuple[str | None, str]]  # (external id or None, text)
    skipped: list[str] = field(default_factory=list)  # why rows were left out, one line each
    columns: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)  # rows stored shortened to MAX_STORED_CHARS, one line each
    requesters: list[str | None] = field(default_factory=list)  # parallel to items: the requester cell, if any

    @property
    def report(self) -> list[str]:
        """What the operator should be told about this file, one line each."""
        return [f"skipped {line}" for line in self.skipped] + [f"cut {line}" for line in self.cut]

    def add(self, where: str, value: object, ext: object = None, what: str | None = None,
            requester: object = None) -> None:
        """One row: kept (maybe cut), or skipped with the reason. `what` names the text column, if any."""
        for name, part in ((what or "text", value), ("id", ext)):
            if isinstance(part, dict | list):
                kind = "an object" if isinstance(part, dict) else "a list"
                self.skipped.append(f"{where}: the {name} is {kind}, not text")
                return
        text = "" if value is None else str(value).strip()
        if not text:
            self.skipped.append(f"{where}: empty" + (f" {what!r}" if what else ""))
            return
        ext_text = None if ext is None or ext == "" else str(ext).strip() or None
        for label, part in (("text", text), ("id", ext_text or "")):
            bad = _INVALID.search(part)
            if bad:
                char = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate (U+{ord(bad.group()):04X})"
                self.skipped.append(f"{where}: the {label} contains {char}, which is not valid text")
                return
        if ext_text is not None and len(ext_text) > MAX_ID_CHARS:
            self.skipped.append(f"{where}: the id is longer than {MAX_ID_CHARS} characters")
            return
        if len(text) > MAX_STORED_CHARS:
            self.cut.append(f"{where}: {len(text):,} characters, stored as its first {MAX_STORED_CHARS:,}")
            text = text[:MAX_STORED_CHARS].rstrip()
        self.items.append((ext_text, text))
        who = None if requester is None or isinstance(requester, dict | list) else str(requester).strip()
        self.requesters.append(who or None)

    @property
    def has_requesters(self) -> bool:
        return any(self.requesters)


def detect_format(name: str) -> str:
    ext = Path(name).suffix.lower().lstrip(".")
    return {"tsv": "csv", "ndjson": "jsonl", "text": "txt", "": "txt"}.get(ext, ext)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8 and try again") from exc


def read_path(path: str, fmt: str | None = None, **kw: str | None) -> Batch:
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)  # bytes, so that stdin gets the same UTF-8 check as a file
        return parse(decode(raw.read()) if raw is not None else sys.stdin.read(), fmt or "txt", **kw)
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {path}")
    return parse(decode(p.read_bytes()), fmt or detect_format(p.name), **kw)


def parse(text: str, fmt: str, *, text_column: TextColumns = None, id_column: str | None = None,
          requester_column: str | None = None) -> Batch:
    """`text_column`: a column, or several whose non-empty cells are joined by a blank line (a help-desk export's
    Subject and Description: a row with only a Subject is kept); None guesses (Subject + Description together).
    `requester_column`: the column with each ticket's requester (an e-mail address; never guessed), so that a
    customer's tickets can be erased on request (`triage erase --requester`)."""
    if fmt not in FORMATS:
        raise IngestError(f"unsupported format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return _csv(text, text_column, id_column, requester_column)
    if fmt in ("json", "jsonl"):
        return _records(_load_records(text, fmt), text_column, id_column, requester_column)
    if requester_column:
        raise IngestError("a plain-text file has no columns: a requester column needs CSV, JSON or JSONL")
    batch = Batch([])
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            batch.add(f"line {n}", line)
    return batch


def from_paste(text: str) -> Batch:
    """Pasted tickets, under the same rules as a file (see split_pasted for how they are separated)."""
    batch = Batch([])
    for n, ticket in enumerate(split_pasted(text), 1):
        batch.add(f"ticket {n}", ticket)
    return batch


def columns_of(text: str, fmt: str) -> list[str]:
    """The columns (CSV) or fields (JSON/JSONL objects) a file offers, for picking the text and id columns."""
    if fmt == "csv":
        return _csv_header(_CsvLines(text), _dialect(text))[0]
    if fmt in ("json", "jsonl"):
        return list(dict.fromkeys(k for _, r in _load_records(text, fmt) if isinstance(r, dict) for k in r))
    return []


def _load_records(text: str, fmt: str) -> list[tuple[str, object]]:
    """(where, record) pairs. A JSON document must parse as a whole; a JSONL line that does not is a record
    of its own kind (_Unreadable) so that it is reported and skipped, not fatal."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError:
            raise IngestError("the JSON is nested too deeply to be a list of tickets") from None
        if isinstance(data, dict):
            data = data.get("tickets", data.get("items"))
        if not isinstance(data, list):
            raise IngestError('JSON must be a list of tickets, or an object with a "tickets" list')
        return [(f"item {n}", r) for n, r in enumerate(data, 1)]
    records: list[tuple[str, object]] = []
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                records.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                records.append((f"line {n}", _Unreadable(f"not valid JSON ({exc.msg})")))
            except RecursionError:
                records.append((f"line {n}", _Unreadable("JSON nested too deeply")))
    return records


@dataclass(frozen=True)
class _Unreadable:
    why: str


def read_labelled(path: str, text_column: str = "text", label_column: str = "label") -> list[tuple[str, str]]:
    """(text, label) rows of a gold file (CSV, JSON or JSONL)."""
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {path}")
    fmt = detect_format(p.name)
    text = decode(p.read_bytes())
    if fmt == "csv":
        try:
            records: list[object] = list(csv.DictReader(io.StringIO(text), dialect=_dialect(text)))
        except csv.Error as exc:
            raise IngestError(f"the gold file is malformed: {exc}") from exc
    elif fmt in ("json", "jsonl"):
        records = [r for _, r in _load_records(text, fmt)]
    else:
        raise IngestError("a gold file must be CSV, JSON or JSONL with text and label columns")
    rows = []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict) or text_column not in r or label_column not in r:
            raise IngestError(f"row {n} needs both {text_column!r} and {label_column!r}")
        if str(r[text_column] or "").strip():
            rows.append((str(r[text_column]).strip(), str(r[label_column] or "").strip()))
    return rows


def parse_labelled(text: str, fmt: str, *, text_column: str | None = None, id_column: str | None = None,
                   label_column: str | None = None) -> LabelledBatch:
    """A CSV/JSON/JSONL file whose rows carry a label: (id, text, label) per data row, none left out. The text
    column may be missing when there is an id column (a helpdesk export of ids and final categories)."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        if not columns:
            raise IngestError("the CSV file is empty or has no header row")
        try:
            records: list[Any] = list(reader)  # CSV rows here, JSON objects below (checked)
        except csv.Error as exc:
            raise IngestError(f"the CSV file is malformed: {exc}") from exc
    elif fmt in ("json", "jsonl"):
        records = [r for _, r in _load_records(text, fmt)]
        if not all(isinstance(r, dict) for r in records):
            raise IngestError("each row of a labelled file must be an object with a label and a text or id field")
        columns = list(dict.fromkeys(k for r in records for k in r))
    else:
        raise IngestError("a labelled file must be CSV, JSON or JSONL with a label column and a text or id column")
    tcol = _pick(columns, text_column, TEXT_COLUMNS, "text")
    lcol = _pick(columns, label_column, LABEL_COLUMNS, "label")
    if lcol is None:
        raise IngestError(f"which column holds the label? Pass --label-column; columns are: {', '.join(columns)}")
    if tcol == lcol:
        raise IngestError(f"the text and the label cannot both be in column {tcol!r}")
    icol = _pick(columns, id_column, ID_COLUMNS, "id")
    icol = None if icol in (tcol, lcol) else icol
    if tcol is None and icol is None:  # ids and labels alone are enough: each row names a known ticket
        raise IngestError(f"which column holds the ticket text, or the ticket id? Pass --text-column or --id-column; "
                          f"columns are: {', '.join(columns)}")

    def cell(row: dict[str, Any], col: str | None) -> str:
        value = row.get(col) if col else None
        return "" if value is None else str(value).strip()

    rows = [LabelledRow(n, cell(r, icol) or None, cell(r, tcol), cell(r, lcol)) for n, r in enumerate(records, 1)]
    return LabelledBatch(rows, columns, tcol, icol, lcol)


def read_labelled_path(path: str, **kw: str | None) -> LabelledBatch:
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {path}")
    return parse_labelled(decode(p.read_bytes()), detect_format(p.name), **kw)


def guess_column(columns: list[str], kind: str) -> str | None:
    candidates = {"text": TEXT_COLUMNS, "id": ID_COLUMNS, "label": LABEL_COLUMNS}[kind]
    return _pick(columns, None, candidates, kind)


def guess_text_columns(columns: list[str]) -> list[str]:
    """The text column(s) to offer: a subject column and a body column together when the file has both (a
    help-desk export), else the one text column guessed; [] when none is recognised."""
    subject = _pick(columns, None, SUBJECT_COLUMNS, "text")
    body = _pick(columns, None, tuple(c for c in TEXT_COLUMNS if c not in SUBJECT_COLUMNS), "text")
    return [c for c in (subject, body) if c] if subject and body else [c for c in (body or subject,) if c]


def _text_columns(columns: list[str], wanted: TextColumns) -> list[str]:
    """The text columns to read ([] when none can be guessed); a named column missing from the file is an error."""
    if isinstance(wanted, str):
        return [c for c in (_pick(columns, wanted, TEXT_COLUMNS, "text"),) if c]
    if wanted:
        return [c for w in dict.fromkeys(wanted) for c in (_pick(columns, w, TEXT_COLUMNS, "text"),) if c]
    return guess_text_columns(columns)


def _joined(parts: list[object]) -> object:
    """Several cells as one ticket text: the non-empty ones, a blank line apart. An object or list is returned as
    it is, so the row is reported (not stringified into the ticket)."""
    if len(parts) == 1:
        return parts[0]
    odd = next((p for p in parts if isinstance(p, dict | list)), None)
    if odd is not None:
        return odd
    return "\n\n".join(t for t in ("" if p is None else str(p).strip() for p in parts) if t)


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
    lower: dict[str, str] = {}
    for c in columns:  # "Ticket ID", "ticket-id" and "ticket_id" are the same header
        lower.setdefault(re.sub(r"[\s\-]+", "_", c.lower().strip()), c)
    return next((lower[c] for c in candidates if c in lower), None)


class _Dialect(csv.excel):
    strict = True  # broken quoting is an error we can name, not a silent merge of the rows after it


def _dialect(text: str) -> type[csv.Dialect]:
    """The sniffer is trusted for the delimiter and quote character only: quotes are always doubled to
    escape them (RFC 4180), so that a stray quote cannot swallow the rows after it without an error."""
    try:
        sniffed = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        return _Dialect
    return type("Sniffed", (_Dialect,), {"delimiter": sniffed.delimiter, "quotechar": sniffed.quotechar or '"',
                                         "skipinitialspace": sniffed.skipinitialspace})


class _CsvLines:
    """The physical lines of a CSV text as an iterator whose position can be moved back, so that reading can
    restart just after a record whose quoting is broken."""

    def __init__(self, text: str):
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.pos = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1] + "\n"


def _csv_header(lines: _CsvLines, dialect: type[csv.Dialect]) -> tuple[list[str], Iterator[list[str]]]:
    reader = csv.reader(lines, dialect)
    try:
        header = next((row for row in reader if row), [])
    except csv.Error as exc:
        raise IngestError(f"the CSV header row is malformed: {exc}") from exc
    return [c for c in header if c is not None], reader


def _csv(text: str, text_column: TextColumns, id_column: str | None, requester_column: str | None = None) -> Batch:
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # a long field is a long ticket, cut below
    dialect = _dialect(text)
    lines = _CsvLines(text)
    columns, reader = _csv_header(lines, dialect)
    if not columns:
        raise IngestError("the CSV file is empty or has no header row")
    tcols = _text_columns(columns, text_column)
    if not tcols:
        if len(columns) == 1:
            tcols = [columns[0]]
        else:
            raise IngestError(f"which column holds the ticket text? Pass --text-column; columns are: "
                              f"{', '.join(columns)}")
    icol = _pick(columns, id_column, ID_COLUMNS, "id")
    rcol = _pick(columns, requester_column, (), "requester") if requester_column else None
    tis, ii = [columns.index(c) for c in tcols], (columns.index(icol) if icol else None)
    ri = columns.index(rcol) if rcol else None
    tcol = " + ".join(tcols)
    batch = Batch([], columns=columns)
    n = 0
    while True:
        start = lines.pos
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            n += 1
            batch.skipped.append(f"row {n} (line {start + 1}): broken quoting ({exc}); the lines after it are "
                                 "read as rows of their own")
            lines.pos, reader = start + 1, csv.reader(lines, dialect)
            continue
        if not fields:
            continue  # a blank line
        n += 1
        where = f"row {n} (line {start + 1})"
        if len(fields) > len(columns):
            if lines.pos - start > 1:  # a quoted field ran over several lines and still too many fields: merged
                batch.skipped.append(f"{where}: a quoted field runs into the next lines; the lines after it are "
                                     "read as rows of their own")
                lines.pos, reader = start + 1, csv.reader(lines, dialect)
            else:
                batch.skipped.append(f"{where}: {len(fields)} fields where the header has {len(columns)} (an "
                                     "unquoted delimiter?)")
            continue
        value = _joined([fields[ti] if ti < len(fields) else None for ti in tis])
        ext = fields[ii] if ii is not None and ii < len(fields) else None
        batch.add(where, value, ext, tcol, fields[ri] if ri is not None and ri < len(fields) else None)
    return batch


def _records(records: list[tuple[str, object]], text_column: TextColumns, id_column: str | None,
             requester_column: str | None = None) -> Batch:
    columns = list(dict.fromkeys(k for _, r in records if isinstance(r, dict) for k in r))
    tcols: list[str] = []
    tcol = icol = None
    if columns:
        tcols = _text_columns(columns, text_column)
        tcol = " + ".join(tcols) or None
        if tcol is None:
            raise IngestError(f"which field holds the ticket text? Pass --text-column; fields are: "
                              f"{', '.join(columns)}")
        icol = _pick(columns, id_column, ID_COLUMNS, "id")
    rcol = _pick(columns, requester_column, (), "requester") if requester_column else None
    batch = Batch([], columns=columns)
    for where, r in records:
        if isinstance(r, _Unreadable):
            batch.skipped.append(f"{where}: {r.why}")
        elif isinstance(r, str):
            batch.add(where, r)
        elif isinstance(r, dict) and tcol is not None:
            batch.add(where, _joined([r.get(c) for c in tcols]), r.get(icol) if icol else None, tcol,
                      r.get(rcol) if rcol else None)
        else:
            batch.skipped.append(f"{where}: not a ticket (a string, or an object with a text field)")
    return batch
