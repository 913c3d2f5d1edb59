"""What every command shares: settings from the environment and flags, the database, a progress bar, exit codes."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from db.engine import Database
from triage.access import Actor, cli_actor
from triage.domain import FAILED, PENDING, Outcome
from triage.settings import Settings, effective
from triage.taxonomy import Taxonomy
from triage.work.pipeline import RunReport

EXIT_OK, EXIT_INPUT, EXIT_KEY, EXIT_FAILED, EXIT_BUDGET = 0, 2, 3, 4, 5
EXIT_SIGNAL_BASE = 128  # stopped by a signal: 128 + its number (130 Ctrl-C, 143 SIGTERM), as shells do


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.wanted = total, 0, enabled  # `total` may be set once it is known
        self.counts: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.wanted and self.total > 0

    def __call__(self, _ticket_id: int, outcome: Outcome) -> None:
        self.done += 1
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            states = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  {states} ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def progress_bar(args: argparse.Namespace, total: int) -> ProgressBar:
    return ProgressBar(total, getattr(args, "progress", False) or sys.stderr.isatty())


def exit_code(report: RunReport, pending: int | None = None) -> int:
    """The exit code of a command that worked the queue, with a line on stderr for anything but success.
    `pending`: the command's own tickets still pending (default: the run's)."""
    pending = report.states.get(PENDING, 0) if pending is None else pending
    failed = report.states.get(FAILED, 0) or report.ended.get(FAILED, 0)
    if report.cut_off:
        print(f"{report.cut_off} calls were cut off in flight: probably billed, their answers lost; `triage spend` "
              "counts them at their worst case", file=sys.stderr)
    if report.stopped:
        print(f"stopped: {report.stopped}", file=sys.stderr)
        if report.stop_kind == "signal":
            print("the calls that were in flight are recorded; unfinished tickets are pending again (`triage "
                  "worker --once` finishes them)", file=sys.stderr)
            return EXIT_SIGNAL_BASE + (report.signal or 15)
        return EXIT_BUDGET if report.stop_kind == "budget" else EXIT_KEY
    if pending:
        print(f"{pending} tickets are still pending: `triage worker --once` classifies them", file=sys.stderr)
    if failed:
        print(f"{failed} tickets failed: `triage retry` classifies them again", file=sys.stderr)
    return EXIT_FAILED if failed or pending else EXIT_OK


def say(message: str) -> None:
    """A line for the operator on stderr (stdout carries the results)."""
    print(message, file=sys.stderr)


def say_all(messages: list[str]) -> None:
    for message in messages:
        say(message)


def actor(args: argparse.Namespace) -> Actor:
    """Who the command acts as: the local administrator (shell access to the database is full access anyway),
    stamped `cli:<os user>` or the --operator name."""
    return cli_actor(getattr(args, "operator", None))


def open_db(settings: Settings) -> Database:
    from db.migrate import open_database

    return open_database(settings.database_url)


FLAGS = ("threshold", "concurrency", "per_call", "per_call_sonnet")  # the settings a command line may set


def env_settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().overridden(**{f: getattr(args, f, None) for f in FLAGS})


@dataclass
class Opened:
    """What a command that works the queue starts from: the database, the settings and taxonomy in force, and who
    acts (`open_in_force`)."""

    db: Database
    settings: Settings
    taxonomy: Taxonomy
    actor: Actor


def open_in_force(args: argparse.Namespace) -> Opened:
    """The database the environment names (created and migrated when new), the settings in force there (saved
    from the dashboard over the environment, the command line over both: its flags checked before anything is
    opened) and the command's actor (see `actor`)."""
    from db.migrate import open_database

    flags = {f: getattr(args, f, None) for f in FLAGS}
    env = Settings.from_env().overridden(**flags)
    db = open_database(env.database_url)
    merged, taxonomy = effective(db, Settings.from_env())
    return Opened(db, merged.overridden(**flags), taxonomy, cli_actor(getattr(args, "operator", None)))


def settings_in_force(db: Database, args: argparse.Namespace) -> tuple[Settings, Taxonomy]:
    """Settings saved from the dashboard over the environment, and the command line over both."""
    merged, taxonomy = effective(db, Settings.from_env())
    return merged.overridden(**{f: getattr(args, f, None) for f in FLAGS}), taxonomy
