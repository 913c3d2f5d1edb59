"""`triage settings`: every setting in force and where it comes from; `triage settings set NAME VALUE`: save one
as a lead would on the dashboard's Settings page (the same checks, the same audit trail)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from triage import settings as config
from triage.cli.common import EXIT_OK, actor, env_settings, open_db


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def cmd_settings(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    rows = config.in_force(db)
    if args.json:
        print(json.dumps({r.name: {k: v for k, v in r.to_dict().items() if k != "name"} for r in rows}))
        return EXIT_OK
    sources = {r.name: f"{r.source} ({r.env})" if r.source == config.ENVIRONMENT else r.source for r in rows}
    width, source_width = max(len(r.name) for r in rows) + 2, max(map(len, sources.values()))
    print(f"{'setting':<{width}}  {'source':<{source_width}}  value")
    for r in rows:
        print(f"{r.name + (' *' if r.editable else ''):<{width}}  {sources[r.name]:<{source_width}}  {_text(r.value)}")
    print("* a lead may change it: `triage settings set NAME VALUE` or the dashboard's Settings page (saved values "
          "win over the environment; a command's own flags win over both)")
    return EXIT_OK


def cmd_settings_set(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    who = actor(args)
    before = config.effective(db)[0]
    config.save_engine(db, actor=who, **{args.name: args.value})  # checked there: unknown name or bad value, exit 2
    after = getattr(config.effective(db)[0], args.name)
    print(f"{args.name}: {_text(getattr(before, args.name))} -> {_text(after)}, saved by {who.identity} (in the audit "
          "trail); in force for work started from now on")
    return EXIT_OK
