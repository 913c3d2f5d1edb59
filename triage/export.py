"""Exports: result rows and every ticket as JSONL or CSV. CSV cells a spreadsheet would run as formulas are
neutralised; money is written as plain decimals."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from db import review
from db.engine import Database
from triage import audit
from triage import settings as settings_mod
from triage.access import Action, Actor, require
from triage.domain import money_text
from triage.errors import InputError
from triage.routing import redact

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return money_text(value)
    return str(value)


Rows = Sequence[Mapping[str, object]]  # any rows, written as they are: keys in order, money (Decimal) as decimals


def to_jsonl(rows: Rows) -> str:
    return "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: Rows) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: safe_cell(v) for k, v in r.items()})
    return buf.getvalue()


def check_destination(path: str) -> None:
    """Fail before any work is paid for when results could not be written to `path`."""
    if Path(path).suffix.lower() not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise InputError(f"--out must end in .jsonl or .csv (got {path})")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not os.access(target if target.exists() else existing, os.W_OK):
        raise InputError(f"--out {path} cannot be written (no permission)")


def write(rows: Rows, path: str) -> None:
    check_destination(path)
    text = to_csv(rows) if Path(path).suffix.lower() == ".csv" else to_jsonl(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8", newline="")


def _ticket_rows(db: Database, batch: int = 2000) -> list[review.ExportRow]:
    rows: list[review.ExportRow] = []
    page = 0
    with db.read() as s:
        while True:
            chunk = review.export_page(s, page, batch)
            rows.extend(chunk)
            if len(chunk) < batch:
                return rows
            page += 1


def export_tickets(db: Database, fmt: str, *, actor: Actor, masked: bool = False) -> tuple[bytes, str]:
    """Every ticket with its text, label, who set it and its cost, for a lead; recorded in the audit trail (who,
    when, how many rows, which filter). `masked`: each text as the model is shown it, its personal data replaced
    by placeholders under the masking policy in force (a policy that cannot be built: InputError, nothing
    written)."""
    require(actor, Action.EXPORT)
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"export format is csv or jsonl (got {fmt!r})")
    policy = settings_mod.effective(db)[0].mask_policy if masked else None
    rows = _ticket_rows(db)
    if policy is not None:
        for r in rows:
            r["text"] = redact.mask(r["text"], policy).text
    with db.transaction() as s:
        audit.record(s, actor, audit.EXPORT, rows=len(rows), format=fmt, filter="every ticket",
                     **({"masked": True} if masked else {}))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        return to_csv(rows).encode("utf-8"), f"triage-tickets-{stamp}.csv"
    return to_jsonl(rows).encode("utf-8"), f"triage-tickets-{stamp}.jsonl"
