"""Importing a big CSV: time and peak memory, first import and re-import, against the old per-ticket import.

    .venv/bin/python -m bench.bench_import [--rows 100000] [--no-baseline]

What a user waits for at `triage classify big.csv` before the first API call: read and parse the file
(ingest.read_path) and store its tickets as a run (runs.start_run: dedupe by content hash, insert new tickets,
requeue known ones). Each measurement runs in a child process of its own so that its peak RSS
(resource.getrusage, the whole process: Python and the libraries included) is its own. The data: a generated
CSV of support-ticket-like text, 100-600 characters a row, on a fresh SQLite database; the re-import runs on
the database the first import left. The baseline is the import as it was before bulk statements (one ORM
object and one flush per ticket, whole rows loaded for known tickets), copied below and run in the same way.
CPU time (user + system) is printed beside the wall time: on a shared, loaded machine it is the steadier figure.
Not part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the type checker only: at run time these load inside the functions, as before
    from sqlalchemy.orm import Session

    from db.models import Ticket
    from db.queue import Imported

WORDS = ("invoice", "refund", "charged", "twice", "card", "payment", "app", "crashes", "upload", "error", "login",
         "password", "reset", "account", "locked", "feature", "dark", "mode", "export", "slow", "sync", "mobile",
         "browser", "subscription", "cancel", "plan", "upgrade", "receipt", "vat", "please", "help", "urgent")


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(7)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i in range(rows):
            n = rnd.randint(15, 90)
            w.writerow([f"T-{i}", " ".join(rnd.choice(WORDS) for _ in range(n)) + f" (order {i})"])


def legacy_import_tickets(s: Session, items: Sequence[tuple[str | None, str]], *, source: str, run_id: int | None,
                          requeue: Iterable[str] = ("pending", "failed"), reclassify: bool = False,
                          languages: object = None,
                          privacy: Sequence[tuple[str | None, int | None]] | None = None,
                          purpose: str = "production") -> Imported:
    """db.queue.import_tickets before bulk statements (commit 48b5506), for the baseline (`languages` and
    `privacy`, added since, are ignored)."""
    from sqlalchemy import func, select

    from db.models import ModelCall, Run, Ticket
    from db.queue import LEASE, Imported, _aware, content_hash

    hashes = [content_hash(text, ext) for ext, text in items]
    known: dict[str, Ticket] = {}
    unique = list(dict.fromkeys(hashes))
    for i in range(0, len(unique), 500):
        for t in s.scalars(select(Ticket).where(Ticket.content_hash.in_(unique[i:i + 500]))):
            known[t.content_hash] = t
    now = datetime.now(UTC)
    new_ids, known_ids, by_hash = [], [], {}
    requeue = set(requeue)
    fresh_from = (s.scalar(select(func.max(ModelCall.id))) or 0) + 1 if reclassify else 0
    for (ext, text), h in zip(items, hashes, strict=True):
        if h in by_hash:
            continue
        if h in known:
            t = known[h]
            held = t.claimed_by is not None and t.claimed_at is not None and _aware(t.claimed_at) > now - LEASE
            if not held and (reclassify or t.status in requeue):
                if reclassify:
                    t.first_call_id = fresh_from
                t.status, t.run_id, t.claimed_by, t.claimed_at = "pending", run_id, None, None
            known_ids.append(t.id)
        else:
            t = Ticket(external_id=ext, text=text, source=source, content_hash=h, run_id=run_id,
                       created_at=now, updated_at=now, status="pending")
            s.add(t)
            s.flush()
            new_ids.append(t.id)
        by_hash[h] = t.id
    if run_id is not None:
        run = s.get(Run, run_id)
        assert run is not None  # created by the caller in this transaction
        run.n_tickets, run.n_new = len(by_hash), len(new_ids)
    return Imported([by_hash[h] for h in hashes], new_ids, known_ids, run_id)


def child(csv_path: str, db_path: str, legacy: bool) -> None:
    """One import in this process; prints a JSON line with the timings and the peak RSS."""
    from db import queue
    from db.migrate import open_database
    from triage import ingest
    from triage.work import runs

    if legacy:
        queue.import_tickets = legacy_import_tickets  # runs.start_run calls it through the module
    db = open_database(f"sqlite:///{db_path}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    base_rss, cpu0 = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    batch = ingest.read_path(csv_path)
    parsed = time.perf_counter()
    from triage.access import cli_actor

    imported = runs.start_run(db, batch.items, source="bench.csv", actor=cli_actor())
    done = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime - cpu0,
                      "parse_s": parsed - started, "store_s": done - parsed, "total_s": done - started,
                      "rows": len(batch.items), "new": len(imported.new_ids), "known": len(imported.known_ids),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "start_rss_mb": base_rss / 1024}))


def measure(csv_path: Path, db_path: Path, legacy: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.bench_import", "--child", str(csv_path), str(db_path),
                          "legacy" if legacy else "bulk"], capture_output=True, text=True, check=True)
    line: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])  # the child's JSON line
    return line


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4] == "legacy")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--no-baseline", action="store_true", help="skip the old import (it takes a minute or more)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tickets.csv"
        write_csv(src, args.rows)
        print(f"{args.rows:,} rows, {src.stat().st_size / 1e6:.1f} MB CSV, fresh SQLite database")
        results = {}
        for kind in (["bulk"] if args.no_baseline else ["legacy", "bulk"]):
            db = Path(tmp) / f"{kind}.db"
            first = measure(src, db, kind == "legacy")
            shutil.copy(db, Path(tmp) / f"{kind}-copy.db")
            again = measure(src, db, kind == "legacy")
            results[kind] = (first, again)
            for name, r in (("first import", first), ("re-import", again)):
                print(f"{kind:6} {name:12}: {r['total_s']:6.2f} s (parse {r['parse_s']:.2f} s, database "
                      f"{r['store_s']:.2f} s; CPU {r['cpu_s']:.2f} s), peak RSS {r['peak_rss_mb']:5.0f} MB "
                      f"(start {r['start_rss_mb']:.0f} MB); {r['new']:,} new, {r['known']:,} known")
        if "legacy" in results:
            for i, name in enumerate(("first import", "re-import")):
                old, new = results["legacy"][i], results["bulk"][i]
                print(f"{name}: {old['total_s'] / new['total_s']:.1f}x faster, peak RSS "
                      f"{new['peak_rss_mb'] / old['peak_rss_mb']:.2f} of the baseline's")
        print("target: under 10 s and under 300 MB, both times")


if __name__ == "__main__":
    main()
