"""Write result rows as JSONL or CSV. CSV cells that a spreadsheet would run as formulas are neutralised."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _json_default(value: object):
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: safe_cell(v) for k, v in r.items()})
    return buf.getvalue()


def write(rows: list[dict], path: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        text = to_csv(rows)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        text = to_jsonl(rows)
    else:
        raise ValueError(f"--out must end in .jsonl or .csv (got {path})")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8", newline="")
