"""Each ticket's path through the tiers to its outcome, counted per UTC day it arrived (path_daily), so the
Routing page reads a few hundred rows per period, not every ticket of it.

A ticket's path, from its row and its first operator label (the corrections trail):
- `decider`: the tier that decided it: Sonnet when Sonnet answered it, else Haiku when Haiku did, else the local
  model; LABELLED: it arrived already labelled (a label import, no model call); NONE: no answer yet;
- `via_haiku`: Haiku answered it (for a Sonnet-decided ticket: escalated, not asked directly);
- `result`: settled automatically (classified, escalated), sent to review (needs_review), or not settled
  (pending, failed);
- `verdict`: its first operator label kept the machine's label (confirmed) or changed it (corrected); unreviewed;
- `label_from`: where that first operator label came from (review | import; "" when unlabelled);
and the day it arrived (tickets.created_at, UTC) and whether it is the demo's.

Exactness: every write that can change any of these calls `sync` with the tickets it touched, in its own
transaction. `sync` reads each ticket's path now and the path it is counted under (tickets.path), and for those
that differ takes the ticket off the old path and puts it on the new one. `rebuild` recounts everything with
the same function; `paths_from_tickets` is the definition (a GROUP BY over the tickets) the rollup must equal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, and_, case, delete, event, func, select, update
from sqlalchemy.orm import Session

from db import rollups
from db.models import Correction, PathDaily, Ticket
from triage.domain import CLASSIFIED, ESCALATED, NEEDS_REVIEW, PILOT

DEMO_SOURCE = "demo"  # tickets written by `triage demo` (triage.demo.SOURCE)
PATHS = "paths"  # data version bumped whenever a ticket changes path

LOCAL, HAIKU, SONNET, LABELLED, NONE = "local", "haiku", "sonnet", "labelled", "none"
SETTLED, REVIEW, UNSETTLED = "settled", "review", "unsettled"
CONFIRMED, CORRECTED, UNREVIEWED = "confirmed", "corrected", "unreviewed"
_PENDING = "path_moves"  # Session.info key: this transaction's moves, written at commit (write_pending)
_CHUNK = 5000  # ids per statement (under SQLite's 32,766 bound parameters)


class PathRow(TypedDict):
    decider: str  # LOCAL | HAIKU | SONNET | LABELLED | NONE (no answer yet: pending, or failed)
    via_haiku: bool  # Haiku answered it (for a Sonnet-decided ticket: escalated, not asked directly)
    result: str  # SETTLED | REVIEW | UNSETTLED
    verdict: str  # CONFIRMED | CORRECTED | UNREVIEWED
    label_from: str | None  # "review" | "import": where its first operator label came from; None: unlabelled
    tickets: int
    demo_tickets: int


def _day(s: Session) -> ColumnElement[str]:
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Ticket.created_at), "YYYY-MM-DD")
    return func.substr(Ticket.created_at, 1, 10)  # SQLite stores ISO text: the first 10 characters are the day


def _parts(s: Session) -> list[ColumnElement[Any]]:
    """day, decider, via, result, verdict, label_from ("" when none), demo: a ticket's path, in SQL."""
    first = (select(func.min(Correction.id)).where(Correction.ticket_id == Ticket.id)
             .correlate(Ticket).scalar_subquery())
    first_prev = select(Correction.previous_label).where(Correction.id == first).scalar_subquery()
    first_source = select(Correction.source).where(Correction.id == first).scalar_subquery()
    labelled = func.coalesce(Ticket.label_source, "") == "operator"  # never NULL: ~labelled must be true then
    decider = case((Ticket.tier2_category.is_not(None), SONNET), (Ticket.tier1_category.is_not(None), HAIKU),
                   (and_(labelled, Ticket.confidence.is_(None)), LABELLED), (Ticket.label_source.is_(None), NONE),
                   else_=LOCAL)
    via = case((Ticket.tier1_category.is_not(None), 1), else_=0)
    result = case((Ticket.status.in_((CLASSIFIED, ESCALATED)), SETTLED),
                  (Ticket.status == NEEDS_REVIEW, REVIEW), else_=UNSETTLED)
    verdict = case((~labelled, UNREVIEWED), (first_prev == Ticket.category, CONFIRMED), else_=CORRECTED)
    source = case((labelled, func.coalesce(first_source, "")), else_="")
    demo = case((Ticket.source == DEMO_SOURCE, 1), else_=0)
    return [_day(s).label("day"), decider.label("decider"), via.label("via"), result.label("result"),
            verdict.label("verdict"), source.label("label_from"), demo.label("demo")]


def key(day: str, decider: str, via: int, result: str, verdict: str, label_from: str, demo: int) -> str:
    """What tickets.path holds: the path_daily row a ticket is counted in, and whether as a demo ticket."""
    return f"{day}|{decider}|{int(via)}|{result}|{verdict}|{label_from or ''}|{int(demo)}"


def sync(s: Session, ticket_ids: Iterable[int]) -> int:
    """Count these tickets under the path they are on now: each one whose path changed (or that was not counted
    yet) leaves its old path_daily row and joins its new one. Call it in the transaction that changed them,
    after the change. Returns how many moved."""
    ids = sorted(set(ticket_ids))
    moved = 0
    for i in range(0, len(ids), _CHUNK):
        moved += _sync_where(s, Ticket.id.in_(ids[i:i + _CHUNK]))
    return moved


def _sync_where(s: Session, cond: ColumnElement[bool], apart: bool = True) -> int:
    """`apart`: leave a pilot's tickets uncounted (False only before migration 0025 made them: no column yet)."""
    if apart:
        cond = and_(cond, Ticket.purpose != PILOT)  # a pilot's sample is not traffic
    # FOR NO KEY UPDATE: the lock every caller's UPDATE already holds on these rows; FOR UPDATE would wait on the
    # key-share locks of calls being inserted for them (their foreign key) and deadlock with the worker (PostgreSQL)
    rows = s.execute(select(Ticket.id, Ticket.path, *_parts(s)).where(cond).with_for_update(key_share=True)).all()
    delta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    to: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        new = key(r.day, r.decider, r.via, r.result, r.verdict, r.label_from, r.demo)
        if new == r.path:
            continue
        for k, sign in ((r.path, -1), (new, 1)):
            if k is not None:
                d = delta[k.rsplit("|", 1)[0]]
                d[0] += sign
                d[1] += sign * int(k.rsplit("|", 1)[1])
        to[new].append(r.id)
    for new, tids in to.items():
        s.execute(update(Ticket).where(Ticket.id.in_(tids)).values(path=new)
                  .execution_options(synchronize_session=False))
    if to:
        pending: dict[str, list[int]] = s.info.setdefault(_PENDING, {})
        for row, (n, demo) in delta.items():
            p = pending.setdefault(row, [0, 0])
            p[0] += n
            p[1] += demo
    return sum(len(v) for v in to.values())


@event.listens_for(Session, "before_commit")
def write_pending(s: Session) -> None:
    """Add the transaction's path moves to path_daily, at its end and in key order: two writers moving tickets
    between the same rows lock them in the same order, so they queue rather than deadlock (PostgreSQL)."""
    pending: dict[str, list[int]] | None = s.info.pop(_PENDING, None)
    if pending is None:
        return
    for row in sorted(pending):
        n, demo = pending[row]
        if n or demo:
            day, decider, via, result, verdict, label_from = row.split("|")
            rollups._bump(s, PathDaily, {"day": day, "decider": decider, "via_haiku": int(via), "result": result,
                                         "verdict": verdict, "label_from": label_from},
                          {"tickets": n, "demo_tickets": demo})
    rollups.bump_version(s, PATHS)


@event.listens_for(Session, "after_rollback")
def _forget_pending(s: Session) -> None:
    s.info.pop(_PENDING, None)


def rebuild(s: Session, *, apart: bool = True) -> int:
    """Recount every ticket's path from scratch (the migration that created path_daily, bulk loads, audits), in
    id ranges, with `sync`'s own code. Returns the path_daily rows. `apart`: see `_sync_where`."""
    s.execute(update(Ticket).values(path=None).execution_options(synchronize_session=False))
    s.execute(delete(PathDaily))
    top = int(s.scalar(select(func.max(Ticket.id))) or 0)
    step = 20_000
    for lo in range(0, top + 1, step):
        _sync_where(s, and_(Ticket.id >= lo, Ticket.id < lo + step), apart)
    write_pending(s)  # now: a migration's session is never committed itself
    return int(s.scalar(select(func.count()).select_from(PathDaily)) or 0)


def paths(s: Session, start: date, end: date) -> list[PathRow]:
    """Tickets that arrived on the UTC days `start`..`end`, per path (path_daily: rows per day and path)."""
    n, demo = func.sum(PathDaily.tickets), func.sum(PathDaily.demo_tickets)
    q = select(PathDaily.decider, PathDaily.via_haiku, PathDaily.result, PathDaily.verdict, PathDaily.label_from,
               n.label("n"), demo.label("demo")) \
        .where(PathDaily.day >= start.isoformat(), PathDaily.day <= end.isoformat()) \
        .group_by(PathDaily.decider, PathDaily.via_haiku, PathDaily.result, PathDaily.verdict, PathDaily.label_from) \
        .having(n > 0)
    return sorted((_row(r) for r in s.execute(q)), key=_order)


def paths_from_tickets(s: Session, start: date | None, end: date | None) -> list[PathRow]:
    """The definition: the same counts grouped over every ticket row of those days (what `paths` must equal)."""
    p = _parts(s)[1:]
    q = (select(*p[:5], func.count().label("n"), func.sum(p[5]).label("demo")).where(Ticket.purpose != PILOT)
         .group_by(*p[:5]))
    return sorted((_row(r) for r in s.execute(rollups.within_days(q, start, end, Ticket.created_at))), key=_order)


def _row(r: Any) -> PathRow:
    return PathRow(decider=r.decider, via_haiku=bool(r[1]), result=r.result, verdict=r.verdict,
                   label_from=r.label_from or None, tickets=int(r.n), demo_tickets=int(r.demo or 0))


def _order(p: PathRow) -> tuple[str, bool, str, str, str]:
    return p["decider"], p["via_haiku"], p["result"], p["verdict"], p["label_from"] or ""
