"""Two-tier routing: tier 1 first, tier 2 when tier 1 is unsure, unusable, or asked for.

Pure decisions live here; the service layer feeds calls in and stores what comes out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from triage.domain import (
    AUTH,
    CLASSIFIED,
    ERROR,
    ESCALATED,
    FAILED,
    MODES,
    NEEDS_REVIEW,
    PENDING,
    CallFor,
    CallResult,
    Outcome,
)
from triage.errors import InputError, KeyRejected
from triage.routing import redact
from triage.routing.calibration import Calibration
from triage.routing.gate import Gate, SpendGuard
from triage.routing.provider import Provider
from triage.taxonomy import Taxonomy


def should_escalate(call: CallResult, threshold: float) -> bool:
    """Tier 1 answered but cannot be trusted on its own: unusable, or its routing confidence (calibrated when a
    calibration was in force for the call) is under the threshold."""
    if not call.answered:
        return False  # errors are retried later, not escalated
    if not call.usable:
        return True  # unknown label, unparsed, refusal, cut off
    return (call.routing_confidence or 0.0) < threshold


def _under(call: CallResult, threshold: float) -> str:
    if call.calibration_id is not None:
        return (f"calibrated confidence {call.routing_confidence or 0.0:.2f} (says {call.confidence or 0.0:.2f}) "
                f"under the threshold {threshold:.2f}")
    return f"confidence {call.confidence or 0.0:.2f} under the threshold {threshold:.2f}"


def decide(calls: list[CallResult], threshold: float) -> Outcome:
    """The ticket's state and machine label from its calls (oldest first)."""
    out = Outcome(calls=list(calls))
    answered = [c for c in calls if c.answered]
    out.escalated = any(c.tier >= 2 for c in answered) and any(c.tier < 2 for c in answered)
    if not answered:
        last = calls[-1] if calls else None
        out.status = FAILED if last else PENDING
        out.reason = last.error if last else None
        return out
    best = max(answered, key=lambda c: (c.tier, calls.index(c)))  # highest tier wins, then the latest
    out.tier, out.model = best.tier, best.model_returned or best.model
    if best.usable:
        out.category, out.confidence = best.category, best.confidence
    last = calls[-1]
    if last.outcome == ERROR and last.tier > best.tier:
        # the escalation itself failed: keep tier 1's label, leave the ticket failed and retryable
        out.status, out.reason = FAILED, last.error
    if out.status == FAILED:
        return out
    if not best.usable:
        out.status = NEEDS_REVIEW
        out.reason = best.problem or best.outcome
    elif (best.routing_confidence or 0.0) < threshold:
        out.status = NEEDS_REVIEW
        out.reason = _under(best, threshold)
    else:
        out.status = ESCALATED if out.escalated else CLASSIFIED
    return out


OnCall = Callable[[CallResult], Awaitable[None]]


class Router:
    """Runs one ticket through the tiers. `prior` calls (already billed) are reused, never repeated.

    `mode` and `threshold` are the defaults; a run's own mode and threshold may be passed per ticket, so they
    travel with the ticket whoever processes it. Every paid (tier >= 1) call passes the `gate` (prepare, reserve
    with `guard` when set, send, book; triage.routing.gate); `ticket` says whom the call is for (written on its
    reservation); `policy` is the masking the gate prepares every text with (default: every type masked).
    `calibrations` (by model id) are applied to
    each tier-1/tier-2 answer as it arrives; routing then compares the calibrated confidence, and the call carries
    the id of the map it was routed with. `per_call` / `per_call_sonnet`: how many tickets one tier-1 / tier-2
    request may carry (1: one request per ticket; see triage.routing.group_router)."""

    def __init__(self, tier1: Provider | None, tier2: Provider | None, taxonomy: Taxonomy,
                 threshold: float = 0.7, mode: str = "auto", tier0: Provider | None = None,
                 tier0_threshold: float = 0.9, guard: SpendGuard | None = None,
                 calibrations: Mapping[str, Calibration] | None = None,
                 policy: redact.MaskPolicy = redact.DEFAULT_POLICY):
        _check(mode, threshold)
        self.tier1, self.tier2, self.taxonomy = tier1, tier2, taxonomy
        self.threshold, self.mode = threshold, mode
        self.tier0, self.tier0_threshold = tier0, tier0_threshold
        self.gate = Gate(guard, policy)
        self.calibrations: Mapping[str, Calibration] = dict(calibrations or {})
        self.per_call: int = 1
        self.per_call_sonnet: int | None = None  # None: the same as the tier-1 size (the run's, else per_call)

    @property
    def guard(self) -> SpendGuard | None:
        """The spending ledger the gate reserves in (None: nothing reserved)."""
        return self.gate.guard

    @guard.setter
    def guard(self, guard: SpendGuard | None) -> None:
        self.gate.guard = guard

    def calibrate(self, call: CallResult) -> CallResult:
        """Put the calibration in force for the call's model on it (tiers 1 and 2; tier 0 calibrates itself)."""
        cal = self.calibrations.get(call.model) if call.tier >= 1 else None
        if cal is not None and cal.id is not None and call.answered and call.confidence is not None:
            call.calibration_id, call.calibrated_confidence = cal.id, cal.apply(call.confidence)
        return call

    def sizes(self, run_per_call: int | None = None) -> tuple[int, int]:
        """Tickets per tier-1 and per tier-2 request for a ticket of a run that asked for `run_per_call`."""
        first = run_per_call or self.per_call
        return first, first if self.per_call_sonnet is None else self.per_call_sonnet

    async def classify(self, text: str, prior: list[CallResult] | None = None, on_call: OnCall | None = None, *,
                       mode: str | None = None, threshold: float | None = None,
                       ticket: CallFor | None = None) -> Outcome:
        mode = self.mode if mode is None else mode
        threshold = self.threshold if threshold is None else threshold
        _check(mode, threshold)
        calls = list(prior or [])
        if self.tier0 is not None and mode == "auto":
            local = next((c for c in calls if c.tier == 0 and c.answered), None)
            if local is None:
                local = await self._call(self.tier0, text, calls, on_call, ticket)
            if local.usable and (local.confidence or 0.0) >= self.tier0_threshold:
                return decide(calls, self.tier0_threshold)  # the free tier is sure enough: no API call
        first = self.tier2 if mode == "sonnet" else self.tier1
        if first is None:
            raise ValueError(f"no provider for mode {mode!r}")
        done = next((c for c in calls if c.tier == first.tier and c.answered), None)
        if done is None:
            done = await self._call(first, text, calls, on_call, ticket)
        wants_tier2 = mode == "auto" and self.tier2 is not None and should_escalate(done, threshold)
        if wants_tier2 and self.tier2 is not None and not any(c.tier == self.tier2.tier and c.answered for c in calls):
            await self._call(self.tier2, text, calls, on_call, ticket)
        return decide(calls, threshold)

    async def escalate(self, text: str, prior: list[CallResult], on_call: OnCall | None = None, *,
                       threshold: float | None = None, ticket: CallFor | None = None) -> Outcome:
        """On demand: ask tier 2 whatever tier 1 said."""
        if self.tier2 is None:
            raise ValueError("no tier-2 provider to escalate to")
        calls = list(prior)
        await self._call(self.tier2, text, calls, on_call, ticket)
        return decide(calls, self.threshold if threshold is None else threshold)

    async def aclose(self) -> None:
        """Close the providers' HTTP clients inside the event loop that used them."""
        clients = {id(c): c for p in (self.tier0, self.tier1, self.tier2)
                   if (c := getattr(p, "client", None)) is not None and hasattr(c, "close")}
        for client in clients.values():  # tiers 1 and 2 share one client: close it once
            await client.close()

    async def call(self, provider: Provider, text: str, calls: list[CallResult], on_call: OnCall | None,
                   ticket: CallFor | None = None) -> CallResult:
        """One single-ticket call (through the gate when paid), appended to `calls` and passed to `on_call`."""
        return await self._call(provider, text, calls, on_call, ticket)

    async def _call(self, provider: Provider, text: str, calls: list[CallResult], on_call: OnCall | None,
                    ticket: CallFor | None = None) -> CallResult:
        if provider.tier >= 1:
            result = await self.gate.one(provider, text, self.taxonomy, ticket)
        else:  # tier 0: local and free, nothing leaves the machine
            result = await self.gate.local(provider, text, self.taxonomy)
        self.calibrate(result)
        calls.append(result)
        if on_call is not None:
            await on_call(result)
        if result.error_kind == AUTH:
            raise KeyRejected(result.error or "the API key was rejected")
        return result


def _check(mode: str, threshold: float) -> None:
    if mode not in MODES:
        raise InputError(f"tier must be one of {', '.join(MODES)}")
    if not 0 <= threshold <= 1:
        raise InputError("threshold must be between 0 and 1")
