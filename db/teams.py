"""The routing table (category, priority, language -> team), stored as a setting, and each ticket's team by it.

The table is a list of rows (triage.domain.TeamRule); `triage/teams.py` checks and saves it (audited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import settings
from db.engine import rows_affected
from db.models import Ticket
from triage.domain import TeamRule, team_for

KEY = "teams"


def to_rows(rules: tuple[TeamRule, ...]) -> list[dict[str, Any]]:
    return [{"team": r.team, "category": r.category, "priority": r.priority, "language": r.language} for r in rules]


def from_rows(rows: list[dict[str, Any]]) -> tuple[TeamRule, ...]:
    return tuple(TeamRule(str(r["team"]), r.get("category"), r.get("priority"), r.get("language")) for r in rows)


def stored(s: Session) -> tuple[TeamRule, ...] | None:
    """The table saved in the database, or None when none was saved."""
    rows = settings.get(s, KEY)
    return None if rows is None else from_rows(rows)


def store(s: Session, rules: tuple[TeamRule, ...], *, operator: str) -> None:
    settings.put(s, KEY, to_rows(rules), operator=operator)


def assign(s: Session, t: Ticket, rules: tuple[TeamRule, ...] | None = None) -> None:
    """Set one ticket's team by the stored table (or `rules`); no table: the team is left as it was."""
    rules = stored(s) if rules is None else rules
    if rules is not None:
        t.team = team_for(rules, t.category, t.priority, t.language)


def reapply(s: Session, rules: tuple[TeamRule, ...]) -> int:
    """Every ticket's team by `rules`, one UPDATE per combination of category, priority and language in use;
    returns how many tickets changed team."""
    combos = s.execute(select(Ticket.category, Ticket.priority, Ticket.language).distinct()).all()
    changed = 0
    for category, priority, language in combos:
        team = team_for(rules, category, priority, language)
        conds = [Ticket.category.is_(None) if category is None else Ticket.category == category,
                 Ticket.priority.is_(None) if priority is None else Ticket.priority == priority,
                 Ticket.language.is_(None) if language is None else Ticket.language == language,
                 Ticket.team.is_not(None) if team is None else (Ticket.team.is_(None) | (Ticket.team != team))]
        res = s.execute(update(Ticket).where(*conds).values(team=team).execution_options(synchronize_session=False))
        changed += rows_affected(res)
    return changed
