"""Erasure on request and retention (issue 21): a lead erases tickets' personal data, by id or because they have
been idle longer than `retention_days`. What goes: the ticket's text, its stored vectors, the model's reasons and
problems (they quote the text) and corrections' notes. What stays: the ticket as a row with its labels, calls,
tokens and costs, so Spend and Quality figures do not change. Each erasure is an audit event: who, when, how many
tickets and the criterion as a salted hash, never the text. SQL is in db/privacy.py."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from db import privacy as db_privacy
from db import rollups
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.errors import InputError
from triage.local import language
from triage.routing import redact

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


def requester_key(salt: str, requester: str) -> str | None:
    """The stored form of a requester (an e-mail address): HMAC-SHA256 keyed with the installation's salt, of the
    address stripped and lower-cased; None for an empty one. The same address always gives the same key on this
    installation, so erasure by requester finds the tickets; without the salt (kept in the database) a guessed
    address cannot be checked against a copy of the key."""
    normal = requester.strip().lower()
    if not normal:
        return None
    return hmac.new(salt.encode(), f"requester\x00{normal}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """Tickets as they are imported: the text stored (masked when a lead chose `mask_store`), per ticket its
    requester's key and how many values masking replaced (db.queue.import_tickets' `privacy`), and each stored
    text's language (detected locally, triage/local/language.py)."""

    items: list[tuple[str | None, str]]
    privacy: list[tuple[str | None, int | None]]
    languages: dict[str, str | None] = field(default_factory=dict)  # stored text -> ISO 639 code (None: unsure)


def prepare_import(db: Database, items: Sequence[tuple[str | None, str]],
                   requesters: Sequence[str | None] | None = None) -> Prepared:
    """Before an import: each text masked under the policy in force (what the model will be shown) to count the
    values replaced, and stored masked when `mask_store` is on; each requester (parallel to `items`, or none) as
    its keyed hash; each stored text's language. Every import (a run, a label file's new tickets, the demo) prepares
    its tickets here. A policy that cannot be built raises InputError: nothing is imported (fails closed)."""
    from triage import settings as settings_mod

    current = settings_mod.effective(db)[0]
    policy = current.mask_policy
    keys: list[str | None] = [None] * len(items)
    if requesters is not None and any(r and r.strip() for r in requesters):
        if len(requesters) != len(items):
            raise InputError("one requester per ticket, or none")
        with db.transaction() as s:
            salt = db_privacy.salt(s)
        keys = [requester_key(salt, r) if r else None for r in requesters]
    out_items: list[tuple[str | None, str]] = []
    out_privacy: list[tuple[str | None, int | None]] = []
    for (ext, text), key in zip(items, keys, strict=True):
        masked = redact.mask(text, policy)
        out_items.append((ext, masked.text if current.mask_store else text))
        out_privacy.append((key, masked.count))
    return Prepared(out_items, out_privacy, language.detect_many(text for _, text in out_items))


def as_stored(db: Database, items: Sequence[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    """These tickets' texts as an import would store them (masked under `mask_store`): to tell known from new."""
    from triage import settings as settings_mod

    current = settings_mod.effective(db)[0]
    if not current.mask_store:
        return list(items)
    policy = current.mask_policy
    return [(ext, redact.mask(text, policy).text) for ext, text in items]


@dataclass(frozen=True)
class Forms:
    """Texts in the two forms a stored ticket may hold them: `masked`, as the policy in force masks them (what a
    ticket imported under `mask_store` holds), and `stored`, as an import would store them now (the masked form under
    `mask_store`, else the text itself). Parallel to the texts asked about."""

    masked: list[str]
    stored: list[str]


def forms(db: Database, texts: Sequence[str]) -> Forms:
    """Each text masked under the policy in force, and as an import would store it (`Forms`): a labelled file's
    rows find tickets stored masked by their masked text (triage/labels.py). A policy that cannot be built raises
    InputError (fails closed, as an import does)."""
    from triage import settings as settings_mod

    current = settings_mod.effective(db)[0]
    if not texts:
        return Forms([], [])
    policy = current.mask_policy
    masked = [redact.mask(text, policy).text for text in texts]
    return Forms(masked, masked if current.mask_store else list(texts))


@dataclass(frozen=True)
class Spans:
    """What masking replaces in one text under the policy in force: the spans (type, start, end, placeholder) in
    the text as stored, and the text the model is shown."""

    text: str
    spans: tuple[redact.Span, ...]
    masked_text: str

    @property
    def count(self) -> int:
        return len(self.spans)


def spans(text: str, policy: redact.MaskPolicy) -> Spans:
    """The masked spans of `text` under `policy` (the one in force: Settings.mask_policy)."""
    masked = redact.mask(text, policy)
    return Spans(text, masked.spans, masked.text)


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


REQUESTER = "privacy.erase_requester"


def erase_requester(db: Database, requester: str, *, actor: Actor, dry_run: bool = False) -> Erasure:
    """Erase (as `erase_tickets`) every ticket imported with this requester (an e-mail address, in any case and
    spacing). The address is looked up by its keyed hash; the audit trail keeps a salted hash of it, never the
    address. InputError when no ticket has this requester (nothing recorded then)."""
    require(actor, Action.ERASE)
    if not requester.strip():
        raise InputError("give the requester's e-mail address")
    with db.transaction() as s:
        salt = db_privacy.salt(s)
        key = requester_key(salt, requester)
        ids = db_privacy.of_requester(s, key) if key else []
    if not ids:
        raise InputError("no ticket was imported with this requester (tickets imported without a requester column, "
                         "or erased already, cannot be found by it); nothing was erased")
    return erase_tickets(db, ids, actor=actor, dry_run=dry_run, event=REQUESTER,
                         criterion=f"requester:{requester.strip().lower()}")


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
