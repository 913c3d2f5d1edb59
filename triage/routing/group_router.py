"""Routing several tickets per request: the same tiers and rules as `Router.classify` / `Router.escalate`, with
the tier-1 (and tier-2) calls of a group of tickets made as requests about up to `router.per_call`
(`router.per_call_sonnet`) tickets each.

Every answer goes to its own ticket (triage.routing.grouping reads it by the ids of the request, never by position):
- a ticket whose text addresses other tickets (grouping.addresses_others) is planned alone, never in a group;
- a ticket the answer skipped, named twice or answered malformed (and any answer naming an id that was not
  sent) is asked again alone, as a single-ticket request;
- a wholly unreadable, refused or cut-off answer asks the group once more, then each ticket alone;
- a ticket a group already left without a clean answer (an earlier pass, a Message Batch) is asked alone at
  that tier from then on;
- a request that got no answer at all (the API failed after its retries) leaves each ticket failed with that
  error, retryable, as a single call would.
Each request passes the gate (triage.routing.gate: prepared, its worst case reserved whole, one reservation per
ticket, sent, booked), and its calls are recorded together, one per ticket with its share of the exact cost. A
request whose worst case would cross a spending cap is split in two, and so on down to single tickets: what fits
under the cap is still asked, and the run stops (budget reached) only when a ticket alone does not fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from triage.domain import AUTH, ERROR, CallFor, CallResult, Outcome
from triage.errors import BudgetReached, KeyRejected
from triage.routing import grouping
from triage.routing.gate import NotSent
from triage.routing.provider import GroupProvider, Provider
from triage.routing.router import Router, decide, should_escalate


@dataclass
class Member:
    """One ticket of a group: its text, the calls it has (answered ones already recorded, then the new ones) and
    the routing of its run."""

    ticket_id: int
    text: str
    ticket: CallFor
    calls: list[CallResult] = field(default_factory=list)
    mode: str = "auto"
    threshold: float = 0.7
    wants_tier2: bool = False  # an operator asked for tier 2
    run_id: int | None = None
    per_call: int | None = None  # the run's tickets per tier-1 request (None: the router's)
    alone_at: set[int] = field(default_factory=set)  # tiers where a group left it unanswered: asked alone there


Record = Callable[[Sequence[tuple[Member, CallResult]]], Awaitable[None]]  # writes the calls in one transaction


class StoppedPartway(Exception):
    """A spending cap (or a rejected key) stopped a group's routing after some of its members had every answer
    they needed: `outcomes` holds those members' outcomes (None for the others, which stay pending)."""

    def __init__(self, cause: BudgetReached | KeyRejected, outcomes: list[Outcome | None]):
        super().__init__(str(cause))
        self.cause, self.outcomes = cause, outcomes


class GroupRouting:
    def __init__(self, router: Router, record: Record):
        self.router, self.record = router, record

    async def route(self, members: Sequence[Member], *, escalate: bool = False) -> list[Outcome]:
        """Each member through the tiers (or, `escalate`, straight to tier 2); one Outcome per member, in order.
        Raises StoppedPartway when a cap or the key stops it midway."""
        try:
            return await self._route(members, escalate=escalate)
        except (BudgetReached, KeyRejected) as exc:
            raise StoppedPartway(exc, [self._settled(m, escalate) for m in members]) from exc

    def _settled(self, m: Member, escalate: bool) -> Outcome | None:
        """The member's outcome if it already has every answer `_route` would have asked for, else None."""
        r = self.router
        if self._direct(m, escalate):
            return decide(m.calls, m.threshold) if r.tier2 and _answered_at(m, r.tier2.tier) else None
        if self._sure_locally(m, _local_answer(m)):
            return decide(m.calls, r.tier0_threshold)
        first = self._first(m)
        if _answered_at(m, first.tier) is None or self._needs_tier2(m, first):
            return None
        return decide(m.calls, m.threshold)

    def _direct(self, m: Member, escalate: bool) -> bool:
        """Straight to tier 2: an escalation, or an operator asked for it."""
        return escalate or (m.wants_tier2 and self.router.tier2 is not None)

    def _sure_locally(self, m: Member, local: CallResult | None) -> bool:
        """Tier 0's answer settles the ticket (auto mode, usable, sure enough)."""
        r = self.router
        return (r.tier0 is not None and m.mode == "auto" and local is not None and local.usable
                and (local.confidence or 0.0) >= r.tier0_threshold)

    def _needs_tier2(self, m: Member, first: Provider) -> bool:
        """Its first tier's answer is unsure (auto mode) and tier 2 has not answered yet."""
        r = self.router
        done = _answered_at(m, first.tier)
        return (m.mode == "auto" and r.tier2 is not None and done is not None and should_escalate(done, m.threshold)
                and not _answered_at(m, r.tier2.tier))

    async def _route(self, members: Sequence[Member], *, escalate: bool) -> list[Outcome]:
        r = self.router
        sure_locally: set[int] = set()
        direct = {id(m) for m in members if self._direct(m, escalate)}
        routed = [m for m in members if id(m) not in direct]
        for m in routed:  # tier 0 is local and free: one ticket at a time, as today
            if r.tier0 is not None and m.mode == "auto":
                local = _local_answer(m) or await r.call(r.tier0, m.text, m.calls, self._on_call(m), m.ticket)
                if self._sure_locally(m, local):
                    sure_locally.add(id(m))
        first_of = {id(m): self._first(m) for m in routed if id(m) not in sure_locally}
        for provider in {id(p): p for p in first_of.values()}.values():
            await self.ask(provider, [m for m in routed if first_of.get(id(m)) is provider
                                      and not _answered_at(m, provider.tier)])
        up = {id(m) for m in routed if (first := first_of.get(id(m))) is not None and self._needs_tier2(m, first)}
        if direct or up:
            if r.tier2 is None:
                raise ValueError("no tier-2 provider to escalate to")
            await self.ask(r.tier2, [m for m in members if id(m) in direct | up])
        return [decide(m.calls, r.tier0_threshold if id(m) in sure_locally else m.threshold) for m in members]

    def _first(self, m: Member) -> Provider:
        first = self.router.tier2 if m.mode == "sonnet" else self.router.tier1
        if first is None:
            raise ValueError(f"no provider for mode {m.mode!r}")
        return first

    async def ask(self, provider: Provider, members: Sequence[Member]) -> None:
        """One tier's call for each member, in groups planned in queue order (members of a run that asked for
        another size are grouped apart)."""
        r = self.router
        by_size: dict[int, list[Member]] = {}
        for m in members:
            first, second = r.sizes(m.per_call)
            size = second if r.tier2 is not None and provider is r.tier2 else first
            by_size.setdefault(1 if provider.tier in m.alone_at else size, []).append(m)
        for size, same in by_size.items():
            for group in grouping.plan(same, lambda m: m.text, size):
                await self._ask_together(provider, group, tries=2)

    async def _alone(self, provider: Provider, m: Member) -> None:
        await self.router.call(provider, m.text, m.calls, self._on_call(m), m.ticket)

    def _on_call(self, m: Member) -> Callable[[CallResult], Awaitable[None]]:
        async def on_call(c: CallResult) -> None:
            await self.record([(m, c)])
        return on_call

    async def _ask_together(self, provider: Provider, group: list[Member], tries: int) -> None:
        if len(group) == 1 or not hasattr(provider, "classify_group"):
            for m in group:  # a group of one is exactly today's single-ticket request
                await self._alone(provider, m)
            return
        grouped: GroupProvider = provider  # type: ignore[assignment]  # checked just above
        r = self.router
        try:
            answer = await r.gate.group(grouped, [m.text for m in group], r.taxonomy, [m.ticket for m in group])
        except NotSent:  # too dear whole: two smaller requests may fit (a ticket alone that does not fit
            half = (len(group) + 1) // 2  # stops the run, as a single call would); nothing was sent
            for part in (group[:half], group[half:]):
                await self._ask_together(provider, part, tries)
            return
        for c in answer.tickets:
            r.calibrate(c)  # each ticket's answer routed on the calibration in force for the model
        await self.record(list(zip(group, answer.tickets, strict=True)))
        for m, c in zip(group, answer.tickets, strict=True):
            m.calls.append(c)
        if answer.whole.error_kind == AUTH:
            raise KeyRejected(answer.whole.error or "the API key was rejected")
        if answer.whole.outcome == ERROR:
            return  # no answer after the provider's retries: each ticket is failed with the error, retryable
        if answer.retry_group:
            if tries > 1:
                await self._ask_together(provider, group, tries - 1)
            else:
                for m in group:
                    await self._alone(provider, m)
            return
        for m, c in zip(group, answer.tickets, strict=True):
            if c.outcome == ERROR:  # skipped, named twice or malformed: asked again alone, never guessed
                await self._alone(provider, m)


def _local_answer(m: Member) -> CallResult | None:
    """Tier 0's answer the ticket already has (its first)."""
    return next((c for c in m.calls if c.tier == 0 and c.answered), None)


def _answered_at(m: Member, tier: int) -> CallResult | None:
    return next((c for c in reversed(m.calls) if c.tier == tier and c.answered), None)
