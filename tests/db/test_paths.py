"""path_daily (the routing story's per-day path counts) equals a GROUP BY over the tickets, on random histories
played through the real write paths: imports (new, requeued, reclassified, demo), outcomes of every tier and
status, escalation requests, requeues, review-queue labels (confirmations and corrections, again and again, and
undone),
label imports (known tickets and tickets only in the file), erasure, and tickets backdated to other days.
Seeded, so a failure names the history that broke; a rebuild gives the same table."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import calls as db_calls
from db import labels, paths, privacy, queue, reports, review, rollups
from db.engine import Database
from db.models import PathDaily, Ticket
from triage import taxonomy
from triage.domain import CLASSIFIED, ESCALATED, NEEDS_REVIEW, OK, CallResult, Outcome, TicketState, Usage

TAX = taxonomy.default()
FIRST = date(2026, 11, 20)
DAYS = 6


def _call(rnd: random.Random, tier: int, label: str) -> CallResult:
    model = {0: "local-minilm", 1: "claude-haiku-5-5", 2: "claude-sonnet-5-5"}[tier]
    return CallResult(tier=tier, model=model, outcome=OK, category=label, confidence=rnd.random(), usage=Usage(10, 5))


def _outcome(rnd: random.Random) -> Outcome:
    label = rnd.choice(TAX.names)
    kind = rnd.choice(["local", "haiku", "escalated", "direct", "review", "failed", "pending"])
    if kind == "local":
        return Outcome(status=CLASSIFIED, tier=0, category=label, confidence=0.95, calls=[_call(rnd, 0, label)])
    if kind == "haiku":
        return Outcome(status=CLASSIFIED, tier=1, category=label, confidence=0.9, calls=[_call(rnd, 1, label)])
    if kind in ("escalated", "direct"):
        calls = [_call(rnd, 1, rnd.choice(TAX.names))] if kind == "escalated" else []
        return Outcome(status=ESCALATED if calls else CLASSIFIED, tier=2, category=label, confidence=0.9,
                       escalated=bool(calls), calls=[*calls, _call(rnd, 2, label)])
    if kind == "review":
        return Outcome(status=NEEDS_REVIEW, tier=1, category=label, confidence=0.3, calls=[_call(rnd, 1, label)])
    return Outcome(status=TicketState(kind), reason="no answer")  # failed, or left pending: no label


def play(db: Database, rnd: random.Random, *, tickets: int, events: int) -> None:
    with db.transaction() as s:
        ids = list(queue.import_tickets(s, [(None, f"ticket {rnd.getrandbits(40)}") for _ in range(tickets)],
                                        source=rnd.choice(["t", "demo"]), run_id=None).ticket_ids)
    texts = {}
    for _ in range(events):
        kind = rnd.choices(["outcome", "correct", "escalate", "requeue", "import", "labels", "file_only", "erase",
                            "backdate", "several", "undo"], [8, 4, 1, 1, 1, 1, 1, 1, 2, 1, 2])[0]
        tid = rnd.choice(ids)
        with db.transaction() as s:
            if kind == "outcome":
                db_calls.apply_outcome(s, tid, _outcome(rnd))
            elif kind == "correct":  # a confirmation (the machine's label kept) or a correction
                t = s.get_one(Ticket, tid)
                label = t.category if t.category and rnd.random() < 0.5 else rnd.choice(TAX.names)
                review.correct(s, tid, label, operator="op", expected_version=t.version)
            elif kind == "escalate":
                queue.request_escalation(s, rnd.sample(ids, 3))
            elif kind == "requeue":
                queue.requeue_tickets(s, rnd.sample(ids, 3), None)
            elif kind == "import":  # some known (requeued if failed or pending, or all with reclassify), some new
                known = [(None, s.get_one(Ticket, t).text) for t in rnd.sample(ids, 3)]
                new = [(None, f"ticket {rnd.getrandbits(40)}") for _ in range(2)]
                got = queue.import_tickets(s, [*known, *new], source="t", run_id=None,
                                           reclassify=rnd.random() < 0.3)
                ids.extend(got.new_ids)
            elif kind == "labels":
                chosen = [s.get_one(Ticket, t) for t in rnd.sample(ids, 3)]
                labels.set_operator_labels(s, [(t.id, t.version, rnd.choice(TAX.names)) for t in chosen],
                                           operator="lead", file="labels.csv")
            elif kind == "file_only":
                text = f"only in the file {rnd.getrandbits(40)}"
                got_ids = labels.add_labelled_tickets(s, [(None, text, rnd.choice(TAX.names))], operator="lead",
                                                      file="labels.csv")
                ids.extend(i for i in got_ids if i is not None)
                texts[text] = got_ids[0]
            elif kind == "erase":
                found = privacy.find(s, [tid])
                privacy.erase(s, found.erasable)
            elif kind == "backdate":  # another day, sometimes right at a UTC day's edge
                day = FIRST + timedelta(days=rnd.randrange(DAYS))
                when = rollups.midnight(day) + rnd.choice([timedelta(0), timedelta(hours=13),
                                                           timedelta(days=1, microseconds=-1)])
                queue.backdate_ticket(s, tid, when)
            elif kind == "undo":  # a save in the review queue, then its undo
                t = s.get_one(Ticket, tid)
                before = review.label_state(s, tid)
                assert before is not None
                after = review.correct(s, tid, rnd.choice(TAX.names), operator="op", expected_version=t.version)
                review.undo(s, dataclasses.replace(before, version=after), operator="op")
            else:  # several changes in one transaction
                for other in rnd.sample(ids, 3):
                    db_calls.apply_outcome(s, other, _outcome(rnd))
                t = s.get_one(Ticket, tid)
                review.correct(s, tid, rnd.choice(TAX.names), operator="op", expected_version=t.version)


def ranges(rnd: random.Random) -> list[tuple[date, date]]:
    today = datetime.now(UTC).date()
    out = [(FIRST - timedelta(days=1), today + timedelta(days=1)), (today, today)]
    for _ in range(4):
        a, b = sorted(FIRST + timedelta(days=rnd.randrange(-1, DAYS + 1)) for _ in range(2))
        out.append((a, b))
    return out


def table(s: Session) -> list[tuple[Any, ...]]:
    return sorted((r.day, r.decider, r.via_haiku, r.result, r.verdict, r.label_from, r.tickets, r.demo_tickets)
                  for r in s.scalars(select(PathDaily)) if r.tickets)


def assert_rollup_equals_the_tickets(db: Database, rnd: random.Random) -> None:
    with db.read() as s:
        for start, end in ranges(rnd):
            assert paths.paths(s, start, end) == paths.paths_from_tickets(s, start, end), (start, end)
        assert sum(p["tickets"] for p in paths.paths_from_tickets(s, None, None)) == \
            s.query(Ticket).count()
        before = table(s)
        assert all(r[6] >= r[7] >= 0 for r in before)
    with db.transaction() as s:
        reports.rebuild_rollups(s, only=["path_daily"])
    with db.read() as s:
        assert table(s) == before


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_path_counts_equal_a_group_by_over_the_tickets_on_random_histories(anydb: Database, seed: int) -> None:
    rnd = random.Random(seed)
    play(anydb, rnd, tickets=25, events=120)
    assert_rollup_equals_the_tickets(anydb, rnd)


def test_every_ticket_is_counted_under_the_path_it_is_on(db: Database) -> None:
    rnd = random.Random(7)
    play(db, rnd, tickets=10, events=40)
    with db.read() as s:
        stored = {r.id: r.path for r in s.execute(select(Ticket.id, Ticket.path))}
    with db.transaction() as s:  # nothing moved: sync finds every ticket where it is
        assert paths.sync(s, list(stored)) == 0
    assert None not in stored.values()


def test_a_ticket_moves_from_pending_to_its_tier_to_confirmed(db: Database) -> None:
    with db.transaction() as s:
        tid = queue.import_tickets(s, [(None, "my invoice is wrong")], source="t", run_id=None).ticket_ids[0]
    today = datetime.now(UTC).date()

    def now() -> list[tuple[Any, ...]]:
        with db.read() as s:
            return [(p["decider"], p["result"], p["verdict"], p["label_from"], p["tickets"])
                    for p in paths.paths(s, today, today)]

    assert now() == [("none", "unsettled", "unreviewed", None, 1)]
    with db.transaction() as s:
        db_calls.apply_outcome(s, tid, Outcome(status=NEEDS_REVIEW, tier=1, category="billing", confidence=0.4,
                                               calls=[_call(random.Random(1), 1, "billing")]))
    assert now() == [("haiku", "review", "unreviewed", None, 1)]
    with db.transaction() as s:
        review.correct(s, tid, "billing", operator="op", expected_version=s.get_one(Ticket, tid).version)
    assert now() == [("haiku", "review", "confirmed", "review", 1)]
    with db.transaction() as s:  # relabelled: the first label was the machine's, the ticket's now differs
        review.correct(s, tid, "technical", operator="op", expected_version=s.get_one(Ticket, tid).version)
    assert now() == [("haiku", "review", "corrected", "review", 1)]


def test_the_demo_data_is_counted_on_its_paths(db: Database) -> None:
    from tests.support.actors import LEAD
    from triage import demo

    demo.fill(db, TAX, actor=LEAD)  # backdated tickets, simulated calls, local tier, operators' labels
    with db.read() as s:
        counted = paths.paths(s, FIRST - timedelta(days=400), datetime.now(UTC).date())
        assert counted == paths.paths_from_tickets(s, None, None)
        assert sum(p["demo_tickets"] for p in counted) == 315
        assert {p["verdict"] for p in counted} >= {"confirmed", "corrected", "unreviewed"}
