"""Operator labels brought in from a file: find the tickets a labelled row means (by id, by text), label them
(a compare-and-set on each ticket's version, plus the audit row), and add tickets that exist only in the file,
already labelled. In bulk: a file may hold tens of thousands of rows. Callers hold the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db import paths, rollups
from db.models import Correction, Ticket, text_hash
from db.queue import content_hash
from triage.domain import CLASSIFIED, PILOT

CHUNK = 500
TICKETS, CORRECTIONS = cast(Table, Ticket.__table__), cast(Table, Correction.__table__)  # for the bulk statements


class Known(NamedTuple):
    """What matching needs to know about a ticket."""

    id: int
    external_id: str | None
    text_hash: str | None
    category: str | None
    label_source: str | None
    version: int


_COLUMNS = (Ticket.id, Ticket.external_id, Ticket.text_hash, Ticket.category, Ticket.label_source, Ticket.version)


def _grouped(s: Session, column: InstrumentedAttribute[str | None], values: Sequence[str],
             key: str) -> dict[str, list[Known]]:
    out: dict[str, list[Known]] = {}
    unique = list(dict.fromkeys(values))
    for i in range(0, len(unique), CHUNK):
        rows = s.execute(select(*_COLUMNS).where(column.in_(unique[i:i + CHUNK]), Ticket.purpose != PILOT)
                         .order_by(Ticket.id))  # a pilot's sample never takes an operator label (Quality figures)
        for r in rows:
            known = Known(*r)
            out.setdefault(getattr(known, key), []).append(known)
    return out


def by_external_ids(s: Session, external_ids: Sequence[str]) -> dict[str, list[Known]]:
    return _grouped(s, Ticket.external_id, external_ids, "external_id")


def by_text_hashes(s: Session, hashes: Sequence[str]) -> dict[str, list[Known]]:
    return _grouped(s, Ticket.text_hash, hashes, "text_hash")


def set_operator_labels(s: Session, changes: Sequence[tuple[int, int, str]], *, operator: str, file: str | None,
                        note: str | None = None, source: str = "import") -> tuple[list[int], list[str]]:
    """(ticket id, version seen, label) each: the operator's label on every ticket still at the version seen, with
    its audit row (`source`: import, or audit for a blind audit answer; the operator, the file). Returns (labelled
    ids, why the others were not).

    A compare-and-set on each version, in bulk: the rows are read under the write lock (FOR UPDATE on
    PostgreSQL; SQLite's write transactions hold the database), and the update still names the version."""
    ids = [tid for tid, _, _ in changes]
    current = {r.id: r for r in s.execute(
        select(Ticket.id, Ticket.version, Ticket.category, Ticket.corrected_by, Ticket.corrected_at, Ticket.updated_at)
        .where(Ticket.id.in_(ids)).with_for_update())}
    now = datetime.now(UTC)
    ok: list[dict[str, Any]] = []
    refused: list[str] = []
    for tid, version, label in changes:
        row = current.get(tid)
        if row is None:
            refused.append(f"ticket {tid} does not exist any more")
        elif row.version != version:
            when = (row.corrected_at or row.updated_at).strftime("%Y-%m-%d %H:%M:%S UTC")
            refused.append(f"ticket {tid} was changed by {row.corrected_by or 'the classifier'} at {when}")
        else:
            ok.append({"b_id": tid, "b_version": version, "b_label": label, "previous": row.category})
    if ok:
        t = TICKETS.c
        conn = s.connection()
        conn.execute(TICKETS.update().where(t.id == bindparam("b_id"), t.version == bindparam("b_version"))
                     .values(category=bindparam("b_label"), label_source="operator", corrected=True,
                             corrected_by=operator, corrected_at=now, version=t.version + 1, updated_at=now), ok)
        conn.execute(CORRECTIONS.insert(), [
            {"ticket_id": c["b_id"], "previous_label": c["previous"], "new_label": c["b_label"], "operator": operator,
             "note": note, "source": source, "file": file, "created_at": now} for c in ok])
        rollups.label_tickets(s, [int(c["b_id"]) for c in ok])  # what the Quality page and calibration measure
        paths.sync(s, [int(c["b_id"]) for c in ok])  # the routing story's per-day path counts
    return [int(c["b_id"]) for c in ok], refused


def add_labelled_tickets(s: Session, rows: Sequence[tuple[str | None, str, str]], *, operator: str, file: str,
                         note: str | None = None, masked: Sequence[int | None] | None = None,
                         languages: Sequence[str | None] | None = None) -> list[int | None]:
    """(external id, text, label) each: tickets that exist only in the file, stored `classified` with the
    operator's label (no model call, no cost) and their audit rows. None for a ticket with the same id and text
    that exists already (it appeared meanwhile). `masked`: per row, the values masking replaced in its text;
    `languages`: per row, its text's language (both as any import sets them: triage.privacy.prepare_import)."""
    hashes = [content_hash(text, ext) for ext, text, _ in rows]
    exists = set(s.scalars(select(Ticket.content_hash).where(Ticket.content_hash.in_(hashes))))
    now = datetime.now(UTC)
    fresh: list[dict[str, Any]] = [
        {"external_id": ext, "text": text, "source": file, "content_hash": h, "text_hash": text_hash(text),
         "created_at": now, "updated_at": now, "status": CLASSIFIED, "category": label, "label_source": "operator",
         "corrected": True, "corrected_by": operator, "corrected_at": now, "masked_count": count, "language": lang}
        for (ext, text, label), h, count, lang in zip(rows, hashes, masked or [None] * len(rows),
                                                      languages or [None] * len(rows), strict=True)
        if h not in exists]
    ids: dict[str, int] = {}
    if fresh:
        conn = s.connection()
        t = TICKETS.c
        ids = {h: tid for tid, h in conn.execute(TICKETS.insert().returning(t.id, t.content_hash), fresh)}
        conn.execute(CORRECTIONS.insert(), [
            {"ticket_id": ids[r["content_hash"]], "previous_label": None, "new_label": r["category"],
             "operator": operator, "note": note, "source": "import", "file": file, "created_at": now} for r in fresh])
        rollups.bump_version(s, rollups.LABELS)  # new labelled tickets (no answers yet): the label counts moved
        paths.sync(s, ids.values())  # the routing story's per-day path counts
    return [None if h in exists else ids[h] for h in hashes]


def operator_label_counts(s: Session, categories: Sequence[str]) -> dict[str, int]:
    """Tickets carrying an operator's label, per category of the taxonomy (every category listed)."""
    rows = s.execute(select(Ticket.category, func.count()).where(Ticket.label_source == "operator",
                                                                 Ticket.category.in_(categories))
                     .group_by(Ticket.category))
    counts = {c: 0 for c in categories}
    counts.update({str(c): int(n) for c, n in rows})
    return counts



def versions(s: Session, ticket_ids: Sequence[int]) -> dict[int, int]:
    """These tickets' current versions (the compare-and-set of `set_operator_labels` names them)."""
    out: dict[int, int] = {}
    for i in range(0, len(ticket_ids), CHUNK):
        out.update({int(t): int(v) for t, v in s.execute(
            select(Ticket.id, Ticket.version).where(Ticket.id.in_(ticket_ids[i:i + CHUNK])))})
    return out
