"""Settings in force: the environment's defaults (a fresh machine needs none), then what leads saved in the
dashboard (stored in the database), then a command's own flags."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from db import settings as db_settings
from db.engine import Database
from triage import audit
from triage import taxonomy as taxonomy_mod
from triage.access import Action, Actor, require
from triage.errors import InputError
from triage.routing import redact
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
    # personal data masked in every request body (triage/routing/redact.py): each type on or off, the region of
    # phone numbers written without a country code, a lead's named patterns and an allow-list kept as it is
    mask_card: bool = True
    mask_iban: bool = True
    mask_email: bool = True
    mask_phone: bool = True
    mask_ip: bool = True
    mask_phone_region: str = "US"
    mask_patterns: dict[str, str] = field(default_factory=dict)  # name -> regular expression: [NAME]
    mask_allow: list[str] = field(default_factory=list)  # regular expressions whose matches are kept
    retention_days: int = 0  # tickets with no activity for longer are erased (`triage purge`); 0 = keep forever
    minutes_per_review: float = 2.0  # an operator's time per review, for the reviewer hours of the routing story
    mask_store: bool = False  # store only the masked text of imported tickets (the original never reaches disk)
    # the share of tickets settled without review drawn, as they settle, for the blind audit (db.audit_sample)
    audit_rate: float = 0.03
    max_reviews_per_day: int = 0  # the review capacity the threshold recommendation respects; 0 = no limit

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The defaults, overridden by the environment variables of ENV_NAMES."""
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
            **{name: mask_value(name, env[var], var) for name, var in ENV_NAMES.items()
               if name.startswith("mask_") and env.get(var)},
            retention_days=retention_days(_number(env, "TRIAGE_RETENTION_DAYS", 0), "TRIAGE_RETENTION_DAYS"),
            minutes_per_review=minutes_per_review(_number(env, "TRIAGE_MINUTES_PER_REVIEW", 2),
                                                  "TRIAGE_MINUTES_PER_REVIEW"),
            audit_rate=audit_rate(_number(env, "TRIAGE_AUDIT_RATE", 0.03), "TRIAGE_AUDIT_RATE"),
            max_reviews_per_day=max_reviews(_number(env, "TRIAGE_MAX_REVIEWS_PER_DAY", 0),
                                            "TRIAGE_MAX_REVIEWS_PER_DAY"),
        )

    def overridden(self, *, threshold: float | None = None, concurrency: int | None = None,
                   per_call: float | None = None, per_call_sonnet: float | None = None) -> Settings:
        """These settings with what a command line set (None: not set), tickets per call checked as its flag."""
        if threshold is not None:
            self.threshold = threshold
        if concurrency is not None:
            self.concurrency = concurrency
        if per_call is not None:
            self.per_call = check_per_call(per_call, "--per-call")
        if per_call_sonnet is not None:
            self.per_call_sonnet = check_per_call(per_call_sonnet, "--per-call-sonnet")
        return self

    @property
    def mask_policy(self) -> redact.MaskPolicy:
        """The masking policy these settings put in force (InputError for a bad pattern or region: nothing is
        sent under a policy that cannot be built)."""
        return redact.MaskPolicy(
            cards=self.mask_card, ibans=self.mask_iban, emails=self.mask_email, phones=self.mask_phone,
            ips=self.mask_ip, phone_region=self.mask_phone_region,
            patterns=tuple(redact.Pattern(name, rx) for name, rx in sorted(self.mask_patterns.items())),
            allow=tuple(self.mask_allow))

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def caps(self) -> Caps:
        return Caps.of(self.monthly_budget_usd, self.daily_budget_usd, self.budget_warn_at)


ENV_NAMES = {  # setting -> the environment variable Settings.from_env reads it from (max_tokens has none)
    "database_url": "TRIAGE_DATABASE_URL", "tier1_model": "TRIAGE_TIER1_MODEL", "tier2_model": "TRIAGE_TIER2_MODEL",
    "threshold": "TRIAGE_THRESHOLD", "concurrency": "TRIAGE_CONCURRENCY", "effort": "TRIAGE_EFFORT",
    "max_attempts": "TRIAGE_MAX_ATTEMPTS", "monthly_budget_usd": "TRIAGE_MONTHLY_BUDGET_USD",
    "daily_budget_usd": "TRIAGE_DAILY_BUDGET_USD", "budget_warn_at": "TRIAGE_BUDGET_WARN_AT",
    "request_timeout": "TRIAGE_REQUEST_TIMEOUT", "taxonomy_path": "TRIAGE_TAXONOMY", "prices_path": "TRIAGE_PRICES",
    "api_key": "ANTHROPIC_API_KEY", "base_url": "ANTHROPIC_BASE_URL", "fewshot_k": "TRIAGE_FEWSHOT_K",
    "per_call": "TRIAGE_PER_CALL", "per_call_sonnet": "TRIAGE_PER_CALL_SONNET",
    "mask_card": "TRIAGE_MASK_CARD", "mask_iban": "TRIAGE_MASK_IBAN", "mask_email": "TRIAGE_MASK_EMAIL",
    "mask_phone": "TRIAGE_MASK_PHONE", "mask_ip": "TRIAGE_MASK_IP", "mask_phone_region": "TRIAGE_MASK_PHONE_REGION",
    "mask_patterns": "TRIAGE_MASK_PATTERNS", "mask_allow": "TRIAGE_MASK_ALLOW", "mask_store": "TRIAGE_MASK_STORE",
    "retention_days": "TRIAGE_RETENTION_DAYS", "minutes_per_review": "TRIAGE_MINUTES_PER_REVIEW",
    "audit_rate": "TRIAGE_AUDIT_RATE", "max_reviews_per_day": "TRIAGE_MAX_REVIEWS_PER_DAY",
}
MASK_SWITCHES = ("mask_card", "mask_iban", "mask_email", "mask_phone", "mask_ip")
MASK_SETTINGS = (*MASK_SWITCHES, "mask_phone_region", "mask_patterns", "mask_allow", "mask_store")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def mask_value(name: str, value: object, what: str | None = None) -> Any:
    """One masking setting as given (its value, or its text from the environment or the command line), checked:
    a switch is on/off (true/false, 1/0, yes/no); the region a code such as US or GB; the patterns a JSON object
    of NAME -> regular expression, or one NAME=REGEX; the allow-list a JSON list of regular expressions, or one.
    InputError naming the setting otherwise, so a policy that could not be built is never saved."""
    what = what or name
    if name in MASK_SWITCHES or name == "mask_store":
        if isinstance(value, bool):
            return value
        text = str(value).strip().casefold()
        if text not in _TRUE + _FALSE:
            raise InputError(f"{what} is on or off (true/false, 1/0, yes/no), not {value!r}")
        return text in _TRUE
    if name == "mask_phone_region":
        region = str(value).strip().upper()
        _policy(what, phone_region=region)
        return region
    if name == "mask_patterns":
        patterns = _json_or(value, dict, what)
        if patterns is None:
            text = str(value).strip()
            if text.casefold() in ("", "none", "{}"):
                patterns = {}
            elif "=" in text:
                key, _, regex = text.partition("=")
                patterns = {key.strip(): regex}
            else:
                raise InputError(f"{what}: a JSON object of NAME -> regular expression, or NAME=REGEX; not {text!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in patterns.items()):
            raise InputError(f"{what}: each pattern is a name and a regular expression (text)")
        _policy(what, patterns=tuple(redact.Pattern(k, v) for k, v in patterns.items()))
        return dict(sorted(patterns.items()))
    if name == "mask_allow":
        allow = _json_or(value, list, what)
        if allow is None:
            text = str(value).strip()
            allow = [] if text.casefold() in ("", "none") else [text]
        if not all(isinstance(a, str) for a in allow):
            raise InputError(f"{what}: each allow-list entry is a regular expression (text)")
        _policy(what, allow=tuple(allow))
        return list(allow)
    raise InputError(f"{name} is not a masking setting")


def _json_or(value: object, kind: type, what: str) -> Any:
    """`value` when it already is a `kind`, or its JSON text when that reads as one; else None."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, str):
        raise InputError(f"{what}: not {value!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, kind) else None


def _policy(what: str, **values: Any) -> redact.MaskPolicy:
    try:
        return redact.MaskPolicy(**values)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None


def retention_days(value: float, name: str = "retention days") -> int:
    """How many days a ticket is kept after its last activity: a whole number, 0 = forever."""
    if value != int(value) or value < 0:
        raise InputError(f"{name} is a whole number of days, 0 to keep tickets forever; not {value:g}")
    return int(value)


def audit_rate(value: float, name: str = "audit_rate") -> float:
    """The share of tickets settled without review drawn for the blind audit: from 0 (off) to 1."""
    if not 0 <= value <= 1:
        raise InputError(f"{name} is a share of the tickets settled without review, from 0 (off) to 1 (such as "
                         f"0.03 for 3%); not {value:g}")
    return float(value)


def max_reviews(value: float, name: str = "max_reviews_per_day") -> int:
    """Reviews a day the team can do: a whole number, 0 = no limit."""
    if value != int(value) or value < 0:
        raise InputError(f"{name} is a whole number of reviews a day, 0 for no limit; not {value:g}")
    return int(value)


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


def minutes_per_review(value: float, name: str = "minutes_per_review") -> float:
    """An operator's minutes per review: more than 0, at most 240 (InputError otherwise)."""
    if not 0 < value <= 240:
        raise InputError(f"{name} is the minutes an operator spends on one review, more than 0 and at most 240; "
                         f"not {value:g}")
    return float(value)


EDITABLE = ("threshold", "tier1_model", "tier2_model", "monthly_budget_usd", "daily_budget_usd", "fewshot_k",
            "per_call", "per_call_sonnet", *MASK_SETTINGS, "retention_days", "minutes_per_review", "audit_rate",
            "max_reviews_per_day")


def _saved(db: Database) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What leads saved that is in force: the editable values (a name no longer editable is ignored), and the
    taxonomy (None: none saved)."""
    with db.read() as s:
        stored = db_settings.get(s, "engine", {}) or {}
        tax = db_settings.get(s, "taxonomy")
    return {k: v for k, v in stored.items() if k in EDITABLE}, tax


def effective(db: Database, base: Settings | None = None) -> tuple[Settings, Taxonomy]:
    base = base or Settings.from_env()
    stored, tax = _saved(db)
    return replace(base, **stored), Taxonomy.from_dict(tax) if tax else taxonomy_mod.load(base.taxonomy_path)


DEFAULT, ENVIRONMENT, DATABASE = "default", "environment", "database"


@dataclass(frozen=True)
class InForce:
    """One setting in force and where it comes from."""

    name: str
    value: Any  # as shown: the API key is never shown ("set"), a database password is masked
    source: str  # DEFAULT, ENVIRONMENT (env names the variable) or DATABASE (saved by a lead)
    env: str | None  # the environment variable that sets it, if any
    editable: bool  # a lead may save it (dashboard Settings page, `triage settings set`)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "source": self.source, "env": self.env,
                "editable": self.editable}


def in_force(db: Database, env: Mapping[str, str] | None = None) -> list[InForce]:
    """Every setting in force (as `effective` merges them) with its source: a value a lead saved, else the
    environment variable when set, else the default. The taxonomy too (its category names)."""
    env = os.environ if env is None else env
    base = Settings.from_env(env)
    stored, tax = _saved(db)
    merged = replace(base, **stored)
    out = []
    for f in fields(Settings):
        var = ENV_NAMES.get(f.name)
        source = DATABASE if f.name in stored else ENVIRONMENT if var and env.get(var) else DEFAULT
        out.append(InForce(f.name, _shown(f.name, getattr(merged, f.name)), source, var, f.name in EDITABLE))
    taxonomy = Taxonomy.from_dict(tax) if tax else taxonomy_mod.load(base.taxonomy_path)
    out.append(InForce("taxonomy", taxonomy.names, DATABASE if tax else ENVIRONMENT if base.taxonomy_path else DEFAULT,
                       ENV_NAMES["taxonomy_path"], False))
    return out


def _shown(name: str, value: Any) -> Any:
    if name == "api_key":
        return "set" if value else None
    if name == "database_url":
        from db.engine import database_url

        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", database_url(value))  # user:***@host
    return value


def environment_taxonomy_change(db: Database, base: Settings | None = None) -> taxonomy_mod.Change | None:
    """When a lead saved a taxonomy (it is in force) and the environment's (TRIAGE_TAXONOMY, else the built-in
    default) differs from it: what the environment's would change. None when nothing is saved or both agree; a
    file that cannot be read is said as a TaxonomyError by the caller's own load."""
    base = base or Settings.from_env()
    _, tax = _saved(db)
    if not tax:
        return None
    try:
        env = taxonomy_mod.load(base.taxonomy_path)
    except taxonomy_mod.TaxonomyError:
        return None
    change = taxonomy_mod.diff(Taxonomy.from_dict(tax), env)
    return change or None


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
    """A lead's routing, models and budgets (values as given: numbers, or their text from the command line),
    checked by `checked`; the audit trail keeps each changed value (from, to), and `why` when given (e.g. the
    threshold recommendation it came from). Nothing is written when any value is refused."""
    require(actor, Action.CONFIGURE)
    values = checked(values, prices or PriceTable.load(os.environ.get("TRIAGE_PRICES") or None))
    before = effective(db)[0]
    with db.transaction() as s:
        current = db_settings.get(s, "engine", {}) or {}
        db_settings.put(s, "engine", {**current, **values}, operator=actor.identity)
        audit.record(s, actor, audit.SETTINGS_ENGINE, changed={
            k: [getattr(before, k), v] for k, v in values.items() if getattr(before, k) != v},
            **({"why": why} if why else {}))


def checked(values: Mapping[str, object], prices: PriceTable) -> dict[str, object]:
    """The one rule for what a lead may save: each name editable, each value of its setting's type and range
    (InputError naming the setting otherwise). Returns the values as stored."""
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        elsewhere = "".join(f"; {n} comes from the environment ({ENV_NAMES[n]})" for n in unknown if n in ENV_NAMES)
        raise InputError(f"not a setting a lead can save: {', '.join(unknown)}{elsewhere}. The settings are: "
                         f"{', '.join(EDITABLE)}")
    out: dict[str, object] = {}
    for key, value in values.items():
        if key == "threshold":
            out[key] = number = _given(value, "the threshold")
            if not 0 <= number <= 1:
                raise InputError(f"the threshold is a confidence between 0 and 1, not {value}")
        elif key in ("monthly_budget_usd", "daily_budget_usd"):
            what = f"the {key.split('_')[0]} budget"
            out[key] = number = _given(value, what)
            if number < 0:
                raise InputError(f"{what} is a dollar amount, 0 for none; not {value}")
        elif key == "fewshot_k":
            out[key] = fewshot_k(_given(value, "few-shot examples"))
        elif key == "per_call_sonnet" and (value is None or str(value).strip().casefold() in ("", "none")):
            out[key] = None  # tier 2 takes tier 1's number of tickets per call
        elif key in ("per_call", "per_call_sonnet"):
            out[key] = check_per_call(_given(value, "tickets per call"), "tickets per call")
        elif key in MASK_SETTINGS:
            out[key] = mask_value(key, value)
        elif key == "retention_days":
            out[key] = retention_days(_given(value, "retention_days"), "retention_days")
        elif key == "minutes_per_review":
            out[key] = minutes_per_review(_given(value, "minutes_per_review"), "minutes_per_review")
        elif key == "audit_rate":
            out[key] = audit_rate(_given(value, "audit_rate"))
        elif key == "max_reviews_per_day":
            out[key] = max_reviews(_given(value, "max_reviews_per_day"))
        else:  # tier1_model, tier2_model
            model = "" if value is None else str(value).strip()
            if not model:
                raise InputError("a model id cannot be empty")
            prices.require(model)
            out[key] = model
    return out


def _given(value: object, what: str) -> float:
    """A number as a lead gave it (a number, or its text from the command line): finite, else InputError."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InputError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, not {value!r}")
    return number
