"""Spending caps: a monthly and a daily budget that no command crosses, and a warning level before them.

The router asks a `BudgetGuard` before every paid call (CLI, worker, dashboard and batches all go through the
router or through `check`), so the rule lives in one place. Spend is the exact spend on the books (UTC days).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from db import reports
from db.engine import Database
from triage.domain import from_pico
from triage.errors import BudgetReached
from triage.providers.base import Provider
from triage.taxonomy import Taxonomy

HOW_TO_RAISE = "raise it in Settings or with TRIAGE_MONTHLY_BUDGET_USD / TRIAGE_DAILY_BUDGET_USD"


@dataclass(frozen=True)
class Caps:
    monthly_usd: Decimal = Decimal(0)  # 0 = no cap
    daily_usd: Decimal = Decimal(0)
    warn_at: float = 0.8  # share of a cap at which the dashboard and CLI warn

    @classmethod
    def of(cls, monthly_usd: float, daily_usd: float = 0.0, warn_at: float = 0.8) -> Caps:
        return cls(Decimal(str(monthly_usd or 0)), Decimal(str(daily_usd or 0)), warn_at)

    @property
    def any(self) -> bool:
        return bool(self.monthly_usd or self.daily_usd)


@dataclass(frozen=True)
class Standing:
    """This month's and today's spend against the caps."""

    caps: Caps
    month: Decimal
    today: Decimal

    def _lines(self) -> list[tuple[str, Decimal, Decimal]]:
        return [(name, spent, cap) for name, spent, cap in
                (("monthly", self.month, self.caps.monthly_usd), ("daily", self.today, self.caps.daily_usd)) if cap]

    @property
    def blocked(self) -> str | None:
        """Why paid calls must wait, or None."""
        for name, spent, cap in self._lines():
            if spent >= cap:
                period = "this month's" if name == "monthly" else "today's"
                return (f"{period} spend ${spent:.4f} has reached the {name} budget of ${cap:.2f}: API calls are "
                        f"paused ({HOW_TO_RAISE})")
        return None

    @property
    def warning(self) -> str | None:
        """A heads-up once spend passes the warning level of a cap (and before it is reached)."""
        for name, spent, cap in self._lines():
            if cap * Decimal(str(self.caps.warn_at)) <= spent < cap:
                return f"{spent / cap:.0%} of the {name} budget (${cap:.2f}) is spent"
        return None


def standing(db: Database, caps: Caps, today: date | None = None) -> Standing:
    today = today or datetime.now(UTC).date()
    with db.read() as s:
        month = from_pico(reports.total_cost_pico(s, today.replace(day=1), today))
        day = from_pico(reports.total_cost_pico(s, today, today))
    return Standing(caps, month, day)


def check(db: Database, caps: Caps) -> None:
    """Raise BudgetReached when a cap is reached (before a batch is submitted, before a worker pass)."""
    if not caps.any:
        return
    reason = standing(db, caps).blocked
    if reason:
        raise BudgetReached(reason)


class BudgetGuard:
    """The router's spend guard: refuses a paid call once a cap is reached."""

    def __init__(self, db: Database, caps: Caps):
        self.db, self.caps = db, caps

    async def admit(self, provider: Provider, text: str, taxonomy: Taxonomy) -> None:
        if self.caps.any:
            await asyncio.to_thread(check, self.db, self.caps)
