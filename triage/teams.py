"""Teams: the routing table a lead edits in Settings or loads from a file (`TRIAGE_TEAMS`), and each ticket's team
by it. Rows are (category, optional priority, optional language) -> team; the first row that matches wins and a
last row with no condition is the default team, so every ticket gets exactly one team, deterministically.
Saving a table re-applies it to every ticket in the same transaction, and the audit trail keeps before and after.

File format (CSV with a header, or JSON: a list of objects with the same keys): `category,priority,language,team`;
an empty cell or `*` is "any". See docs/configuration.md."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from db import teams as db_teams
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.domain import TeamRule
from triage.errors import InputError
from triage.taxonomy import Taxonomy, cell_text

ENV = "TRIAGE_TEAMS"
FIELDS = ("category", "priority", "language", "team")
_TEAM_RE = re.compile(r"^[\w][\w .&/-]{0,63}$")
_LANG_RE = re.compile(r"^[a-z]{2,3}$")


def _any(value: object) -> str | None:
    text = cell_text(value)
    return None if text in ("", "*") else text


def parse_rows(rows: Iterable[Mapping[str, object]], taxonomy: Taxonomy) -> tuple[TeamRule, ...]:
    """Rows (from the editor or a file) as a checked table; InputError names every problem. The categories and
    priorities must be the taxonomy's, the languages ISO 639 codes, and the last row the default (no condition)."""
    rules: list[TeamRule] = []
    problems: list[str] = []
    for i, row in enumerate(rows, 1):
        cells = {k: _any(row.get(k)) for k in FIELDS}
        if all(v is None for v in cells.values()):
            continue  # a row added and never filled
        team, category, priority, language = cells["team"], cells["category"], cells["priority"], cells["language"]
        if team is None or not _TEAM_RE.match(team):
            problems.append(f"row {i}: a team name (letters, digits, spaces, . & / -; up to 64) is required")
        if category is not None and category not in taxonomy:
            problems.append(f"row {i}: {category!r} is not a category ({', '.join(taxonomy.names)})")
        if priority is not None and priority not in taxonomy.priority_names:
            problems.append(f"row {i}: {priority!r} is not a priority ({', '.join(taxonomy.priority_names)})")
        if language is not None:
            language = language.lower()
            if not _LANG_RE.match(language):
                problems.append(f"row {i}: language {language!r} is not an ISO 639 code such as en or fr")
        rules.append(TeamRule(team or "", category, priority, language))
    if not rules:
        problems.append("the table has no rows: add at least a default team (a row with only a team)")
    elif not rules[-1].is_default:
        problems.append("the last row must be the default team (a team and no condition), so every ticket gets one")
    defaults = [i for i, r in enumerate(rules[:-1], 1) if r.is_default]
    if defaults:
        problems.append(f"row {defaults[0]} matches every ticket, so the rows after it never would: only the last "
                        "row may be the default")
    if problems:
        raise InputError("invalid team table: " + "; ".join(problems))
    return tuple(rules)


def read_file(path: str | Path, taxonomy: Taxonomy) -> tuple[TeamRule, ...]:
    """A table from a CSV (header `category,priority,language,team`) or JSON file (a list of such objects)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the team table {path}: {exc.strerror or exc}") from exc
    if str(path).lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"team table {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"team table {path}: a JSON table is a list of objects with {', '.join(FIELDS)}")
        return parse_rows(data, taxonomy)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "team" not in [f.strip() for f in reader.fieldnames]:
        raise InputError(f"team table {path}: the first line must name the columns {','.join(FIELDS)}")
    return parse_rows(({(k or "").strip(): v for k, v in r.items()} for r in reader), taxonomy)


@dataclass(frozen=True)
class InForce:
    rules: tuple[TeamRule, ...]
    source: str  # "database" (saved by a lead), "environment" (TRIAGE_TEAMS) or "none"


def in_force(db: Database, taxonomy: Taxonomy, env: Mapping[str, str] | None = None) -> InForce:
    """The table saved by a lead, else the `TRIAGE_TEAMS` file's, else none (tickets have no team)."""
    with db.read() as s:
        saved = db_teams.stored(s)
    if saved is not None:
        return InForce(saved, "database")
    path = (os.environ if env is None else env).get(ENV)
    if path:
        return InForce(read_file(path, taxonomy), "environment")
    return InForce((), "none")


def save(db: Database, rules: tuple[TeamRule, ...], *, actor: Actor, source: str = "settings") -> int:
    """A lead's table, in force at once: stored and re-applied to every ticket in one transaction, audited with
    the table before and after. Returns how many tickets changed team."""
    require(actor, Action.CONFIGURE)
    if not rules or not rules[-1].is_default:
        raise InputError("the last row of a team table must be the default team")
    with db.transaction() as s:
        before = db_teams.stored(s)
        db_teams.store(s, rules, operator=actor.identity)
        moved = db_teams.reapply(s, rules)
        audit.record(s, actor, audit.SETTINGS_TEAMS, source=source,
                     before=[_row_text(r) for r in before or ()], after=[_row_text(r) for r in rules],
                     tickets_moved=moved)
        return moved


def load_environment(db: Database, taxonomy: Taxonomy, *, actor: Actor,
                     env: Mapping[str, str] | None = None) -> bool:
    """Store the `TRIAGE_TEAMS` file's table when no table is saved yet (so the workers apply it to every ticket
    they decide); a table a lead saved is never replaced. Returns whether it was stored."""
    current = in_force(db, taxonomy, env)
    if current.source != "environment":
        return False
    save(db, current.rules, actor=actor, source="environment")
    return True


def _row_text(r: TeamRule) -> str:
    return f"{r.category or '*'}/{r.priority or '*'}/{r.language or '*'} -> {r.team}"
