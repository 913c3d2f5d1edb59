"""Model answers next to operator labels: the ground truth for accuracy and calibration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NotRequired, TypedDict, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import rollups
from db.models import Correction, LabelledAnswer, ModelCall, RoutingDaily, SpendDaily, Ticket


class Answer(TypedDict):
    """One model answer on a ticket an operator labelled: what the Quality figures are computed from."""

    ticket_id: int
    truth: str  # the operator's label
    tier: int
    model: str
    label: str | None  # the model's
    confidence: float | None
    cost_pico: int
    outcome: str
    examples: int | None  # few-shot examples sent with it (None: before they were counted)
    calibration_id: NotRequired[int | None]  # the three below: from the calls (labelled_calls), not the rollup
    calibrated_confidence: NotRequired[float | None]
    group_size: NotRequired[int]  # tickets in its request (1 before grouping existed)


LIMIT = 50_000  # labelled_calls: model calls read at most
TICKETS = 15_000  # the Quality figures: the newest labelled tickets read at most (about LIMIT calls' worth)


def labelled_calls(s: Session, limit: int | None = LIMIT, since: datetime | None = None,
                   tickets: int | None = None) -> list[Answer]:
    """For tickets an operator labelled (corrected, confirmed or imported): each answered model call (made at or
    after `since`, when given), newest tickets first; at most `limit` calls, of the newest `tickets` labelled
    tickets with an answer (when given)."""
    q = (select(Ticket.id, Ticket.category, ModelCall.tier, ModelCall.model, ModelCall.category,
                ModelCall.confidence, ModelCall.cost_pico, ModelCall.outcome, ModelCall.calibration_id,
                ModelCall.calibrated_confidence, ModelCall.examples, ModelCall.group_size)
         .join(ModelCall, ModelCall.ticket_id == Ticket.id)
         .where(Ticket.label_source == "operator", ModelCall.outcome != "error"))
    if since is not None:
        q = q.where(ModelCall.created_at >= since)
    first = _oldest_of_newest(s, tickets) if tickets is not None else None
    if first is not None:
        q = q.where(Ticket.id >= first)
    q = q.order_by(Ticket.id.desc(), ModelCall.id).limit(limit)
    # an operator-labelled ticket always has its category (db.review.correct, db.labels set both together)
    return [Answer(ticket_id=r[0], truth=cast(str, r[1]), tier=r[2], model=r[3], label=r[4], confidence=r[5],
                   cost_pico=r[6], outcome=r[7], calibration_id=r[8], calibrated_confidence=r[9], examples=r[10],
                   group_size=r[11])
            for r in s.execute(q)]


def labelled_answers(s: Session, tickets: int = TICKETS) -> list[Answer]:
    """The rows `labelled_calls` would give, reduced to what the Quality figures read, from the labelled_answers
    rollup: for the newest `tickets` tickets an operator labelled, each one's latest answered call per tier with
    few-shot examples and without (one row when it was only answered one way), newest tickets first and a ticket's
    rows in call order (so "the latest wins" reads them as it reads the calls). Costs the labels, not the calls."""
    first = _oldest_of_newest(s, tickets)
    keys = ("ticket_id", "truth", "tier", "model", "label", "confidence", "cost_pico", "outcome", "examples")
    q = select(*(getattr(LabelledAnswer, k) for k in keys))
    if first is not None:
        q = q.where(LabelledAnswer.ticket_id >= first)
    q = q.order_by(LabelledAnswer.ticket_id.desc(), LabelledAnswer.call_id)
    return [cast(Answer, dict(zip(keys, r, strict=True))) for r in s.connection().execute(q)]


def _oldest_of_newest(s: Session, tickets: int) -> int | None:
    """The id of the `tickets`-th newest labelled ticket with an answer, None when there are no more than that."""
    return s.scalar(select(LabelledAnswer.ticket_id).distinct().order_by(LabelledAnswer.ticket_id.desc())
                    .offset(max(tickets - 1, 0)).limit(1))


def one_model_per_tier(s: Session) -> bool:
    """No tier has had calls from two models (spend_daily: days x models rows), so no ticket has answers from two
    models of one tier, and its latest answer per tier (labelled_answers) is its latest per tier and model."""
    per_tier = select(func.count(func.distinct(SpendDaily.model))).group_by(SpendDaily.tier)
    return all(n <= 1 for n in s.scalars(per_tier))


def measured_answers(s: Session, since: datetime | None = None) -> list[Answer]:
    """The labelled answers the Quality figures are built from, newest tickets first. From the labelled_answers
    rollup (a labelled ticket's latest answers per tier) where it gives the very answers the calls do: no `since`
    (the rollup holds each tier's latest answers, not the latest since a day) and one model per tier (else a
    ticket's latest answer of an earlier model is not in it). Otherwise from the labelled tickets' calls. Either
    way of the newest TICKETS labelled tickets, so which way is taken never changes the sample. The rollup holds
    each tier's latest answer with few-shot examples and without, which is what the with/without comparison
    reads."""
    if since is None and one_model_per_tier(s):
        return labelled_answers(s, TICKETS)
    return labelled_calls(s, limit=None, since=since, tickets=TICKETS)  # the same tickets as the rollup's


def label_sources(s: Session, ticket_ids: Sequence[int]) -> dict[str, int]:
    """Where these tickets' operator labels came from (their latest audit row): review or import, counted. One
    read of the corrections from the oldest of them on (the ids are the newest labelled tickets)."""
    wanted = set(ticket_ids)
    if not wanted:
        return {}
    latest: dict[int, str] = {}
    rows = s.execute(select(Correction.ticket_id, Correction.source)
                     .where(Correction.ticket_id >= min(wanted)).order_by(Correction.id))
    latest.update({tid: source for tid, source in rows if tid in wanted})  # later rows win
    counts: dict[str, int] = {}
    for source in latest.values():
        counts[source] = counts.get(source, 0) + 1
    return counts


def labels_version(s: Session) -> int:
    """Changes whenever the labelled answers could: an operator label, or a new call on a labelled ticket."""
    return rollups.version(s, rollups.LABELS)


def grouped_requests_made(s: Session) -> bool:
    """Whether any API request was about several tickets (a day and model of spend_daily with fewer requests than
    calls): one read of the daily rollup."""
    return s.scalar(select(SpendDaily.day).where(SpendDaily.requests < SpendDaily.calls).limit(1)) is not None


def priority_pairs(s: Session, limit: int = 15_000) -> list[tuple[str, str | None, float | None]]:
    """For the newest `limit` tickets whose priority an operator set: (the operator's priority, the priority the
    model's latest answer gave, its stated confidence). A ticket the model gave no priority (the local tier says
    unknown) has None."""


    tickets = s.execute(select(Ticket.id, Ticket.priority).where(Ticket.priority_source == "operator",
                                                                 Ticket.priority.is_not(None))
                        .order_by(Ticket.id.desc()).limit(limit)).all()
    truth: dict[int, str] = {tid: p for tid, p in tickets if p is not None}
    answered: dict[int, tuple[str | None, float | None]] = {}
    ids = list(truth)
    for i in range(0, len(ids), 500):
        rows = s.execute(select(ModelCall.ticket_id, ModelCall.priority, ModelCall.priority_confidence)
                         .where(ModelCall.ticket_id.in_(ids[i:i + 500]), ModelCall.outcome != "error")
                         .order_by(ModelCall.id))
        answered.update({tid: (p, c) for tid, p, c in rows})  # the latest answer wins
    return [(truth[t], *answered[t]) for t in ids if t in answered]


def tickets_per_day(s: Session, days: int = 28, today: date | None = None) -> float | None:
    """Production tickets with a model call per day over the last `days` UTC days that had any (routing_daily: a
    pilot's and an eval's tickets are not counted), None when there were none: the traffic a review share is
    scaled by."""
    first = ((today or datetime.now(UTC).date()) - timedelta(days=days - 1)).isoformat()
    n, total = s.execute(select(func.count(), func.coalesce(func.sum(RoutingDaily.tickets), 0))
                         .where(RoutingDaily.day >= first)).one()
    return float(total) / int(n) if n else None


def priority_version(s: Session) -> int:
    """The latest operator priority's id (0: none): with `labels_version`, what the priority figures depend on."""
    from db.models import PriorityCorrection

    return int(s.scalar(select(func.max(PriorityCorrection.id))) or 0)
