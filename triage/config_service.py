"""Settings as operators changed them in the UI (stored in the database) over the environment's defaults."""

from __future__ import annotations

from dataclasses import replace

from db import settings_store
from db.engine import Database
from triage import taxonomy as taxonomy_mod
from triage.settings import Settings
from triage.taxonomy import Taxonomy

EDITABLE = ("threshold", "tier1_model", "tier2_model", "monthly_budget_usd")


def effective(db: Database, base: Settings | None = None) -> tuple[Settings, Taxonomy]:
    base = base or Settings.from_env()
    with db.read() as s:
        stored = settings_store.get(s, "engine", {}) or {}
        tax = settings_store.get(s, "taxonomy")
    settings = replace(base, **{k: v for k, v in stored.items() if k in EDITABLE})
    return settings, Taxonomy.from_dict(tax) if tax else taxonomy_mod.load(base.taxonomy_path)


def save_taxonomy(db: Database, taxonomy: Taxonomy, *, operator: str) -> None:
    with db.transaction() as s:
        settings_store.put(s, "taxonomy", taxonomy.to_dict(), operator=operator)


def save_engine(db: Database, *, operator: str, **values) -> None:
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "threshold" in values and not 0 <= float(values["threshold"]) <= 1:
        raise ValueError("the threshold is a confidence between 0 and 1")
    if "monthly_budget_usd" in values and float(values["monthly_budget_usd"]) < 0:
        raise ValueError("the monthly budget is a dollar amount, 0 for none")
    for key in ("tier1_model", "tier2_model"):
        if key in values and not str(values[key]).strip():
            raise ValueError("a model id cannot be empty")
    with db.transaction() as s:
        current = settings_store.get(s, "engine", {}) or {}
        settings_store.put(s, "engine", {**current, **values}, operator=operator)
