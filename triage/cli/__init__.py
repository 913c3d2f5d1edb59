"""`triage ...`: the command line. Usable from a shell script or a cron job.

parser.py builds the argument parser; work.py holds the commands that work the queue (and may spend money),
reports.py the ones that only read, admin.py the ones that maintain (train, demo, db), settings.py the settings
in force and `settings set`. Every user-facing error is a `triage.errors.TriageError`: printed as one line, with
its exit code, never a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from types import FrameType

from triage.cli.parser import build_parser
from triage.errors import TriageError

__all__ = ["main"]


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a run (reading a file, waiting for a batch): handled like Ctrl-C. During a run the
    service layer's own handler stops it cleanly instead (triage.work.services.run)."""

    signum = signal.SIGTERM


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        code: int = args.func(args)
        return code
    except TriageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("interrupted: unfinished tickets stay pending; run `triage worker --once` to finish them",
              file=sys.stderr)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    except Exception as exc:  # a bug: say so in one line; TRIAGE_DEBUG=1 shows the traceback
        logging.getLogger("triage").debug("unexpected error", exc_info=True)
        if os.environ.get("TRIAGE_DEBUG"):
            traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc} (set TRIAGE_DEBUG=1 for the traceback; unfinished "
              "tickets stay pending)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
