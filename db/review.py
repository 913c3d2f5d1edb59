"""The review queue, ticket detail, and operator corrections with an append-only audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from db import paths, rollups, teams
from db.engine import rows_affected
from db.models import Correction, ModelCall, PriorityCorrection, Ticket
from triage.domain import (
    FAILED,
    NEEDS_REVIEW,
    PILOT,
    UNKNOWN,
    ReviewFilter,
    ReviewReason,
    ReviewRow,
    TicketView,
    from_pico,
)
from triage.errors import Conflict, NotFound

PAGE_SIZE = 50


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def _where(q: SelectT, f: ReviewFilter) -> SelectT:
    conds: list[ColumnElement[bool]] = [Ticket.purpose != PILOT]  # a pilot's tickets are not the team's work
    reason_conds: dict[str, ColumnElement[bool]] = {
        # under the threshold: by the stated confidence, or sent to review by its calibrated one (the ticket keeps
        # the stated confidence; routing compared the calibrated one, see triage/quality/calibrate.py)
        ReviewReason.LOW_CONFIDENCE: or_(Ticket.confidence < f.threshold,
                                         and_(Ticket.status == NEEDS_REVIEW, Ticket.corrected.is_(False),
                                              Ticket.category.is_not(None), Ticket.category != UNKNOWN)),
        ReviewReason.UNKNOWN: or_(Ticket.category == UNKNOWN,
                                  and_(Ticket.category.is_(None), Ticket.status == NEEDS_REVIEW)),
        ReviewReason.FAILED: Ticket.status == FAILED,
        ReviewReason.DISAGREEMENT: Ticket.disagree.is_(True),
    }
    picked = [reason_conds[r] for r in f.reasons if r in reason_conds]
    if picked:
        conds.append(or_(*picked))
    if f.corrected is not None:
        conds.append(Ticket.corrected.is_(f.corrected))
    if f.categories:
        conds.append(Ticket.category.in_(f.categories))
    if f.created_from:
        conds.append(Ticket.created_at >= datetime.combine(f.created_from, datetime.min.time(), UTC))
    if f.created_to:
        conds.append(Ticket.created_at < datetime.combine(f.created_to + timedelta(days=1), datetime.min.time(), UTC))
    if f.search.strip():
        conds.append(Ticket.text.ilike(f"%{f.search.strip()}%"))
    if f.run_id is not None:
        conds.append(Ticket.run_id == f.run_id)
    if f.source:
        conds.append(Ticket.source == f.source)
    for column, wanted in ((Ticket.priority, f.priorities), (Ticket.language, f.languages), (Ticket.team, f.teams)):
        if wanted:
            named = [w for w in wanted if w != UNKNOWN]
            conds.append(or_(column.in_(named), column.is_(None)) if UNKNOWN in wanted else column.in_(named))
    if f.masked:  # counted at import under the policy then in force (0021); NULL: imported before, not counted
        conds.append(Ticket.masked_count > 0)
    return q.where(*conds)


COLUMNS = (Ticket.id, Ticket.external_id, Ticket.text, Ticket.category, Ticket.confidence, Ticket.status,
           Ticket.label_source, Ticket.tier1_category, Ticket.tier2_category, Ticket.corrected, Ticket.version,
           Ticket.created_at, Ticket.priority, Ticket.priority_confidence, Ticket.language, Ticket.team)


def _segments(f: ReviewFilter) -> list[tuple[Any, bool]]:
    """The walks a page is read from, in order: (condition, whether the walk is on tickets without a confidence).
    With a priority order, each level's tickets come before the next level's (urgent first), tickets without a
    priority (or one no longer on the scale) last; inside each, unscored tickets first, then by confidence."""
    if not f.priority_order:
        levels: list[Any] = [true()]
    else:
        levels = [Ticket.priority == p for p in f.priority_order]
        levels.append(or_(Ticket.priority.is_(None), Ticket.priority.not_in(f.priority_order)))
    return [(cond, unscored) for cond in levels for unscored in (True, False)]


def review_page(s: Session, f: ReviewFilter, page: int = 0, size: int = PAGE_SIZE) -> list[ReviewRow]:
    """One page, least confident first (unlabelled tickets before everything, each in id order).

    Read as two walks of ix_tickets_confidence_id that stop at the page (tickets without a confidence, then the
    others): one `ORDER BY confidence NULLS FIRST` sorts every match on PostgreSQL, whose index keeps NULLs last."""
    skip = page * size
    rows: list[Any] = []
    for cond, unscored in _segments(f):
        if len(rows) >= size:
            break
        scored = Ticket.confidence.is_(None) if unscored else Ticket.confidence.is_not(None)
        if skip:  # how many of the rows still to skip this walk holds (counted no further than needed)
            held = _where(select(Ticket.id), f).where(cond, scored).limit(skip).subquery()
            n = s.scalar(select(func.count()).select_from(held)) or 0
            if n < skip:
                skip -= n
                continue
        order = (Ticket.id,) if unscored else (Ticket.confidence, Ticket.id)
        rows += s.execute(_where(select(*COLUMNS), f).where(cond, scored).order_by(*order).offset(skip)
                          .limit(size - len(rows))).all()
        skip = 0
    return [ReviewRow(*tuple(r)) for r in rows]


def machine_labels(s: Session, ticket_ids: list[int]) -> dict[int, tuple[str | None, int]]:
    """The label the deciding model gave each ticket (highest tier that answered, latest call): (label, tier)."""
    rows = s.execute(select(ModelCall.ticket_id, ModelCall.tier, ModelCall.category)
                     .where(ModelCall.ticket_id.in_(ticket_ids), ModelCall.outcome != "error")
                     .order_by(ModelCall.ticket_id, ModelCall.tier, ModelCall.id))
    return {tid: (category, tier) for tid, tier, category in rows}  # later rows win


def languages(s: Session) -> list[str]:
    """The languages detected on tickets so far (the review filter's choices), from the language index."""
    return list(s.scalars(select(Ticket.language).where(Ticket.language.is_not(None)).distinct()
                          .order_by(Ticket.language)))


def teams_in_use(s: Session) -> list[str]:
    """The teams tickets have been routed to so far (the review filter's choices), from the team index."""
    return list(s.scalars(select(Ticket.team).where(Ticket.team.is_not(None)).distinct().order_by(Ticket.team)))


def review_count(s: Session, f: ReviewFilter, cap: int | None = None) -> int:
    """Tickets matching `f`, counted up to `cap` (a count of every match costs a scan of every ticket)."""
    if cap is None:
        return s.scalar(_where(select(func.count()).select_from(Ticket), f)) or 0
    matches = _where(select(Ticket.id), f).limit(cap).subquery()
    return s.scalar(select(func.count()).select_from(matches)) or 0


def ticket(s: Session, ticket_id: int) -> TicketView | None:
    t = s.get(Ticket, ticket_id)
    if t is None:
        return None
    return TicketView(t.id, t.external_id, t.text, t.source, t.status, t.status_reason, t.category, t.confidence,
                      t.label_source, t.corrected, t.version, t.priority, t.priority_confidence, t.priority_source,
                      t.language, t.team, masked_count=t.masked_count)


def calls_of(s: Session, ticket_id: int) -> list[ModelCall]:
    return list(s.scalars(select(ModelCall).where(ModelCall.ticket_id == ticket_id).order_by(ModelCall.id)))


def history_of(s: Session, ticket_id: int) -> list[Correction]:
    return list(s.scalars(select(Correction).where(Correction.ticket_id == ticket_id).order_by(Correction.id)))


def _compare_and_set(s: Session, t: Ticket, expected_version: int, *,
                     then: str = "reload it before saving", **values: Any) -> None:
    """Write `values` and bump the version only if the ticket is still at `expected_version` (two operators can
    never both win); otherwise Conflict naming who changed it and when, and `then` (what the operator does now)."""
    res = s.execute(update(Ticket).where(Ticket.id == t.id, Ticket.version == expected_version)
                    .values(version=Ticket.version + 1, **values).execution_options(synchronize_session=False))
    if rows_affected(res) != 1:
        s.refresh(t)
        who = t.corrected_by or "the classifier"
        when = (t.corrected_at or t.updated_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise Conflict(f"ticket {t.id} was changed by {who} at {when}: {then}")


def correct(s: Session, ticket_id: int, new_label: str, *, operator: str, expected_version: int,
            note: str | None = None) -> int:
    """Set the operator's label if nobody changed the ticket since `expected_version`; returns the new version.

    The update is a compare-and-set on `version`, so two operators can never both win."""
    t = s.get(Ticket, ticket_id)
    if t is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    previous = t.category
    now = datetime.now(UTC)
    _compare_and_set(s, t, expected_version, category=new_label, label_source="operator", corrected=True,
                     corrected_by=operator, corrected_at=now, updated_at=now)
    s.add(Correction(ticket_id=ticket_id, previous_label=previous, new_label=new_label, operator=operator,
                     note=note or None, created_at=now))
    rollups.label_ticket(s, ticket_id, new_label)  # what the Quality page measures
    paths.sync(s, [ticket_id])  # the routing story's per-day path counts (db/paths.py)
    s.refresh(t)
    teams.assign(s, t)  # the team follows the category
    return expected_version + 1


def correct_priority(s: Session, ticket_id: int, new_priority: str, *, operator: str, expected_version: int,
                     note: str | None = None) -> int:
    """Set the operator's priority if nobody changed the ticket since `expected_version` (the same compare-and-set
    as `correct`); appends a `priority_corrections` row; the ticket's team follows its new priority. Returns the
    new version."""
    t = s.get(Ticket, ticket_id)
    if t is None:
        raise NotFound(f"ticket {ticket_id} does not exist")
    previous = t.priority
    now = datetime.now(UTC)
    _compare_and_set(s, t, expected_version, priority=new_priority, priority_confidence=None,
                     priority_source="operator", updated_at=now)
    s.add(PriorityCorrection(ticket_id=ticket_id, previous_priority=previous, new_priority=new_priority,
                             operator=operator, note=note or None, created_at=now))
    s.refresh(t)
    teams.assign(s, t)
    return expected_version + 1


def priority_history_of(s: Session, ticket_id: int) -> list[PriorityCorrection]:
    return list(s.scalars(select(PriorityCorrection).where(PriorityCorrection.ticket_id == ticket_id)
                          .order_by(PriorityCorrection.id)))


@dataclass(frozen=True)
class LabelState:
    """What a save changed on a ticket, kept so that it can be undone: its label fields before, its version after."""

    ticket_id: int
    version: int  # after the save: an undo applies only if nobody changed the ticket since
    category: str | None
    label_source: str | None
    corrected: bool
    corrected_by: str | None
    corrected_at: datetime | None


def label_state(s: Session, ticket_id: int) -> LabelState | None:
    t = s.get(Ticket, ticket_id)
    if t is None:
        return None
    return LabelState(t.id, t.version, t.category, t.label_source, t.corrected, t.corrected_by, t.corrected_at)


def undo(s: Session, before: LabelState, *, operator: str) -> int:
    """Put a ticket's label fields back as `before` holds them, if its version is still the one the save left
    (compare-and-set, as `correct`); appends a row to the corrections trail saying so. Returns the new version."""
    t = s.get(Ticket, before.ticket_id)
    if t is None:
        raise NotFound(f"ticket {before.ticket_id} does not exist")
    undone = t.category
    now = datetime.now(UTC)
    _compare_and_set(s, t, before.version, then="not undone (it changed after your save)",
                     category=before.category, label_source=before.label_source, corrected=before.corrected,
                     corrected_by=before.corrected_by, corrected_at=before.corrected_at, updated_at=now)
    operator_label = before.label_source == "operator" and before.category is not None
    earlier = s.scalar(select(Correction.source).where(Correction.ticket_id == before.ticket_id)
                       .order_by(Correction.id.desc()).offset(1).limit(1))
    # the trail's latest row says where the label now standing came from (review or import), or "undo" when the
    # ticket is back to the machine's label (db.quality.label_sources reads the latest row of labelled tickets)
    s.add(Correction(ticket_id=before.ticket_id, previous_label=undone, new_label=before.category or "",
                     operator=operator, note="undo", source=(earlier or "review") if operator_label else "undo",
                     created_at=now))
    if operator_label:
        rollups.label_ticket(s, before.ticket_id, before.category or "")
    else:
        rollups.unlabel_ticket(s, before.ticket_id)
    paths.sync(s, [before.ticket_id])  # the routing story's per-day path counts (db/paths.py)
    return before.version + 1


def matching(s: Session, f: ReviewFilter, limit: int) -> list[tuple[int, str | None, int]]:
    """(ticket id, label, version) of the tickets matching `f`, least confident first, at most `limit`."""
    rows = s.execute(_where(select(Ticket.id, Ticket.category, Ticket.version), f)
                     .order_by(Ticket.confidence.is_not(None), Ticket.confidence, Ticket.id).limit(limit))
    return [(tid, category, version) for tid, category, version in rows]


class ExportRow(TypedDict):
    """A ticket as `triage export` writes it (CSV or JSONL, in this order)."""

    ticket_id: int
    external_id: str | None
    text: str
    category: str | None
    confidence: float | None
    label_source: str | None
    status: str
    tier1_category: str | None
    tier2_category: str | None
    escalated: bool
    corrected_by: str | None
    source: str
    created_at: str
    priority: str | None
    language: str | None
    team: str | None
    cost_usd: str  # exact decimal dollars


def export_page(s: Session, page: int, size: int) -> list[ExportRow]:
    """Tickets with labels and their total model cost, in id order (paged, for exports)."""
    cost = (select(ModelCall.ticket_id, func.sum(ModelCall.cost_pico).label("cost_pico"))
            .group_by(ModelCall.ticket_id).subquery())
    q = (select(Ticket, cost.c.cost_pico).outerjoin(cost, cost.c.ticket_id == Ticket.id)
         .where(Ticket.purpose != PILOT)  # a pilot's sample is not the team's tickets
         .order_by(Ticket.id).limit(size).offset(page * size))
    return [ExportRow(
        ticket_id=t.id, external_id=t.external_id, text=t.text, category=t.category,
        confidence=t.confidence, label_source=t.label_source, status=t.status,
        tier1_category=t.tier1_category, tier2_category=t.tier2_category, escalated=t.escalated,
        corrected_by=t.corrected_by, source=t.source, created_at=t.created_at.isoformat(),
        priority=t.priority, language=t.language, team=t.team,
        cost_usd=str(from_pico(c)),
    ) for t, c in s.execute(q)]


def sonnet_decided(s: Session, ticket_ids: list[int]) -> dict[int, int]:
    """Those of these tickets tier 2 has already answered (among the calls that count for their label), each with
    what its latest such answer cost (pico-dollars): asking again would bill about that again."""
    out: dict[int, int] = {}
    for i in range(0, len(ticket_ids), 500):
        rows = s.execute(select(ModelCall.ticket_id, ModelCall.cost_pico)
                         .join(Ticket, Ticket.id == ModelCall.ticket_id)
                         .where(ModelCall.ticket_id.in_(ticket_ids[i:i + 500]), ModelCall.tier == 2,
                                ModelCall.outcome != "error", ModelCall.id >= Ticket.first_call_id)
                         .order_by(ModelCall.ticket_id, ModelCall.id))
        out.update({tid: cost for tid, cost in rows})  # later calls win
    return out


def rows_by_id(s: Session, ticket_ids: list[int]) -> list[ReviewRow]:
    """These tickets as the review table shows them (any order)."""
    return [ReviewRow(*tuple(r)) for r in s.execute(select(*COLUMNS).where(Ticket.id.in_(ticket_ids)))]
