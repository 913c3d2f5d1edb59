"""Noticing what a lead asked to hear about: the periodic check the workers make (`triage.alerts.service.Watch`).

Each thing noticed is an event whose key names it (`condition#episode`): an urgent ticket by its id, a budget
level by its period and cap, the review queue by its limit, a spike by what jumped. The key is UNIQUE, so however
many workers check at once, one event is recorded and sent once. A level (the review queue, a budget, a spike)
alerts when it starts to hold; once it stops holding (its episode clears) the next time it holds is a new event.

Urgent tickets: decided tickets at the most urgent level of the scale, arrived since alerts were turned on (at
most a day back). One check announces at most URGENT_EACH of them one by one and folds the rest into one summary
alert, so an outage's flood is one message, not hundreds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db import alerts as db_alerts
from db import review as db_review
from db.engine import Database
from triage.alerts import rules
from triage.alerts.config import AlertConfig
from triage.domain import ReviewFilter, ReviewReason
from triage.settings import Settings
from triage.spend import budget
from triage.taxonomy import Taxonomy

URGENT_EACH = 5
URGENT_LOOKBACK = timedelta(days=1)
URGENT_SCAN = 500  # urgent tickets looked at per check
QUEUE_COUNT_CAP = 100_000


@dataclass(frozen=True)
class Found:
    """What one check recorded: the keys of the new events, and the episodes it closed."""

    new: list[str]
    cleared: list[str]


def _raise(db: Database, cfg: AlertConfig, condition: str, *, kind: str, title: str, facts: dict[str, Any],
           now: datetime) -> str | None:
    """A new episode of `condition`, unless one is open; its key, or None when another worker recorded it."""
    with db.transaction() as s:
        last = db_alerts.latest(s, condition)
        if last is not None and not last.cleared:
            return None
        episode = 1 if last is None else last.episode + 1
        made = db_alerts.insert_event(s, condition=condition, episode=episode, kind=kind, title=title, facts=facts,
                                      channels=cfg.channels, now=now)
        return db_alerts.event_key(condition, episode) if made is not None else None


def _clear(db: Database, condition: str, now: datetime) -> bool:
    with db.transaction() as s:
        last = db_alerts.latest(s, condition)
        return last is not None and not last.cleared and db_alerts.clear(s, last.id, now)


def _level(db: Database, cfg: AlertConfig, found: Found, open_: set[str], condition: str, *, holds: bool,
           clears: bool, kind: str, title: str, facts: dict[str, Any], now: datetime) -> None:
    """Raise the condition when it holds and has no open episode; close its episode when it clears."""
    if holds and condition not in open_:
        key = _raise(db, cfg, condition, kind=kind, title=title, facts=facts, now=now)
        if key:
            found.new.append(key)
    elif clears and condition in open_ and _clear(db, condition, now):
        found.cleared.append(condition)


def urgent(db: Database, cfg: AlertConfig, taxonomy: Taxonomy, now: datetime) -> list[str]:
    level = taxonomy.priority_names[0]
    since = max(cfg.since_at or now, now - URGENT_LOOKBACK)
    with db.read() as s:
        fresh = db_alerts.urgent_tickets(s, level, since, cfg.urgent_teams, URGENT_SCAN)
    if not fresh:
        return []
    keys: list[str] = []
    folded: list[db_alerts.UrgentTicket] = []
    with db.transaction() as s:  # one transaction: a racing worker's inserts of the same keys all find them taken
        for t in fresh:
            each = len(keys) < URGENT_EACH
            facts = {"ticket": t.id, "priority": level, "category": taxonomy.shown.get(t.category or "", t.category),
                     "team": t.team or "none", "language": t.language or "unknown"}
            title = (f"Urgent ticket #{t.id}: {facts['category']}" + (f" (team {t.team})" if t.team else ""))
            made = db_alerts.insert_event(s, condition=f"urgent:{t.id}", episode=1, kind="urgent", title=title,
                                          facts=facts if each else {**facts, "announced": "in a summary"},
                                          channels=cfg.channels if each else (), now=now, ticket_id=t.id,
                                          team=t.team)
            if made is not None and each:
                keys.append(db_alerts.event_key(f"urgent:{t.id}", 1))
            elif made is not None:
                folded.append(t)
        if folded:
            teams = Counter(t.team or "none" for t in folded)
            condition = f"urgent-summary:{folded[0].id}"
            db_alerts.insert_event(
                s, condition=condition, episode=1, kind="urgent", now=now, channels=cfg.channels,
                title=f"{len(folded)} more urgent tickets arrived", facts={
                    "tickets": ", ".join(f"#{t.id}" for t in folded[:30]) + (" …" if len(folded) > 30 else ""),
                    "by team": ", ".join(f"{team} {n}" for team, n in teams.most_common())})
            keys.append(db_alerts.event_key(condition, 1))
    return keys


def review_queue(db: Database, cfg: AlertConfig, settings: Settings, found: Found, now: datetime) -> None:
    limit = cfg.review_queue_over
    waiting_filter = ReviewFilter(reasons=tuple(ReviewReason), threshold=settings.threshold, corrected=False)
    condition = f"review_queue:{limit}"
    with db.read() as s:
        waiting = db_review.review_count(s, waiting_filter, cap=QUEUE_COUNT_CAP)
        open_ = db_alerts.open_conditions(s, condition)
    shown = f"{waiting:,}" if waiting < QUEUE_COUNT_CAP else f"over {QUEUE_COUNT_CAP:,}"
    _level(db, cfg, found, open_, condition, holds=waiting > limit, clears=rules.review_rearmed(waiting, limit),
           kind="review_queue", title=f"The review queue passed {limit:,} waiting ({shown})",
           facts={"waiting": shown, "limit": limit}, now=now)


def budgets(db: Database, cfg: AlertConfig, settings: Settings, found: Found, now: datetime) -> None:
    standing = budget.standing(db, settings.caps, now.date())
    caps = standing.caps
    with db.read() as s:
        open_ = db_alerts.open_conditions(s, "budget:")
    lines = (("monthly", "this month's", standing.month + standing.estimated_month + standing.in_flight,
              caps.monthly_usd, f"{now:%Y-%m}"),
             ("daily", "today's", standing.today + standing.estimated_today + standing.in_flight, caps.daily_usd,
              f"{now:%Y-%m-%d}"))  # committed as Standing counts it: spend, probably billed, in flight
    for name, period_words, committed, cap, period in lines:
        if not cap:
            continue
        warn = cap * Decimal(str(caps.warn_at))
        reached, warned = committed >= cap, committed >= warn
        facts = {"spent": budget.usd(committed), "budget": budget.usd(cap), "share": f"{committed / cap:.0%}"}
        _level(db, cfg, found, open_, f"budget:{name}:cap:{period}:{cap:.2f}", holds=reached, clears=not reached,
               kind="budget", now=now, facts=facts,
               title=f"{period_words.capitalize()} spend {budget.usd(committed)} reached the {name} budget of "
                     f"{budget.usd(cap)}: API calls are paused")
        _level(db, cfg, found, open_, f"budget:{name}:warning:{period}:{cap:.2f}", holds=warned and not reached,
               clears=not warned, kind="budget", now=now, facts=facts,
               title=f"{period_words.capitalize()} spend {budget.usd(committed)} passed {caps.warn_at:.0%} of the "
                     f"{name} budget ({budget.usd(cap)})")


_baselines: dict[str, tuple[int, db_alerts.Counts]] = {}
BASELINE_EVERY_S = 600


def _baseline(db: Database, s: Session, start: datetime) -> db_alerts.Counts:
    """The 7 days before the window, counted at most once per 10 minutes per database (it moves by 10 minutes
    in 7 days meanwhile: nothing a rule notices), so the minute's check reads the last hour only."""
    bucket = int(start.timestamp() // BASELINE_EVERY_S)
    cached = _baselines.get(db.url)
    if cached is None or cached[0] != bucket:
        cached = (bucket, db_alerts.counts(s, start - rules.BASELINE, start))
        _baselines[db.url] = cached
    return cached[1]


def spikes(db: Database, cfg: AlertConfig, taxonomy: Taxonomy, found: Found, now: datetime) -> None:
    start = now - rules.WINDOW
    with db.read() as s:
        window = db_alerts.counts(s, start, now)
        base = _baseline(db, s, start)
        open_ = db_alerts.open_conditions(s, "spike:")
    names = list(dict.fromkeys([*taxonomy.names, *window.categories]))
    tests = 1 + len(names)
    shares = [("spike:escalation", "the escalation rate",
               rules.Jump(window.escalated, window.tickets, base.escalated, base.tickets, tests))]
    shares += [(f"spike:category:{c}", f"{taxonomy.shown.get(c, c)}'s share",
                rules.Jump(window.categories.get(c, 0), window.tickets, base.categories.get(c, 0), base.tickets,
                           tests)) for c in names]
    for condition, what, jump in shares:
        facts = {"last hour": f"{jump.k} of {jump.n} tickets ({jump.share:.0%})",
                 "7-day baseline": f"{jump.k0} of {jump.n0} ({jump.k0 / jump.n0 if jump.n0 else 0:.0%})",
                 "chance under the baseline": f"{jump.p_value:.1e}"}
        _level(db, cfg, found, open_, condition, holds=jump.fires, clears=jump.cleared, kind="spike", now=now,
               facts=facts, title=f"Spike: {what} jumped to {jump.share:.0%} in the last hour "
                                  f"(7-day baseline {jump.baseline:.0%})")


def check(db: Database, cfg: AlertConfig, settings: Settings, taxonomy: Taxonomy, now: datetime) -> Found:
    """Every alert the lead turned on, checked once."""
    found = Found([], [])
    if cfg.urgent:
        found.new.extend(urgent(db, cfg, taxonomy, now))
    if cfg.review_queue_over:
        review_queue(db, cfg, settings, found, now)
    if cfg.budget:
        budgets(db, cfg, settings, found, now)
    if cfg.spikes:
        spikes(db, cfg, taxonomy, found, now)
    return found
