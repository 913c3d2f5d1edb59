"""What the router needs from a tier: classify one text, return one call (see triage.domain.CallResult), and say
the most such a call can cost."""

from __future__ import annotations

from collections.abc import Sequence
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
