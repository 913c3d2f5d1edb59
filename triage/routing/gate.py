"""The gate every request to a paid model passes, in one order (docs/architecture.md, "A ticket's life"):

1. **prepare** (`prepare`): personal data masked with the policy in force, which the gate holds (`Gate.policy`;
   triage.routing.redact), and block tags neutralised (triage.routing.fencing), one function for ticket texts and
   few-shot examples alike (the example bank is prepared with it, and the gate's policy, when it is loaded:
   triage.local.retrieval);
2. **reserve**: the request's worst case reserved under the caps read now (the `SpendGuard`, in practice
   `triage.spend.budget.BudgetGuard`), or the request refused (errors.BudgetReached) and never sent;
3. **send**: through the provider, the reservation passed along explicitly (`Reservation`), so an attempt that
   may have been billed but got no answer is booked before the provider sends again (`Reservation.again`);
4. **book**: answered, the reservation travels on each call (`CallResult.reservation_id`) and is settled in the
   transaction that records it (`db.calls.record_call`); failed after it may have reached the API, it is booked
   lost at its worst case (`Reservation.lost`); refused by a cap, nothing was sent.

Live single calls, groups (several tickets per request), escalations and `triage eval` go through `Gate.one` and
`Gate.group` (the router's `gate`). A Message Batch prepares its texts with the same `prepare` (`Gate.prepared`),
reserves its worst case with `Gate.reserve_batch` at submit, and books its results at collect
(`triage.work.batches`).
Tier 0 (the local model) sends nothing anywhere and costs nothing: it does not pass the gate.

Pure: no database, no SDK (the guard and the provider are handed in).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from triage.domain import CallFor, CallResult
from triage.errors import BudgetReached, for_people
from triage.routing import fencing, redact
from triage.taxonomy import Taxonomy

if TYPE_CHECKING:
    from triage.routing.grouping import GroupCall
    from triage.routing.provider import GroupProvider, Provider

T = TypeVar("T")


def prepare(text: str, policy: redact.MaskPolicy = redact.DEFAULT_POLICY) -> str:
    """A text as a request carries it: personal data replaced by typed placeholders, then every block tag
    however spelt neutralised (what is left can neither open nor close a block)."""
    return fencing.neutralise(redact.mask(text, policy).text)



class SpendGuard(Protocol):
    """The spending ledger as the gate asks it (triage.spend.budget.BudgetGuard)."""

    async def admit(self, provider: Provider, text: str, taxonomy: Taxonomy, ticket: CallFor | None = None) -> int:
        """Reserve the worst case of one request about `text` (prepared) and return the reservation's id, or raise
        errors.BudgetReached when it would cross a cap (nothing written then)."""
        ...

    async def admit_group(self, provider: GroupProvider, texts: Sequence[str], taxonomy: Taxonomy,
                          tickets: Sequence[CallFor]) -> Sequence[int]:
        """Before a request about several tickets: reserve its whole worst case (one reservation per ticket)."""
        ...

    async def abandon(self, reservation_id: int, note: str) -> None:
        """The call ended without an answer to record: keep it on the books as probably billed."""
        ...

    async def again(self, reservation_ids: Sequence[int], note: str) -> list[int]:
        """An attempt got no answer but may have been billed: keep it on the books as probably billed and reserve
        the next attempt's worst case (errors.BudgetReached when it would cross a cap)."""
        ...

    async def reserve_batch(self, run_id: int, provider: Provider, taxonomy: Taxonomy,
                            texts: Sequence[str]) -> int | None:
        """Before a Message Batch is submitted: the worst case of all its requests about `texts` (prepared)."""
        ...


@dataclass
class Reservation:
    """The spending-ledger reservations of one request being sent (one per ticket it is about), handed by the
    gate to the provider with the request. The API bills every attempt it answered, also one whose answer never
    reached us (a read timeout, a connection lost after the request went out), so a provider calls `again`
    before it sends the request again after such an attempt, and `lost` when it was the last."""

    ids: list[int]
    guard: SpendGuard

    async def again(self, note: str) -> None:
        self.ids = await self.guard.again(self.ids, note)

    async def lost(self, note: str) -> None:
        for rid in self.ids:
            await self.guard.abandon(rid, note)


class NotSent(BudgetReached):
    """The reserve step refused the request (it would cross a cap): nothing was sent, nothing is on the books."""


class Gate:
    """The one sequence of a paid request: prepare, reserve, send, book (see the module's doc). `guard` None:
    nothing is reserved (a router without a database, in tests and the demo); everything else is the same.
    `policy`: the masking in force (set from the settings by `services.build_router`); the gate alone holds it,
    no provider does. Not given, every type is masked (fails closed)."""

    def __init__(self, guard: SpendGuard | None = None, policy: redact.MaskPolicy = redact.DEFAULT_POLICY):
        self.guard = guard
        self.policy = policy

    def prepared(self, texts: Sequence[str]) -> list[str]:
        """The prepare step for texts sent otherwise than by `one` and `group` (a Message Batch's requests)."""
        return [prepare(t, self.policy) for t in texts]

    async def one(self, provider: Provider, text: str, taxonomy: Taxonomy,
                  ticket: CallFor | None = None) -> CallResult:
        """One request about one ticket (refused by a cap: `NotSent`); its reservation (if any) on the result for
        the record to settle."""
        prepared = prepare(text, self.policy)
        paid = None
        if self.guard is not None:
            paid = Reservation([await _reserve(self.guard.admit(provider, prepared, taxonomy, ticket))], self.guard)
        try:
            result = await provider.classify(prepared, taxonomy, paid=paid)
        except Exception as exc:  # a cancelled call (BaseException) stays open: its stop or restart marks it lost
            if paid is not None:
                await paid.lost(f"the call raised {for_people(exc)} (probably billed, answer lost)")
            raise
        result.reservation_id = paid.ids[0] if paid is not None else None
        return result

    @staticmethod
    async def local(provider: Provider, text: str, taxonomy: Taxonomy) -> CallResult:
        """Tier 0 (the local model): nothing leaves the machine and nothing is billed, so nothing is prepared or
        reserved; a paid tier is refused here (it goes through `one`)."""
        if provider.tier >= 1:
            raise ValueError(f"tier {provider.tier} is paid: its requests pass Gate.one")
        return await provider.classify(text, taxonomy)

    async def group(self, provider: GroupProvider, texts: Sequence[str], taxonomy: Taxonomy,
                    tickets: Sequence[CallFor]) -> GroupCall:
        """One request about several tickets (refused whole by a cap: `NotSent`, nothing sent); each
        ticket's call carries its own reservation."""
        prepared = self.prepared(texts)
        paid = None
        if self.guard is not None:
            paid = Reservation(list(await _reserve(self.guard.admit_group(provider, prepared, taxonomy, tickets))),
                               self.guard)
        try:
            answer = await provider.classify_group(prepared, taxonomy, paid=paid)
        except Exception as exc:  # a cancelled request (BaseException) stays open: its stop marks it lost
            if paid is not None:
                await paid.lost(f"the request raised {for_people(exc)} (probably billed, answer lost)")
            raise
        reservations: list[int | None] = list(paid.ids) if paid is not None else [None] * len(texts)
        for c, rid in zip(answer.tickets, reservations, strict=True):
            c.reservation_id = rid
        return answer

    async def reserve_batch(self, run_id: int, provider: Provider, taxonomy: Taxonomy,
                            prepared: Sequence[str]) -> int | None:
        """A Message Batch's reserve step: the worst case of its requests about these `prepare`d texts (a run
        holds one batch reservation; None without a guard or without texts)."""
        if self.guard is None or not prepared:
            return None
        return await self.guard.reserve_batch(run_id, provider, taxonomy, prepared)


async def _reserve(admitted: Awaitable[T]) -> T:
    """The reserve step: a cap's refusal becomes `NotSent` (the send and book steps never run)."""
    try:
        return await admitted
    except NotSent:
        raise
    except BudgetReached as exc:
        raise NotSent(str(exc)) from exc
