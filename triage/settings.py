"""Settings in force: the environment's defaults (a fresh machine needs none), then what leads saved in the
dashboard (stored in the database), then a command's own flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from db import settings as db_settings
from db.engine import Database
from triage import audit
from triage import taxonomy as taxonomy_mod
from triage.access import Action, Actor, require
from triage.errors import InputError
from triage.routing.grouping import MAX_PER_CALL
from triage.spend.budget import Caps
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy

DEFAULT_TIER1 = "claude-haiku-5-5"
DEFAULT_TIER2 = "claude-sonnet-5-5"


@dataclass
class Settings:
    database_url: str | None = None  # None: TRIAGE_DATABASE_URL or sqlite:///data/triage.db
    tier1_model: str = DEFAULT_TIER1
    tier2_model: str = DEFAULT_TIER2
    threshold: float = 0.7
    concurrency: int = 8
    max_tokens: int = 300
    effort: str | None = "low"
    request_timeout: float = 60.0
    max_attempts: int = 5
    monthly_budget_usd: float = 0.0  # 0 = no limit; API calls pause once this month's spend reaches it
    daily_budget_usd: float = 0.0  # 0 = no limit; the same for today's spend (UTC)
    budget_warn_at: float = 0.8  # warn once this share of a budget is spent
    taxonomy_path: str | None = None
    prices_path: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    fewshot_k: int = 0  # operator-labelled examples retrieved per Haiku request; 0 = few-shot off
    per_call: int = 1  # tickets per tier-1 request (1: one request per ticket, as before), at most 50
    per_call_sonnet: int | None = None  # tickets per tier-2 request; None: the same as per_call

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("TRIAGE_DATABASE_URL") or None,
            tier1_model=env.get("TRIAGE_TIER1_MODEL") or DEFAULT_TIER1,
            tier2_model=env.get("TRIAGE_TIER2_MODEL") or DEFAULT_TIER2,
            threshold=_number(env, "TRIAGE_THRESHOLD", 0.7),
            concurrency=int(_number(env, "TRIAGE_CONCURRENCY", 8)),
            effort=(env.get("TRIAGE_EFFORT") or "low") if env.get("TRIAGE_EFFORT") != "none" else None,
            max_attempts=int(_number(env, "TRIAGE_MAX_ATTEMPTS", 5)),
            monthly_budget_usd=_number(env, "TRIAGE_MONTHLY_BUDGET_USD", 0),
            daily_budget_usd=_number(env, "TRIAGE_DAILY_BUDGET_USD", 0),
            budget_warn_at=_number(env, "TRIAGE_BUDGET_WARN_AT", 0.8),
            request_timeout=_number(env, "TRIAGE_REQUEST_TIMEOUT", 60),
            taxonomy_path=env.get("TRIAGE_TAXONOMY") or None,
            prices_path=env.get("TRIAGE_PRICES") or None,
            api_key=env.get("ANTHROPIC_API_KEY") or None,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            fewshot_k=fewshot_k(_number(env, "TRIAGE_FEWSHOT_K", 0), "TRIAGE_FEWSHOT_K"),
            per_call=check_per_call(_number(env, "TRIAGE_PER_CALL", 1), "TRIAGE_PER_CALL"),
            per_call_sonnet=(check_per_call(_number(env, "TRIAGE_PER_CALL_SONNET", 1), "TRIAGE_PER_CALL_SONNET")
                             if env.get("TRIAGE_PER_CALL_SONNET") else None),
        )

    @property
    def tier2_per_call(self) -> int:
        return self.per_call if self.per_call_sonnet is None else self.per_call_sonnet

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def caps(self) -> Caps:
        return Caps.of(self.monthly_budget_usd, self.daily_budget_usd, self.budget_warn_at)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{name}={raw!r} is not a number") from None


def fewshot_k(value: float, name: str = "few-shot examples") -> int:
    """How many labelled examples each Haiku request retrieves: a whole number from 0 (off) to MAX_FEWSHOT_K."""
    if value != int(value) or not 0 <= value <= MAX_FEWSHOT_K:
        raise InputError(f"{name} must be a whole number from 0 (off) to {MAX_FEWSHOT_K}, not {value:g}")
    return int(value)


MAX_FEWSHOT_K = 20


def check_per_call(value: float, name: str = "tickets per call") -> int:
    """A number of tickets per request: a whole number from 1 to 50 (InputError otherwise)."""
    if value != int(value) or not 1 <= value <= MAX_PER_CALL:
        raise InputError(f"{name} is a whole number from 1 to {MAX_PER_CALL} (1: one request per ticket), "
                         f"not {value:g}")
    return int(value)


EDITABLE = ("threshold", "tier1_model", "tier2_model", "monthly_budget_usd", "daily_budget_usd", "fewshot_k",
            "per_call", "per_call_sonnet")


def effective(db: Database, base: Settings | None = None) -> tuple[Settings, Taxonomy]:
    base = base or Settings.from_env()
    with db.read() as s:
        stored = db_settings.get(s, "engine", {}) or {}
        tax = db_settings.get(s, "taxonomy")
    settings = replace(base, **{k: v for k, v in stored.items() if k in EDITABLE})
    return settings, Taxonomy.from_dict(tax) if tax else taxonomy_mod.load(base.taxonomy_path)


def save_taxonomy(db: Database, taxonomy: Taxonomy, *, actor: Actor) -> None:
    """A lead's taxonomy, in force for tickets classified from now on; the audit trail keeps before and after."""
    require(actor, Action.CONFIGURE)
    before = effective(db)[1]
    with db.transaction() as s:
        db_settings.put(s, "taxonomy", taxonomy.to_dict(), operator=actor.identity)
        audit.record(s, actor, audit.SETTINGS_TAXONOMY, before=before.names, after=taxonomy.names,
                     changed=taxonomy_mod.diff(before, taxonomy).audit())  # name: [old text, new]


def save_engine(db: Database, *, actor: Actor, prices: PriceTable | None = None, why: str | None = None,
                **values: object) -> None:
    """A lead's routing, models and budgets; the audit trail keeps each changed value (from, to), and `why` when
    given (e.g. the threshold recommendation it came from)."""
    require(actor, Action.CONFIGURE)
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise InputError(f"not editable: {', '.join(sorted(unknown))}")
    if "threshold" in values and not 0 <= float(str(values["threshold"])) <= 1:
        raise InputError("the threshold is a confidence between 0 and 1")
    for key in ("per_call", "per_call_sonnet"):
        if key in values and values[key] is not None:
            values[key] = check_per_call(float(str(values[key])), "tickets per call")
    for key in ("monthly_budget_usd", "daily_budget_usd"):
        if key in values and float(str(values[key])) < 0:
            raise InputError(f"the {key.split('_')[0]} budget is a dollar amount, 0 for none")
    if "fewshot_k" in values:
        values["fewshot_k"] = fewshot_k(float(str(values["fewshot_k"])))
    prices = prices or PriceTable.load(os.environ.get("TRIAGE_PRICES") or None)
    for key in ("tier1_model", "tier2_model"):
        if key in values and not str(values[key]).strip():
            raise InputError("a model id cannot be empty")
        if key in values:
            prices.require(str(values[key]).strip())
    before = effective(db)[0]
    with db.transaction() as s:
        current = db_settings.get(s, "engine", {}) or {}
        db_settings.put(s, "engine", {**current, **values}, operator=actor.identity)
        audit.record(s, actor, audit.SETTINGS_ENGINE, changed={
            k: [getattr(before, k), v] for k, v in values.items() if getattr(before, k) != v},
            **({"why": why} if why else {}))
