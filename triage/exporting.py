"""Export every ticket with its label to CSV (formula-safe) or JSONL."""

from __future__ import annotations

from datetime import UTC, datetime

from db import review as dbreview
from db.engine import Database
from triage import export


def ticket_rows(db: Database, batch: int = 2000) -> list[dict]:
    rows, page = [], 0
    with db.read() as s:
        while True:
            chunk = dbreview.export_page(s, page, batch)
            rows.extend(chunk)
            if len(chunk) < batch:
                return rows
            page += 1


def export_tickets(db: Database, fmt: str) -> tuple[bytes, str]:
    rows = ticket_rows(db)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    if fmt == "csv":
        return export.to_csv(rows).encode("utf-8"), f"triage-tickets-{stamp}.csv"
    return export.to_jsonl(rows).encode("utf-8"), f"triage-tickets-{stamp}.jsonl"
