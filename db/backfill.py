"""Old tickets' missing import-time fields, filled in afterwards: `masked_count` (NULL on tickets imported before
migration 0021) and `language` (NULL on tickets from before 0020, and from label imports and the demo before they
set it), with the team the routing table then gives. The engine (triage/work/backfill.py) computes the values
outside any transaction; here they are read and written in small batches, each its own short transaction.

A cursor (the last ticket id looked at, kept as a setting) lets the walk resume where it stopped and look at each
ticket once: a ticket whose language stays unknown (the detector is unsure) is not looked at again. The writes leave
`updated_at` as it was (retention counts a ticket's idle time from it) and the version alone (operators'
compare-and-set), and set a field only where it is still NULL on a text that is still the one read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from db import settings
from db.models import Ticket
from db.privacy import ERASED_TEXT
from triage.domain import TeamRule, team_for

KEY = "backfill"  # settings row: {"after_id": the last ticket id looked at}


class Missing(NamedTuple):
    """A ticket with a field to fill, as read: its text and which of the fields are NULL."""

    id: int
    text: str
    needs_count: bool
    needs_language: bool


class Filled(NamedTuple):
    """The values computed for a ticket (None: leave the field as it is)."""

    id: int
    text: str  # the text they were computed from: nothing is written if it changed (erased meanwhile)
    masked_count: int | None
    language: str | None


def cursor(s: Session) -> int:
    """The last ticket id the walk looked at (0: none yet)."""
    value = settings.get(s, KEY, {})
    return int(value.get("after_id", 0)) if isinstance(value, dict) else 0


def advance(s: Session, after_id: int) -> None:
    settings.put(s, KEY, {"after_id": after_id}, operator="system")


def missing(s: Session, after_id: int, limit: int) -> list[Missing]:
    """Up to `limit` tickets after `after_id` (by id) with their masked count or language NULL, erased ones left
    out. Walks the primary key from the cursor: each batch reads only the rows after the last one."""
    rows = s.execute(select(Ticket.id, Ticket.text, Ticket.masked_count.is_(None), Ticket.language.is_(None))
                     .where(Ticket.id > after_id, Ticket.text != ERASED_TEXT,
                            or_(Ticket.masked_count.is_(None), Ticket.language.is_(None)))
                     .order_by(Ticket.id).limit(limit))
    return [Missing(int(i), str(t), bool(c), bool(lang)) for i, t, c, lang in rows]


def last_id(s: Session) -> int:
    """The highest ticket id (0 without tickets): where the cursor goes once nothing after it is missing."""
    return int(s.scalar(select(func.max(Ticket.id))) or 0)


def fill(s: Session, rows: Sequence[Filled], rules: tuple[TeamRule, ...] | None) -> tuple[int, int]:
    """Write the computed values: each only where the field is still NULL and the text is the one they were
    computed from (rows locked first: FOR UPDATE on PostgreSQL; SQLite's write transaction holds the database). A
    ticket that gets its language gets its team by `rules` (the stored routing table; None: teams left alone).
    Returns (masked counts written, languages written)."""
    if not rows:
        return 0, 0
    current = {r.id: r for r in s.execute(
        select(Ticket.id, Ticket.text, Ticket.masked_count, Ticket.language, Ticket.category, Ticket.priority)
        .where(Ticket.id.in_([r.id for r in rows])).with_for_update())}
    counts = languages = 0
    for r in rows:
        now = current.get(r.id)
        if now is None or now.text != r.text:
            continue
        values: dict[str, object] = {}
        if now.masked_count is None and r.masked_count is not None:
            values["masked_count"] = r.masked_count
        if now.language is None and r.language is not None:
            values["language"] = r.language
            if rules is not None:
                values["team"] = team_for(rules, now.category, now.priority, r.language)
        if values:
            s.execute(update(Ticket).where(Ticket.id == r.id).values(**values, updated_at=Ticket.updated_at)
                      .execution_options(synchronize_session=False))
            counts += "masked_count" in values
            languages += "language" in values
    return counts, languages
