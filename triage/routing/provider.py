"""What the router needs from a tier: classify one text, return one call (see triage.domain.CallResult), and say
the most such a call can cost. A paid tier is called through the gate (triage.routing.gate), which hands it the
request's reservation (`paid`) to book attempts it sends again."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from triage.domain import CallResult
from triage.taxonomy import Taxonomy

if TYPE_CHECKING:
    from triage.routing.gate import Reservation
    from triage.routing.grouping import GroupCall


class Provider(Protocol):
    tier: int
    model: str

    async def classify(self, text: str, taxonomy: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        """One request about `text`, as the gate prepared it; `paid`: its reservation (None: nothing reserved)."""
        ...

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most one call about `text` can cost (reserved in the spending ledger before it is sent); `batch`:
        as a Message Batches request."""
        ...


class GroupProvider(Provider, Protocol):
    """A tier that can also ask about several tickets in one request (triage.routing.grouping)."""

    async def classify_group(self, texts: Sequence[str], taxonomy: Taxonomy, *,
                             paid: Reservation | None = None) -> GroupCall: ...

    def group_worst_case_cost(self, texts: Sequence[str], taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most one request about these tickets can cost."""
        ...
