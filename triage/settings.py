"""Runtime configuration from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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
    taxonomy_path: str | None = None
    prices_path: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("TRIAGE_DATABASE_URL") or None,
            tier1_model=env.get("TRIAGE_TIER1_MODEL") or DEFAULT_TIER1,
            tier2_model=env.get("TRIAGE_TIER2_MODEL") or DEFAULT_TIER2,
            threshold=float(env.get("TRIAGE_THRESHOLD") or 0.7),
            concurrency=int(env.get("TRIAGE_CONCURRENCY") or 8),
            effort=(env.get("TRIAGE_EFFORT") or "low") if env.get("TRIAGE_EFFORT") != "none" else None,
            max_attempts=int(env.get("TRIAGE_MAX_ATTEMPTS") or 5),
            monthly_budget_usd=float(env.get("TRIAGE_MONTHLY_BUDGET_USD") or 0),
            request_timeout=float(env.get("TRIAGE_REQUEST_TIMEOUT") or 60),
            taxonomy_path=env.get("TRIAGE_TAXONOMY") or None,
            prices_path=env.get("TRIAGE_PRICES") or None,
            api_key=env.get("ANTHROPIC_API_KEY") or None,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
        )

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)
