"""`triage erase --ticket ID... | --requester EMAIL [--yes]`, `triage purge [--dry-run]` and `triage export --out
FILE [--masked]`: personal data erased on request and by retention (triage/privacy.py), and exported masked.
Without --yes, erase only says what would go."""

from __future__ import annotations

import argparse
import json

from triage import privacy
from triage.cli.common import EXIT_OK, actor, open_db, settings_in_force


def _print(result: privacy.Erasure, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": result.dry_run, "tickets": result.tickets, "vectors": result.vectors,
                          "reasons": result.reasons, "notes": result.notes, "already_erased": result.already,
                          "scrubbed": result.scrubbed}))
    else:
        print(result.describe())


def cmd_erase(args: argparse.Namespace) -> int:
    from triage.settings import Settings

    db = open_db(Settings.from_env())
    if args.requester is not None:
        result = privacy.erase_requester(db, args.requester, actor=actor(args), dry_run=not args.yes)
    else:
        result = privacy.erase_tickets(db, args.ticket, actor=actor(args), dry_run=not args.yes)
    _print(result, args.json)
    if not args.yes and not args.json:
        print("nothing changed: add --yes to erase")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    from triage.settings import Settings, retention_days

    db = open_db(Settings.from_env())
    settings, _ = settings_in_force(db, args)
    days = settings.retention_days if args.days is None else retention_days(args.days, "--days")
    if days <= 0:
        print("retention is off (retention_days 0): nothing to purge; `triage settings set retention_days N` sets it")
        return EXIT_OK
    result = privacy.purge(db, days, actor=actor(args), dry_run=args.dry_run)
    _print(result, args.json)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Every ticket (text, label, who set it, cost) to a CSV or JSONL file, for a lead; `--masked`: the text as the
    model is shown it. Recorded in the audit trail."""
    from pathlib import Path

    from triage import export
    from triage.settings import Settings

    export.check_destination(args.out)
    db = open_db(Settings.from_env())
    fmt = "csv" if Path(args.out).suffix.lower() == ".csv" else "jsonl"
    data, _ = export.export_tickets(db, fmt, actor=actor(args), masked=args.masked)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out}" + (" (masked text)" if args.masked else ""))
    return EXIT_OK
