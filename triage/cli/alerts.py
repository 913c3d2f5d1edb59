"""`triage alerts`: the recent alerts and every attempt to deliver them; `--test` sends a test alert, `--check`
checks and delivers now (as the workers do every minute), `--set NAME=VALUE` configures, `--show` shows the
configuration (the webhook address masked)."""

from __future__ import annotations

import argparse
import json
import sys

from triage.alerts import service
from triage.alerts.config import read as read_config
from triage.cli.common import EXIT_FAILED, EXIT_OK, actor, env_settings, open_db, say


def cmd_alerts(args: argparse.Namespace) -> int:
    db = open_db(env_settings(args))
    who = actor(args)
    if args.set:
        saved = service.configure(db, args.set, actor=who, read_secret=sys.stdin.readline)
        say(f"saved by {who.identity} (in the audit trail): alerts {'on' if saved.enabled else 'off'}, channels: "
            f"{', '.join(saved.channels) or 'none'}")
    if args.show:
        print(json.dumps(read_config(db, actor=who).shown(), indent=1, default=str))
        return EXIT_OK
    code = EXIT_OK
    if args.check:
        found, sent = service.run_check(db, actor=who)
        say(f"{len(found.new)} new alert(s), {len(found.cleared)} ended; {len(sent)} delivery attempt(s)")
    if args.test:
        done = service.send_test(db, actor=who)
        for d in done:
            say(f"test alert by {d.channel}: " + ("delivered" if d.ok else f"failed ({d.error})"))
        code = EXIT_OK if done and all(d.ok for d in done) else EXIT_FAILED
    events = service.recent(db, actor=who, limit=args.limit)
    if args.json:
        print(json.dumps(events, default=str))
    else:
        print("\n".join(service.describe(events)) or "no alerts yet")
    return code
