"""Spending caps: a monthly and a daily budget that no command crosses, and a warning level before them.

Every paid call reserves its worst case in the spending ledger (`db.ledger`) before its request is sent: its
input tokens estimated high from the request body, all of `max_tokens` as output, at the model's price. The call
is refused (errors.BudgetReached) when spend + open reservations + estimates + this reservation would cross a
cap; the reservation is settled to the real cost in the transaction that records the call. The check and the
reservation are one atomic step shared by every process on the database (BEGIN IMMEDIATE on SQLite, an advisory
lock on PostgreSQL). The `BudgetGuard` is the ledger of the gate every paid request passes (triage.routing.gate:
prepare, reserve, send, book); a Message Batch reserves the worst case of all its requests at the batch price
through the same gate.

The caps are read where each reservation is made (the settings row a lead saves, in the reservation's own
transaction), so a cap lowered in Settings or with `triage settings set` holds for every call not yet reserved,
in a worker that has been running for days as in a new command. A request sent again after an attempt that got
no answer but may have been billed (a read timeout, a connection lost after it went out) keeps that attempt on
the books as probably billed and reserves again (`BudgetGuard.again`).

Spend counts the exact cost on the books (UTC days) plus, at their estimate, calls that were probably billed
but whose answer was lost (a process stopped or died with the request in flight) or could not be priced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from db import ledger
from db import settings as db_settings
from db.engine import Database
from triage.domain import CallFor, from_pico, money_text, to_pico
from triage.errors import BudgetReached
from triage.routing.provider import GroupProvider, Provider
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


def usd(amount: Decimal) -> str:
    """Dollars for a message: cents for big amounts, enough digits for a fraction of a cent."""
    return f"${amount:,.2f}" if amount >= 1 else f"${money_text(amount.quantize(Decimal('0.000001')))}"


@dataclass(frozen=True)
class Standing:
    """This month's and today's money against the caps: exact spend, estimates of calls probably billed but not
    priced, and reservations of calls in flight."""

    caps: Caps
    month: Decimal
    today: Decimal
    estimated_month: Decimal = Decimal(0)
    estimated_today: Decimal = Decimal(0)
    in_flight: Decimal = Decimal(0)

    def _lines(self) -> list[tuple[str, Decimal, Decimal]]:
        lines = (("monthly", self.month + self.estimated_month + self.in_flight, self.caps.monthly_usd),
                 ("daily", self.today + self.estimated_today + self.in_flight, self.caps.daily_usd))
        return [(name, committed, cap) for name, committed, cap in lines if cap]

    @staticmethod
    def _period(name: str) -> str:
        return "this month's" if name == "monthly" else "today's"

    @property
    def blocked(self) -> str | None:
        """Why paid calls must wait, or None."""
        for name, committed, cap in self._lines():
            if committed >= cap:
                return (f"{self._period(name)} spend {usd(committed)} has reached the {name} budget of {usd(cap)}: "
                        f"API calls are paused ({HOW_TO_RAISE})")
        return None

    def refusal(self, worst_case: Decimal) -> str | None:
        """Why a call that may cost up to `worst_case` may not be made, or None."""
        for name, committed, cap in self._lines():
            if committed + worst_case > cap:
                return (f"the next call (up to {usd(worst_case)}) would take {self._period(name)} spend "
                        f"({usd(committed)} with calls in flight) past the {name} budget of {usd(cap)}: API calls "
                        f"are paused ({HOW_TO_RAISE})")
        return None

    @property
    def warning(self) -> str | None:
        """A heads-up once spend passes the warning level of a cap (and before it is reached)."""
        for name, committed, cap in self._lines():
            if cap * Decimal(str(self.caps.warn_at)) <= committed < cap:
                return f"{committed / cap:.0%} of the {name} budget ({usd(cap)}) is spent"
        return None


def _today() -> date:
    return datetime.now(UTC).date()


def in_force(s: Session, base: Caps) -> Caps:
    """The caps in force now: what a lead saved (`settings.save_engine`: the Settings page, `triage settings set`)
    over `base` (the environment's). One primary-key read of the settings row, made where each reservation is
    made rather than once per command."""
    stored = db_settings.get(s, "engine", {}) or {}

    def cap(key: str, default: Decimal) -> Decimal:
        return Decimal(str(stored[key] or 0)) if key in stored else default

    return replace(base, monthly_usd=cap("monthly_budget_usd", base.monthly_usd),
                   daily_usd=cap("daily_budget_usd", base.daily_usd))


def _standing_in(s: Session, caps: Caps, today: date) -> Standing:
    c = ledger.committed(s, today)
    return Standing(caps, from_pico(c.month), from_pico(c.day), from_pico(c.estimated_month),
                    from_pico(c.estimated_day), from_pico(c.in_flight))


def _refusal(s: Session, base: Caps, worst_case: Decimal) -> str | None:
    """Inside a reservation's write transaction: why `worst_case` may not be reserved under the caps in force,
    or None. With caps, the ledger's lock is taken first and the caps read again under it, so that a cap saved
    before this reservation is never missed."""
    if not in_force(s, base).any:
        return None
    ledger.lock(s)
    return _standing_in(s, in_force(s, base), _today()).refusal(worst_case)


def standing(db: Database, caps: Caps, today: date | None = None) -> Standing:
    """This month's and today's money against the caps in force (`caps`: the environment's; see `in_force`)."""
    with db.read() as s:
        return _standing_in(s, in_force(s, caps), today or _today())


def check(db: Database, caps: Caps) -> None:
    """Raise BudgetReached when a cap is reached (before a worker pass, before a command starts)."""
    reason = standing(db, caps).blocked
    if reason:
        raise BudgetReached(reason)


class BudgetGuard:
    """The router's spend guard: reserves each paid call's worst case before it is sent, refusing the call when
    the reservation would cross a cap. Without caps it still records the attempt (a restart after a crash then
    knows the call was probably billed)."""

    def __init__(self, db: Database, caps: Caps):
        self.db, self.caps = db, caps  # the environment's caps; what a lead saves wins (read at each reservation)

    def refusal(self, s: Session, worst_case: Decimal) -> str | None:
        """Inside a reservation's write transaction: why `worst_case` may not be reserved, or None."""
        return _refusal(s, self.caps, worst_case)

    async def admit(self, provider: Provider, text: str, taxonomy: Taxonomy, ticket: CallFor | None = None) -> int:
        worst = provider.worst_case_cost(text, taxonomy)
        return await asyncio.to_thread(self.reserve, worst, provider.tier, provider.model, ticket)

    def reserve(self, worst_case: Decimal, tier: int, model: str, ticket: CallFor | None = None, *,
                kind: str = "call") -> int:
        """Reserve `worst_case` atomically, or raise BudgetReached (nothing is written then)."""
        ticket = ticket or CallFor()

        def fn(s: Session) -> int:
            reason = self.refusal(s, worst_case)
            if reason:
                raise BudgetReached(reason)
            return ledger.reserve(s, estimated_pico=to_pico(worst_case), tier=tier, model=model, kind=kind,
                                  worker=ticket.worker if kind == "call" else None, ticket_id=ticket.ticket_id,
                                  run_id=ticket.run_id)

        return self.db.write(fn)

    async def admit_group(self, provider: GroupProvider, texts: Sequence[str], taxonomy: Taxonomy,
                          tickets: Sequence[CallFor]) -> list[int]:
        """Before a request about several tickets: reserve its whole worst case at once (refused as a whole when it
        would cross a cap), written as one reservation per ticket (shares by each ticket's characters, adding up
        to the worst case exactly), so an in-flight request is an attempt on every ticket in it."""
        from triage.routing import grouping

        worst = to_pico(provider.group_worst_case_cost(texts, taxonomy))
        weights = grouping.input_weights(texts)
        shares = grouping.apportion(worst, weights, [0] * len(weights), 0)

        def fn(s: Session) -> list[int]:
            reason = self.refusal(s, from_pico(worst))
            if reason:
                raise BudgetReached(reason)
            return [ledger.reserve(s, estimated_pico=share, tier=provider.tier, model=provider.model, kind="call",
                                   worker=t.worker, ticket_id=t.ticket_id, run_id=t.run_id)
                    for share, t in zip(shares, tickets, strict=True)]

        return await asyncio.to_thread(self.db.write, fn)

    async def abandon(self, reservation_id: int, note: str) -> None:
        """The call ended without an answer we could record: it stays on the books as probably billed."""
        await asyncio.to_thread(self.db.write, lambda s: ledger.abandon(s, reservation_id, note))

    async def again(self, reservation_ids: Sequence[int], note: str) -> list[int]:
        """Before a request is sent again after an attempt that got no answer but may have been billed (a read
        timeout, a connection lost after the request went out): that attempt's reservations stay on the books as
        probably billed (lost, at their worst case), and the same worst case is reserved for the next attempt
        under the caps in force. Raises BudgetReached when it no longer fits; the attempt is booked either way."""

        def fn(s: Session) -> list[int] | str:
            booked = ledger.abandon_all(s, reservation_ids, note)
            reason = self.refusal(s, from_pico(sum(r.estimated_pico for r in booked)))
            if reason:
                return reason  # not raised in here: the booking above must commit
            return [ledger.reserve(s, estimated_pico=r.estimated_pico, tier=r.tier, model=r.model, kind=r.kind,
                                   worker=r.worker, ticket_id=r.ticket_id, run_id=r.run_id) for r in booked]

        renewed = await asyncio.to_thread(self.db.write, fn)
        if isinstance(renewed, str):
            raise BudgetReached(renewed)
        return renewed

    async def reserve_batch(self, run_id: int, provider: Provider, taxonomy: Taxonomy,
                            texts: Sequence[str]) -> int | None:
        """Before a Message Batch is submitted (the gate's reserve step, `Gate.reserve_batch`): reserve the worst
        case of all its requests about `texts` (as the gate prepared them) at the batch price. The reservation
        holds while the run's batch is open; a run holds one (asked again, for a batch sent again after an
        interruption, the first one still stands)."""
        return await asyncio.to_thread(self._reserve_batch, run_id, provider, taxonomy, texts)

    def _reserve_batch(self, run_id: int, provider: Provider, taxonomy: Taxonomy,
                       texts: Sequence[str]) -> int | None:
        with self.db.read() as s:
            held = ledger.batch_reservation(s, run_id)
        if held is not None:
            return held
        if not texts:
            return None
        total = sum((provider.worst_case_cost(t, taxonomy, batch=True) for t in texts), Decimal(0))
        return self.reserve(total, provider.tier, provider.model, CallFor(run_id=run_id), kind="batch")


class CappedGuard(BudgetGuard):
    """A `BudgetGuard` with one more cap: what the runs `run_ids` (a pilot's, triage/work/pilot.py) spent or
    spoke for, exact calls plus reservations open, lost or unpriced, with this reservation, stays within
    `cap_pico`. Checked under the ledger's lock like the caps in force, on every reservation: a first attempt, a
    request about several tickets, and the next attempt after a timeout (whose lost attempt stays on the books)."""

    def __init__(self, db: Database, caps: Caps, cap_pico: int, run_ids: Sequence[int], what: str = "the pilot"):
        super().__init__(db, caps)
        self.cap_pico, self.run_ids, self.what = cap_pico, list(run_ids), what

    def refusal(self, s: Session, worst_case: Decimal) -> str | None:
        reason = super().refusal(s, worst_case)
        if reason:
            return reason
        ledger.lock(s)
        committed = ledger.runs_committed(s, self.run_ids)
        if committed + to_pico(worst_case) > self.cap_pico:
            return (f"the next call (up to {usd(worst_case)}) would take {self.what}'s spend "
                    f"({usd(from_pico(committed))} with calls in flight) past its cap of "
                    f"{usd(from_pico(self.cap_pico))}")
        return None
