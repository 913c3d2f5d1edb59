"""`triage erase --ticket ID... [--yes]` and `triage purge [--dry-run]`: personal data erased on request and by
retention (triage/privacy.py). Without --yes, erase only says what would go."""

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
