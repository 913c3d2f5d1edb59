"""How far a newcomer walks to follow one command: the files `triage classify` passes through, and how often it
comes back to a file it had already left.

    .venv/bin/python -m bench.code_path [--tickets 4] [--per-call 1] [--show]

Runs `triage classify` in this process on a fresh SQLite database against the fake Messages API
(tests/support/fake_anthropic.py), Haiku then Sonnet when unsure, with a profiler hook that notes each project
function (triage/, db/) the first time it is called: the order in which a reader following the command meets the
code, each function read once (module and class bodies, comprehensions, lambdas and nested functions are read
with what holds them: not counted). Consecutive functions of the same file are one visit. Prints: project files
visited, visits, and returns (visits to a file already left: visits - files). Migrations
and the database's first creation are left out (they run before the command's own work: the database is
created and migrated before tracing starts). Not a test; a measurement for docs/architecture.md.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "triage") + os.sep, str(ROOT / "db") + os.sep)


def _read_alone(code: CodeType) -> bool:
    """A function or method a reader turns to: not a module or class body (run once, at import), nor a
    comprehension, lambda or nested function (read with the function that holds it)."""
    return (bool(code.co_flags & inspect.CO_NEWLOCALS) and not code.co_name.startswith("<")
            and "<locals>" not in code.co_qualname)


def trace(argv: list[str]) -> list[str]:
    """The project files of the functions, in the order first called, while `triage <argv>` runs, in order."""
    from triage.cli import main

    seen: list[str] = []
    read: set[tuple[str, int]] = set()

    def hook(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        f = code.co_filename
        if not f.startswith(OURS) or "migrations" in f or (f, code.co_firstlineno) in read or not _read_alone(code):
            return
        read.add((f, code.co_firstlineno))
        if not seen or seen[-1] != f:
            seen.append(f)

    sys.setprofile(hook)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv)
    finally:
        sys.setprofile(None)
    if code not in (0, None):
        raise SystemExit(f"triage {' '.join(argv)} exited {code}")
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=4)
    ap.add_argument("--per-call", type=int, default=1)
    ap.add_argument("--show", action="store_true", help="print the visits in order")
    args = ap.parse_args()

    from db.migrate import open_database
    from tests.support.fake_anthropic import FakeAnthropic

    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic() as fake:
        url = f"sqlite:///{tmp}/trace.db"
        open_database(url).dispose()  # created and migrated before tracing
        os.environ.update(TRIAGE_DATABASE_URL=url, ANTHROPIC_API_KEY=fake.api_key, ANTHROPIC_BASE_URL=fake.base_url)
        tickets = Path(tmp) / "tickets.txt"
        samples = ["I was charged twice for invoice {n}", "The app crashes on upload {n}",
                   "Password reset link {n} never arrives", "Please add dark mode {n}"]
        tickets.write_text("\n".join(samples[i % 4].format(n=i) for i in range(args.tickets)) + "\n")
        visits = trace(["classify", str(tickets), "--per-call", str(args.per_call)])

    names = [str(Path(v).relative_to(ROOT)) for v in visits]
    files = len(set(names))
    print(f"triage classify ({args.tickets} tickets, {args.per_call} per call): {files} project files, "
          f"{len(names)} visits, {len(names) - files} returns to a file already left")
    for name, n in Counter(names).most_common(8):
        print(f"  {n:4d}  {name}")
    if args.show:
        print("\n".join(names))


if __name__ == "__main__":
    main()
