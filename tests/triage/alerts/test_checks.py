"""What the periodic check notices, on a real database: urgent tickets per team (a flood folded into one summary),
the review queue passing its limit once per crossing, budgets once per level and period, spikes on seeded
histories (fires on an outage, silent on an ordinary week)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from db.engine import Database
from db.models import AlertDelivery, AlertEvent, SpendDaily, Ticket
from tests.support.actors import LEAD
from tests.triage.alerts.conftest import add_tickets
from triage.alerts import config, service
from triage.domain import NEEDS_REVIEW

HOOK = "https://hooks.example.com/services/T1/B1/abcd"  # never called here: these tests only check


def turn_on(db: Database, **values: Any) -> config.AlertConfig:
    values = {"enabled": True, "webhook_url": HOOK, "urgent": False, "budget": False, "spikes": False, **values}
    return config.save(db, actor=LEAD, now=datetime.now(UTC) - timedelta(minutes=5), **values)


def events(db: Database) -> list[AlertEvent]:
    with db.read() as s:
        return list(s.scalars(select(AlertEvent).order_by(AlertEvent.id)))


def test_urgent_tickets_of_the_chosen_teams_only_and_not_before_alerts_were_on(db: Database) -> None:
    turn_on(db, urgent=True, urgent_teams="Billing, Ops")
    old = add_tickets(db, [{"priority": "urgent", "team": "Ops", "created_at": datetime.now(UTC) - timedelta(hours=1)}])
    ops, sales, high = add_tickets(db, [{"priority": "urgent", "team": "Ops"}, {"priority": "urgent", "team": "Sales"},
                                        {"priority": "high", "team": "Ops"}])
    found = service.check_now(db)
    assert found.new == [f"urgent:{ops}#1"]
    assert old[0] not in [e.ticket_id for e in events(db)]
    assert service.check_now(db).new == []  # once


def test_every_team_when_none_is_picked(db: Database) -> None:
    turn_on(db, urgent=True)
    ids = add_tickets(db, [{"priority": "urgent", "team": t} for t in ("Billing", "Ops", None)])
    assert service.check_now(db).new == [f"urgent:{i}#1" for i in ids]


def test_a_flood_of_urgent_tickets_is_five_alerts_and_one_summary(db: Database) -> None:
    turn_on(db, urgent=True)
    ids = add_tickets(db, [{"priority": "urgent", "team": "Ops" if i % 2 else "Billing"} for i in range(40)])
    found = service.check_now(db)
    assert found.new[:5] == [f"urgent:{i}#1" for i in ids[:5]]
    assert found.new[5:] == [f"urgent-summary:{ids[5]}#1"]
    with db.read() as s:
        assert s.scalar(select(AlertDelivery.id).join(AlertEvent).where(AlertEvent.ticket_id == ids[6])) is None
        summary = s.scalar(select(AlertEvent).where(AlertEvent.condition == f"urgent-summary:{ids[5]}"))
    assert summary is not None
    assert summary.title == "35 more urgent tickets arrived" and "Ops 18, Billing 17" in summary.facts
    assert service.check_now(db).new == []


def test_the_review_queue_alerts_once_per_crossing(db: Database) -> None:
    turn_on(db, review_queue_over=10)
    ids = add_tickets(db, [{"category": "billing"} for _ in range(12)])
    with db.transaction() as s:  # 12 tickets sent to review
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids))):
            t.status, t.confidence = NEEDS_REVIEW.value, 0.3
    assert service.check_now(db).new == ["review_queue:10#1"]
    assert service.check_now(db).new == []  # still over: the same episode
    with db.transaction() as s:  # down to 9: not yet re-armed (8 = 80% of 10)
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[:3]))):
            t.corrected = True
    assert service.check_now(db) == service.check_now(db).__class__([], [])
    with db.transaction() as s:  # down to 7: the episode ends
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[3:5]))):
            t.corrected = True
    assert service.check_now(db).cleared == ["review_queue:10"]
    with db.transaction() as s:  # over again: a new alert
        for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[:5]))):
            t.corrected = False
    assert service.check_now(db).new == ["review_queue:10#2"]


def spend(db: Database, dollars: float) -> None:
    day = datetime.now(UTC).date().isoformat()
    with db.transaction() as s:
        row = s.get(SpendDaily, (day, "claude-haiku-5-5", 1))
        if row is None:
            s.add(SpendDaily(day=day, model="claude-haiku-5-5", tier=1, calls=1, requests=1,
                             cost_pico=int(dollars * 10 ** 12)))
        else:
            row.cost_pico = int(dollars * 10 ** 12)


def test_a_budget_alerts_at_its_warning_level_then_at_its_cap_once_each(db: Database) -> None:
    from triage import settings as triage_settings

    triage_settings.save_engine(db, actor=LEAD, daily_budget_usd=10)
    turn_on(db, budget=True)
    spend(db, 5)
    assert service.check_now(db).new == []
    spend(db, 8.5)
    day = datetime.now(UTC).date().isoformat()
    assert service.check_now(db).new == [f"budget:daily:warning:{day}:10.00#1"]
    assert service.check_now(db).new == []
    spend(db, 10)
    assert service.check_now(db).new == [f"budget:daily:cap:{day}:10.00#1"]
    assert service.check_now(db).new == []
    titles = [e.title for e in events(db)]
    assert "passed 80% of the daily budget ($10.00)" in titles[0] and "API calls are paused" in titles[1]


def history(db: Database, rng: random.Random, shares: dict[str, float], *, spike: dict[str, float] | None = None,
            now: datetime, per_hour: int = 12) -> None:
    """A week of decided tickets at `shares` (escalated 10%), then an hour at `spike`'s shares (or the same)."""
    rows = []
    for hour in range(1, 7 * 24 + 1):
        for _ in range(per_hour):
            at = now - timedelta(hours=hour, minutes=rng.uniform(0, 59))
            rows.append({"category": rng.choices(list(shares), list(shares.values()))[0], "created_at": at,
                         "escalated": rng.random() < 0.1})
    last = spike or shares
    for _ in range(40):
        rows.append({"category": rng.choices(list(last), list(last.values()))[0],
                     "created_at": now - timedelta(minutes=rng.uniform(0, 59)), "escalated": rng.random() < 0.1})
    add_tickets(db, rows)


USUAL = {"billing": 0.3, "technical": 0.3, "account": 0.2, "product_feedback": 0.1, "other": 0.1}


def test_a_spike_fires_on_an_outage_and_once(db: Database) -> None:
    now = datetime.now(UTC)
    history(db, random.Random(7), USUAL, spike={"technical": 0.8, "billing": 0.1, "account": 0.1}, now=now)
    turn_on(db, spikes=True)
    found = service.check_now(db, now=now)
    assert found.new == ["spike:category:technical#1"]
    assert service.check_now(db, now=now).new == []
    title = events(db)[0].title
    assert title.startswith("Spike: Technical") or "technical" in title.lower()


def test_a_pilot_or_an_eval_is_not_traffic_no_urgent_alert_no_spike(db: Database) -> None:
    """A lead's pilot (or a `triage eval`) on 300 old tickets arrives all at once and is all one team's history:
    neither an urgent ticket nor an outage."""
    now = datetime.now(UTC)
    history(db, random.Random(7), USUAL, now=now)
    turn_on(db, urgent=True, spikes=True)
    add_tickets(db, [{"category": "technical", "priority": "urgent", "purpose": purpose, "escalated": True}
                     for purpose in ("pilot", "eval") for _ in range(60)])
    assert service.check_now(db, now=now).new == []


def test_silent_on_an_ordinary_week(db: Database) -> None:
    now = datetime.now(UTC)
    for seed in range(3):
        history(db, random.Random(seed), USUAL, now=now - timedelta(days=8 * seed))
    turn_on(db, spikes=True)
    assert service.check_now(db, now=now).new == []


def test_nothing_is_noticed_while_alerts_are_off_or_have_nowhere_to_go(db: Database) -> None:
    add_tickets(db, [{"priority": "urgent"}])
    assert service.check_now(db).new == []
    config.save(db, actor=LEAD, enabled=True)  # on, but no channel
    add_tickets(db, [{"priority": "urgent"}])
    assert service.check_now(db).new == [] and events(db) == []
