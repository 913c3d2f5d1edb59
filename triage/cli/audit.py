"""`triage audit [--json]`: the tickets drawn for the blind audit that await an answer (id and text, never the
model's label); `triage audit --answers FILE`: record answers given elsewhere (id and label columns)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from triage import ingest
from triage.cli.common import EXIT_INPUT, EXIT_OK, actor, env_settings, open_db
from triage.errors import InputError
from triage.quality import unreviewed

ID_COLUMNS, LABEL_COLUMNS = ("id", "ticket_id", "ticket"), ("label", "answer", "category")


def read_answers(path: str) -> list[tuple[int, str]]:
    """(ticket id, label) from a CSV, JSON or JSONL file with an id and a label column (`triage audit --json`'s
    ids). InputError naming the row for a row without a whole-number id or a label."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    text, fmt = ingest.decode(p.read_bytes()), ingest.detect_format(p.name)
    records: list[dict[str, object]]
    if fmt == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "json":
        data = json.loads(text)
        records = data if isinstance(data, list) else data.get("tickets", [])
    elif fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        raise InputError(f"{path}: answers come as CSV, JSON or JSONL with id and label columns")
    out = []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict):
            raise InputError(f"{path}, row {n}: not a record with id and label")
        keys = {str(k).strip().casefold(): v for k, v in r.items()}
        tid = next((keys[k] for k in ID_COLUMNS if keys.get(k) not in (None, "")), None)
        label = next((keys[k] for k in LABEL_COLUMNS if keys.get(k) not in (None, "")), None)
        if tid is None or label is None or not str(tid).strip().isdigit():
            raise InputError(f"{path}, row {n}: needs a ticket id (as `triage audit` lists it) and a label")
        out.append((int(str(tid).strip()), str(label).strip()))
    return out


def cmd_audit(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    who = actor(args)
    if args.answers:
        answers = read_answers(args.answers)
        done, refused = unreviewed.answer(db, answers, actor=who, file=Path(args.answers).name)
        figures = unreviewed.figures(db)
        if args.json:
            print(json.dumps({"answered": done, "refused": refused, "unreviewed": figures.to_dict()}))
        else:
            print(f"recorded {len(done)} audit answer{'s' if len(done) != 1 else ''} from {args.answers} as "
                  f"{who.identity} (in the audit trail)")
            for line in refused:
                print(f"not recorded: {line}")
            print(figures.measured_on())
            if (o := figures.overall).accuracy is not None:
                print(f"accuracy of the unreviewed traffic: {o.accuracy:.1%} ({o.low:.1%}-{o.high:.1%})")
        return EXIT_INPUT if refused and not done else EXIT_OK
    rows = unreviewed.waiting(db, actor=who, limit=args.limit)
    if args.json:
        print(json.dumps([{"id": r["id"], "external_id": r["external_id"], "text": r["text"]} for r in rows]))
        return EXIT_OK
    if not rows:
        print("no drawn tickets await an answer")
        return EXIT_OK
    print(f"{len(rows)} ticket{'s' if len(rows) != 1 else ''} drawn for the blind audit await an answer (label them "
          "without looking up the model's answer; then `triage audit --answers FILE` with id and label columns):")
    for r in rows:
        print(f"{r['id']:>8}  {' '.join(str(r['text']).split())[:200]}")
    return EXIT_OK
