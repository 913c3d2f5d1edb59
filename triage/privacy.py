"""Erasure on request and retention (issue 21): a lead erases tickets' personal data, by id or because they have
been idle longer than `retention_days`. What goes: the ticket's text, its stored vectors, the model's reasons and
problems (they quote the text) and corrections' notes. What stays: the ticket as a row with its labels, calls,
tokens and costs, so Spend and Quality figures do not change. Each erasure is an audit event: who, when, how many
tickets and the criterion as a salted hash, never the text. SQL is in db/privacy.py."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from db import privacy as db_privacy
from db import rollups
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.errors import InputError

ERASE = "privacy.erase"
PURGE = "privacy.purge"


@dataclass(frozen=True)
class Erasure:
    """What an erasure did (or, dry, would do)."""

    tickets: list[int]  # erased (or to be erased)
    vectors: int
    reasons: int
    notes: int
    already: list[int]  # asked for but erased before
    dry_run: bool
    scrubbed: bool = True  # SQLite: the WAL was checkpointed into the file and truncated

    def describe(self) -> str:
        verb = "would erase" if self.dry_run else "erased"
        out = (f"{verb} {len(self.tickets)} ticket(s): their text, {self.vectors} stored vector(s), "
               f"{self.reasons} model reason(s) and {self.notes} correction note(s); labels, calls and costs stay")
        if self.already:
            out += f"; {len(self.already)} erased before"
        if not self.dry_run and not self.scrubbed:
            out += ("; the database's write-ahead log could not be truncated now (another connection is reading): "
                    "the next checkpoint clears it")
        return out


def _criterion_hash(salt: str, criterion: str) -> str:
    return hashlib.sha256(f"{salt}\x00{criterion}".encode()).hexdigest()


def erase_tickets(db: Database, ticket_ids: Sequence[int], *, actor: Actor, dry_run: bool = False,
                  criterion: str | None = None, event: str = ERASE, strict: bool = True) -> Erasure:
    """Erase these tickets' personal data (see the module's doc). An id that is not a ticket, or a ticket that is
    pending or being classified (its text may be on its way to the API), is refused with InputError and nothing
    changes (`strict` False: they are left out instead). `dry_run`: what would go, nothing changes (and nothing is
    recorded)."""
    require(actor, Action.ERASE)
    if not ticket_ids:
        raise InputError("no tickets to erase: give at least one ticket id")
    with db.read() if dry_run else db.transaction() as s:
        found = db_privacy.find(s, ticket_ids)
        if found.missing and strict:
            raise InputError(f"no such ticket: {', '.join(map(str, found.missing[:20]))}; nothing was erased")
        if found.busy and strict:
            raise InputError(f"ticket(s) {', '.join(map(str, found.busy[:20]))} are pending or being classified; "
                             "erase them once they are done; nothing was erased")
        if dry_run:
            would = db_privacy.what_goes(s, found.erasable)
            return Erasure(found.erasable, would.vectors, would.reasons, would.notes, found.erased, True)
        done = db_privacy.erase(s, found.erasable)
        if found.erasable:
            rollups.bump_version(s, "labels")  # cached few-shot banks reload without the erased texts
        ids = ",".join(map(str, sorted(set(ticket_ids))))
        audit.record(s, actor, event, tickets=done.tickets, vectors=done.vectors, reasons=done.reasons,
                     notes=done.notes, criterion=_criterion_hash(db_privacy.salt(s), criterion or f"tickets:{ids}"))
    scrubbed = db_privacy.scrub(db)
    return Erasure(found.erasable, done.vectors, done.reasons, done.notes, found.erased, False, scrubbed)


def erased_among(db: Database, ticket_ids: Sequence[int]) -> set[int]:
    """Those of these tickets that were erased: no model is asked about them again (retry, escalation)."""
    with db.read() as s:
        return db_privacy.erased_among(s, ticket_ids)


def idle_tickets(db: Database, days: int, *, now: datetime | None = None) -> list[int]:
    """Tickets (not erased) with no activity in the last `days` days."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with db.read() as s:
        return db_privacy.idle_since(s, cutoff)


def purge(db: Database, days: int, *, actor: Actor, dry_run: bool = False, now: datetime | None = None) -> Erasure:
    """Retention: erase (as `erase_tickets`) every ticket idle for more than `days` days; `days` 0 keeps
    everything (nothing happens)."""
    require(actor, Action.ERASE)
    if days <= 0:
        return Erasure([], 0, 0, 0, [], dry_run)
    ids = idle_tickets(db, days, now=now)
    if not ids:
        return Erasure([], 0, 0, 0, [], dry_run)
    return erase_tickets(db, ids, actor=actor, dry_run=dry_run, criterion=f"retention:{days}", event=PURGE,
                         strict=False)  # one picked up again since it was found is left for the next purge
