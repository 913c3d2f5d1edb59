"""Filling in what old tickets lack (db/backfill.py): the masked count (tickets imported before migration 0021)
and the language (tickets from before 0020, and label imports and demo tickets from before they set it), as an
import computes them now (triage.privacy.prepare_import): masking under the policy in force, the language detected
locally from the stored text; a ticket that gets its language gets its team by the routing table in force.

In small batches (`BATCH` tickets), each computed outside any transaction and written in its own short one, so the
walk never holds a lock for long and may stop anywhere: it resumes from its cursor. The background workers (the
dashboard's, `triage worker`) take a batch when idle (`when_idle`); `triage db backfill` runs it to the end (`run`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from db import backfill as db_backfill
from db import teams as db_teams
from db.engine import Database
from triage.local import language
from triage.routing import redact
from triage.settings import Settings, effective

log = logging.getLogger(__name__)

BATCH = 200  # tickets a step reads, computes and writes (one short transaction)
RECHECK_SECONDS = 600.0  # once nothing is left, an idle worker looks again this much later

_quiet_until: dict[str, float] = {}  # database url -> monotonic time before which idle workers do not look
_lock = threading.Lock()


@dataclass
class Backfilled:
    """What a step (or a whole run) did."""

    looked_at: int = 0  # tickets read with a field missing
    masked_counts: int = 0  # masked counts written
    languages: int = 0  # languages written (a ticket whose language the detector is unsure of keeps none)
    done: bool = False  # nothing is left after the cursor

    def add(self, other: Backfilled) -> None:
        self.looked_at += other.looked_at
        self.masked_counts += other.masked_counts
        self.languages += other.languages
        self.done = other.done

    def describe(self) -> str:
        return (f"looked at {self.looked_at} ticket(s) imported without a masked count or a language: "
                f"{self.masked_counts} masked count(s) and {self.languages} language(s) filled in"
                + ("; nothing is left to fill in" if self.done else "; more to do (run it again)"))


def step(db: Database, *, batch: int = BATCH, base: Settings | None = None) -> Backfilled:
    """One batch: read the next tickets with a field missing, compute their values outside any transaction, write
    them in one short transaction and move the cursor past them. A policy that cannot be built raises InputError
    (nothing is written)."""
    with db.read() as s:
        after = db_backfill.cursor(s)
        rows = db_backfill.missing(s, after, batch)
    if not rows:  # nothing written, not even the cursor: an idle worker's look changes nothing
        return Backfilled(done=True)
    policy = effective(db, base)[0].mask_policy if any(r.needs_count for r in rows) else redact.DEFAULT_POLICY
    filled = [db_backfill.Filled(r.id, r.text, redact.mask(r.text, policy).count if r.needs_count else None,
                                 language.detect(r.text) if r.needs_language else None) for r in rows]
    with db.transaction() as s:
        counts, languages = db_backfill.fill(s, filled, db_teams.stored(s))
        db_backfill.advance(s, max(rows[-1].id, db_backfill.cursor(s)))  # never back: another worker may be ahead
    return Backfilled(len(rows), counts, languages, done=len(rows) < batch)


def run(db: Database, *, batch: int = BATCH, base: Settings | None = None) -> Backfilled:
    """Every batch until nothing is left (`triage db backfill`)."""
    total = Backfilled()
    while not total.done:
        total.add(step(db, batch=batch, base=base))
    return total


def when_idle(db: Database, base: Settings | None = None) -> Backfilled | None:
    """A background worker with nothing else to do takes one batch; once nothing is left it looks again only every
    `RECHECK_SECONDS`. Never raises (a worker must go on): a failure is logged and retried after the same wait."""
    now = time.monotonic()
    with _lock:
        if _quiet_until.get(db.url, 0.0) > now:
            return None
    try:
        done = step(db, base=base)
    except Exception:
        log.exception("filling in old tickets' masked counts and languages failed")
        done = Backfilled(done=True)
    if done.done:
        with _lock:
            _quiet_until[db.url] = now + RECHECK_SECONDS
    return done
