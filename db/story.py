"""The routing story's counts (triage/story.py): each ticket's path through the tiers to its outcome (db.paths:
per UTC day it arrived, from path_daily), reviews per day, and each model's answers against operator labels.
Money comes from the per-day rollups (db.reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TypedDict

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from db import paths as db_paths
from db import rollups
from db.models import Correction, LabelledAnswer, SpendDaily, Ticket
from db.paths import DEMO_SOURCE, PathRow


class ReviewDay(TypedDict):
    day: str
    reviews: int  # labels set in the review queue (a correction or a confirmation)
    tickets: int  # distinct tickets they were on
    demo_reviews: int  # on demo tickets (the demo's made-up operators)


class ModelAnswers(TypedDict):
    tier: int
    model: str
    n: int  # operator-labelled tickets it answered (its latest answer on each)
    right: int


def _period(q, column, start: date, end: date):  # type: ignore[no-untyped-def]
    return rollups.within_days(q, start, end, column)


def paths(s: Session, start: date, end: date) -> list[PathRow]:
    """Tickets that arrived on the UTC days `start`..`end`, grouped by their path (db.paths)."""
    return db_paths.paths(s, start, end)


def reviews_by_day(s: Session, start: date, end: date) -> list[ReviewDay]:
    """Labels operators set in the review queue per UTC day (corrections and confirmations; imports apart)."""
    if s.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Correction.created_at), "YYYY-MM-DD").label("day")
    else:  # SQLite stores ISO text: the first 10 characters are the day
        day = func.substr(Correction.created_at, 1, 10).label("day")
    demo = case((Ticket.source == DEMO_SOURCE, 1), else_=0)
    q = select(day, func.count().label("reviews"), func.count(func.distinct(Correction.ticket_id)).label("tickets"),
               func.sum(demo).label("demo")).join(Ticket, Ticket.id == Correction.ticket_id) \
        .where(Correction.source == "review").group_by(day).order_by(day)
    return [ReviewDay(day=str(r.day), reviews=int(r.reviews), tickets=int(r.tickets), demo_reviews=int(r.demo or 0))
            for r in s.execute(_period(q, Correction.created_at, start, end))]


def reviewed_tickets(s: Session, start: date, end: date) -> int:
    """Distinct tickets labelled in the review queue on those days (a ticket reviewed on two days counts once)."""
    q = select(func.count(func.distinct(Correction.ticket_id))).where(Correction.source == "review")
    return int(s.scalar(_period(q, Correction.created_at, start, end)) or 0)


def model_answers(s: Session) -> list[ModelAnswers]:
    """Per tier and model: operator-labelled tickets it answered (its latest answer on each, with few-shot
    examples or without) and how many of those answers the operator's label agrees with. The labelled_answers
    rollup, so it costs the labelled tickets, not the calls; the same answers `triage quality` measures."""
    latest = select(func.max(LabelledAnswer.call_id)).group_by(LabelledAnswer.ticket_id, LabelledAnswer.tier)
    right = func.sum(case((LabelledAnswer.label == LabelledAnswer.truth, 1), else_=0))
    q = select(LabelledAnswer.tier, LabelledAnswer.model, func.count().label("n"), right.label("right")) \
        .where(LabelledAnswer.call_id.in_(latest)).group_by(LabelledAnswer.tier, LabelledAnswer.model) \
        .order_by(LabelledAnswer.tier, LabelledAnswer.model)
    return [ModelAnswers(tier=r.tier, model=r.model, n=int(r.n), right=int(r.right or 0)) for r in s.execute(q)]


def backdate_reviews(s: Session, ticket_ids: Sequence[int], when: dict[int, datetime]) -> None:
    """Demo data only: date the demo operators' labels like the history they review."""
    for tid in ticket_ids:
        s.execute(update(Correction).where(Correction.ticket_id == tid).values(created_at=when[tid]))


def version(s: Session) -> tuple[int, int, int, int]:
    """Changes when a figure can: a call recorded, a label set, a ticket imported, a ticket changed path."""
    return (*rollups.calls_version(s)[:1], rollups.version(s, rollups.LABELS),
            int(s.scalar(select(func.max(Ticket.id))) or 0), rollups.version(s, db_paths.PATHS))


def demo_cost_by_tier(s: Session, start: date, end: date) -> list[tuple[int, int]]:
    """(tier, simulated cost in pico-dollars) of the demo's calls on those UTC days, from the spend rollup."""
    q = select(SpendDaily.tier, func.sum(SpendDaily.demo_cost_pico)).where(
        SpendDaily.day >= start.isoformat(), SpendDaily.day <= end.isoformat()).group_by(SpendDaily.tier)
    return [(int(t), int(c or 0)) for t, c in s.execute(q)]
