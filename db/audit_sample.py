"""The blind audit sample: each ticket settled without review is drawn at random, as it settles, with the audit
rate in force (a lead's saved `audit_rate`, else TRIAGE_AUDIT_RATE, else DEFAULT_RATE: the same order as
triage.settings.effective), in the transaction that settles it; every such ticket gets a row with the chance it
had, drawn or not, so the estimate weights each audited ticket by 1/probability and the population is known.
Drawn tickets wait for an operator's blind answer. Callers hold the transaction."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import paths, rollups
from db import settings as db_settings
from db.models import AuditDraw, Ticket
from triage.domain import CLASSIFIED, ESCALATED, PRODUCTION, Outcome

DEFAULT_RATE = 0.03  # 3% of the tickets settled without review
ENV = "TRIAGE_AUDIT_RATE"
APART = ("eval:", "pilot:")  # sources of tickets kept apart from production figures
VERSION = "audit"  # data version bumped by every answer and redraw (the settled counts move with PATHS)
_rng = random.Random()  # noqa: S311 - a sample, not a secret; `seed` makes tests repeatable


class Waiting(TypedDict):
    """A drawn ticket awaiting its blind answer (`triage audit --json` prints these): never the model's label."""

    id: int
    external_id: str | None
    text: str


class Answered(TypedDict):
    """An answered draw: the (tier, model) and label it settled with, the blind answer, its chance of being drawn."""

    tier: int
    model: str
    label: str | None
    answer: str | None
    probability: float


def seed(value: int | None) -> None:
    """Make the draws repeatable (tests); None: from the system's entropy again."""
    _rng.seed(value)


def rate_in_force(s: Session) -> float:
    """The audit rate a ticket settling now is drawn with: what a lead saved, else the environment, else 3%."""
    saved = (db_settings.get(s, "engine", {}) or {}).get("audit_rate")
    if saved is not None:
        return float(saved)
    raw = os.environ.get(ENV)
    try:
        rate = float(raw) if raw else DEFAULT_RATE
    except ValueError:  # triage.settings refuses it at start; a draw never fails a settle
        rate = DEFAULT_RATE
    return min(max(rate, 0.0), 1.0)


def consider(s: Session, t: Ticket, o: Outcome) -> bool:
    """Called by calls.apply_outcome once the ticket's outcome is applied: a ticket settled without review
    (classified or escalated, its label a model's) for the first time gets its row, drawn with the rate in force.
    A ticket that settles again (asked again later) keeps its first row: one chance per ticket. Gold tickets of
    `triage eval` (and pilots) are not traffic and are left out. Returns drawn."""
    if t.status not in (CLASSIFIED, ESCALATED) or t.corrected or o.tier is None:
        return False
    if (t.source or "").startswith(APART) or (t.purpose or PRODUCTION) != PRODUCTION:  # not production traffic
        return False
    if s.get(AuditDraw, t.id) is not None:
        return False
    p = rate_in_force(s)
    drawn = p > 0 and _rng.random() < p
    s.add(AuditDraw(ticket_id=t.id, settled_at=datetime.now(UTC), tier=o.tier, model=o.model or f"tier{o.tier}",
                    label=t.category, probability=p, drawn=drawn))
    return drawn


def redraw(s: Session, ticket_ids: Sequence[int], probability: float, rng: random.Random) -> list[int]:
    """Draw these tickets' rows again, each with `probability` (recorded on the row, so the estimate weighs them
    by it): the demo's simulated audit. Rows already answered are left as they are. Returns the ids drawn."""
    drawn = []
    for i in range(0, len(ticket_ids), 500):
        for row in s.scalars(select(AuditDraw).where(AuditDraw.ticket_id.in_(ticket_ids[i:i + 500]),
                                                     AuditDraw.answered_at.is_(None)).order_by(AuditDraw.ticket_id)):
            row.probability, row.drawn = probability, rng.random() < probability
            if row.drawn:
                drawn.append(row.ticket_id)
    rollups.bump_version(s, VERSION)
    return drawn


def waiting(s: Session, limit: int | None = None) -> list[Waiting]:
    """Drawn tickets awaiting an answer, oldest first: id, external id, text. No model label, no confidence."""
    q = (select(Ticket.id, Ticket.external_id, Ticket.text).join(AuditDraw, AuditDraw.ticket_id == Ticket.id)
         .where(AuditDraw.drawn.is_(True), AuditDraw.answered_at.is_(None)).order_by(AuditDraw.ticket_id))
    if limit is not None:
        q = q.limit(limit)
    return [Waiting(id=r[0], external_id=r[1], text=r[2]) for r in s.execute(q)]


def waiting_count(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(AuditDraw).where(
        AuditDraw.drawn.is_(True), AuditDraw.answered_at.is_(None))) or 0)


def drawn_rows(s: Session, ticket_ids: Sequence[int]) -> dict[int, AuditDraw]:
    """These tickets' rows, for those drawn (locked on PostgreSQL: an answer is a compare-and-set on it)."""
    out: dict[int, AuditDraw] = {}
    for i in range(0, len(ticket_ids), 500):
        out.update({r.ticket_id: r for r in s.scalars(select(AuditDraw).where(
            AuditDraw.ticket_id.in_(ticket_ids[i:i + 500]), AuditDraw.drawn.is_(True)).with_for_update())})
    return out


def record_answer(s: Session, row: AuditDraw, answer: str, operator: str) -> None:
    row.answer, row.answered_by, row.answered_at = answer, operator, datetime.now(UTC)
    rollups.bump_version(s, VERSION)


def version(s: Session) -> tuple[int, int, float]:
    """Changes whenever the blind audit's figures can (what a cached page is keyed on), from a few rows: an
    answer or a redraw (VERSION); a ticket settling without review, which gets its row in the transaction that
    moves its path (`paths.PATHS`, bumped at that commit); and the rate in force (a
    lead who changes it sees the figures read again)."""
    return rollups.version(s, VERSION), rollups.version(s, paths.PATHS), rate_in_force(s)


def answered(s: Session) -> list[Answered]:
    """Every answered draw: tier, model, the label it settled with, the blind answer, its probability."""
    q = select(AuditDraw.tier, AuditDraw.model, AuditDraw.label, AuditDraw.answer, AuditDraw.probability).where(
        AuditDraw.drawn.is_(True), AuditDraw.answered_at.is_not(None))
    return [Answered(tier=r[0], model=r[1], label=r[2], answer=r[3], probability=r[4]) for r in s.execute(q)]


def weights(s: Session) -> dict[int, float]:
    """Per ticket with a blind answer: 1/the chance it had of being drawn, the weight its label carries when
    calibration and the threshold recommendation stand labels for the traffic (triage/quality/calibrate.py)."""
    q = select(AuditDraw.ticket_id, AuditDraw.probability).where(
        AuditDraw.drawn.is_(True), AuditDraw.answered_at.is_not(None), AuditDraw.probability > 0)
    return {int(t): 1.0 / float(p) for t, p in s.execute(q)}


def settled(s: Session) -> dict[tuple[int, str], int]:
    """Tickets settled without review since the audit began, per (tier, model)."""
    rows = s.execute(select(AuditDraw.tier, AuditDraw.model, func.count()).group_by(AuditDraw.tier, AuditDraw.model))
    return {(int(t), str(m)): int(n) for t, m, n in rows}
