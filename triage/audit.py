"""The audit trail as a service: what people did (settings changed, exports, label imports, retraining, escalation
requests, demo loads; runs are recorded with who started them), read back by leads in Settings."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import audit as db_audit
from db.engine import Database
from triage.access import Action, Actor, require

SETTINGS_TAXONOMY = "settings.taxonomy"
SETTINGS_ENGINE = "settings.engine"
SETTINGS_TIER0 = "settings.tier0"
RETRAIN = "local.retrain"
EXPORT = "export.tickets"
LABEL_IMPORT = "labels.import"
ESCALATION = "escalation.request"
DEMO = "demo.load"
SETTINGS_TEAMS = "settings.teams"
PRIORITY_CORRECTION = "review.priority"
LABELS_BY_FILTER = "labels.by_filter"
LABELS_UNDONE = "labels.undone"


def record(s: Session, actor: Actor, event: str, **detail: object) -> None:
    """Add an event inside the caller's transaction, so it is recorded exactly when the change is."""
    db_audit.record(s, actor=actor.identity, role=actor.role.label, event=event, detail=detail)


def recent(db: Database, *, actor: Actor, limit: int = 50) -> list[db_audit.Event]:
    require(actor, Action.VIEW_AUDIT)
    with db.read() as s:
        return db_audit.recent(s, limit)


def describe(detail: dict[str, object]) -> str:
    """One line for a person: `changed` values as "name: from → to", lists comma-separated."""
    parts: list[str] = []
    for key, value in detail.items():
        if key == "changed" and isinstance(value, dict):
            parts += [f"{name}: {pair[0]} → {pair[1]}" if isinstance(pair, list) and len(pair) == 2 else
                      f"{name}: {pair}" for name, pair in value.items()]
        elif isinstance(value, list):
            parts.append(f"{key}: {', '.join(map(str, value))}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)
