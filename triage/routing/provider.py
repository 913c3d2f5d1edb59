"""What the router needs from a tier: classify one text, return one call (see triage.domain.CallResult), and say
the most such a call can cost; and what a paid tier does with the spending ledger between its own retries
(`PaidRequest`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from triage.domain import CallResult
from triage.taxonomy import Taxonomy

if TYPE_CHECKING:
    from triage.routing.grouping import GroupCall


class Provider(Protocol):
    tier: int
    model: str

    async def classify(self, text: str, taxonomy: Taxonomy) -> CallResult: ...

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most one call about `text` can cost (reserved in the spending ledger before it is sent); `batch`:
        as a Message Batches request."""
        ...


class GroupProvider(Provider, Protocol):
    """A tier that can also ask about several tickets in one request (triage.routing.grouping)."""

    async def classify_group(self, texts: Sequence[str], taxonomy: Taxonomy) -> GroupCall: ...

    def group_worst_case_cost(self, texts: Sequence[str], taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most one request about these tickets can cost."""
        ...


class Ledger(Protocol):
    """The part of the spend guard (triage.spend.budget.BudgetGuard) a provider's retries need."""

    async def abandon(self, reservation_id: int, note: str) -> None:
        """The attempt got no answer but may have been billed: it stays on the books as probably billed."""
        ...

    async def again(self, reservation_ids: Sequence[int], note: str) -> list[int]:
        """As `abandon` for each, then the same worst case reserved anew under the caps in force for the next
        attempt (errors.BudgetReached when it no longer fits: the attempt is on the books either way)."""
        ...


@dataclass
class PaidRequest:
    """The spending-ledger reservations of the paid request a provider is sending (one per ticket it is about),
    set by the router around the provider's call (`paying`). The API bills every attempt it answered, also one
    whose answer never reached us (a read timeout, a connection lost after the request went out), so a provider
    calls `again` before it sends the request again after such an attempt, and `lost` when it was the last."""

    reservations: list[int]
    ledger: Ledger

    async def again(self, note: str) -> None:
        self.reservations = await self.ledger.again(self.reservations, note)

    async def lost(self, note: str) -> None:
        for rid in self.reservations:
            await self.ledger.abandon(rid, note)


_paid: ContextVar[PaidRequest | None] = ContextVar("triage_paid_request", default=None)


@contextmanager
def paying(request: PaidRequest | None) -> Iterator[PaidRequest | None]:
    """The paid request the provider called inside this block is sending (None: unguarded, nothing reserved)."""
    token = _paid.set(request)
    try:
        yield request
    finally:
        _paid.reset(token)


def paid_request() -> PaidRequest | None:
    """The reservations of the request this task is sending, if a guard reserved it (see `paying`)."""
    return _paid.get()
