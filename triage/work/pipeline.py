"""The async pipeline: claim tickets from the durable queue, route each through the tiers, record every call as
it returns, and apply the outcome. No rules of its own beyond "never lose a ticket, never lose a billed call":
the service layer (triage.work.services) decides what runs, with which router, under which budget. While a pass
runs it renews its claims (a heartbeat every tenth of `queue.LEASE`), so no other worker takes a ticket whose call
is slow, and a dead worker's tickets are free once its last renewal is a lease old.

A run stops from inside when the key is rejected or a call would cross the budget, and from outside through a
`Halt` (the entry point's signal handler): no more claims, the calls in flight get `Halt.grace` seconds to
return and be recorded, then they are cut off and their reservations marked lost (probably billed, answer
lost). Either way the tickets not done are released, pending, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from db import calls, ledger, queue, runs
from db.engine import Database
from triage.domain import FAILED, MODES, UNANSWERED, CallFor, CallResult, Outcome
from triage.errors import BudgetReached, KeyRejected, NotFound, for_people
from triage.routing.group_router import GroupRouting, Member, StoppedPartway
from triage.routing.router import OnCall, Router
from triage.work.host import pid_alive, worker_name

__all__ = ["Halt", "RunReport", "Stop", "drain", "escalate_tickets", "pid_alive", "process_queue", "worker_name"]

log = logging.getLogger(__name__)

T = TypeVar("T")
OnTicket = Callable[[int, Outcome], None]
Step = Callable[[list[CallResult], OnCall], Awaitable[Outcome]]
STOP_GRACE_S = 30.0  # how long a stop waits for the calls in flight (the SDK's request timeout is 60 s)
BEATS_PER_LEASE = 10  # a pass renews its claims this often within a lease (every minute with the 10-minute lease)


@dataclass
class RunReport:
    """What one pass over the queue did."""

    run_id: int | None
    processed: int = 0
    states: dict[str, int] = field(default_factory=dict)  # the run's tickets by state at the end
    ended: dict[str, int] = field(default_factory=dict)  # how the tickets this pass processed ended
    stopped: str | None = None  # why the run stopped early, None when it finished
    stop_kind: str | None = None  # "key" (rejected API key), "budget" (a spending cap) or "signal"
    signal: int | None = None  # the signal that stopped it
    cut_off: int = 0  # calls still in flight when the stop's wait ran out: probably billed, answer lost
    skipped: int = 0  # tickets left alone (escalate: tier 2 had already decided them)
    held: dict[int, str] = field(default_factory=dict)  # tickets left alone (escalate): the open batch holding each
    run_ids: list[int] = field(default_factory=list)  # the runs of a pass that made several (retry)

    def stop(self, why: str, kind: str, signal: int | None = None) -> None:
        if not self.stopped:
            self.stopped, self.stop_kind, self.signal = why, kind, signal

    def ended_with(self, ticket_id: int, outcome: Outcome, on_ticket: OnTicket | None) -> None:
        """A ticket this pass processed ended so (and `on_ticket` hears of it)."""
        self.processed += 1
        self.ended[outcome.status] = self.ended.get(outcome.status, 0) + 1
        if on_ticket:
            on_ticket(ticket_id, outcome)

    def add(self, other: RunReport) -> None:
        self.processed += other.processed
        self.cut_off += other.cut_off
        for k, v in other.ended.items():
            self.ended[k] = self.ended.get(k, 0) + v
        if other.stopped and other.stop_kind:
            self.stop(other.stopped, other.stop_kind, other.signal)


@dataclass(eq=False)  # one request, compared by identity
class Halt:
    """A request from outside to stop (a signal): stop claiming, give the calls in flight `grace` seconds to
    return and be recorded, then cut them off. A second request cuts them off at once."""

    grace: float = STOP_GRACE_S
    reason: str | None = None
    signal: int | None = None
    _requested: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _forced: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self, reason: str, signal: int | None = None) -> None:
        if self._requested.is_set():
            self._forced.set()
            return
        self.reason, self.signal = reason, signal
        self._requested.set()

    async def wait(self) -> None:
        await self._requested.wait()

    async def forced(self) -> None:
        await self._forced.wait()


class Stop:
    """A stop asked from another thread (the dashboard's server stopping) for whichever pass runs at the time: a
    pass runs under `halting()`, which hands it a Halt that `request` asks for on the pass's own event loop (and
    at once when the stop came first). One per background worker: its queue passes and its pilots alike."""

    def __init__(self, reason: str, grace: float = STOP_GRACE_S):
        self.reason, self.grace = reason, grace
        self._asked = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[asyncio.AbstractEventLoop, Halt] | None = None

    @property
    def asked(self) -> bool:
        return self._asked.is_set()

    def request(self) -> None:
        """From any thread: no pass starts any more; the one running is halted (its calls in flight get `grace`
        seconds, then are booked as lost)."""
        self._asked.set()
        with self._lock:
            if self._current is not None:
                loop, halt = self._current
                with contextlib.suppress(RuntimeError):  # the loop has just closed: the pass is over
                    loop.call_soon_threadsafe(halt.request, self.reason)

    @contextlib.contextmanager
    def halting(self) -> Iterator[Halt]:
        """Inside a pass's running event loop: its Halt, reachable by `request` while the pass runs."""
        halt = Halt(self.grace)
        with self._lock:
            self._current = (asyncio.get_running_loop(), halt)
        if self._asked.is_set():  # the stop came before the pass could be reached
            halt.request(self.reason)
        try:
            yield halt
        finally:
            with self._lock:
                self._current = None


async def in_transaction(db: Database, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with db.transaction() as s:
            return fn(s)
    return await asyncio.to_thread(work)


async def write(db: Database, fn: Callable[[Session], T]) -> T:
    """A write that must not be lost (a billed call, a ticket's outcome): retried while the database is locked."""
    return await asyncio.to_thread(db.write, fn)


async def read(db: Database, fn: Callable[[Session], T]) -> T:
    def work() -> T:
        with db.read() as s:
            return fn(s)
    return await asyncio.to_thread(work)


async def _handle(db: Database, run_id: int | None, ticket_id: int, step: Step) -> Outcome | None:
    """Run one ticket through `step` (classify or escalate), storing each call as it returns. None when an answer
    could not be recorded: the ticket then waits, pending, rather than being marked failed."""
    prior = await read(db, lambda s: calls.current_calls(s, ticket_id))
    unrecorded = False

    async def on_call(c: CallResult) -> None:
        nonlocal unrecorded
        try:
            await write(db, lambda s: calls.record_call(s, ticket_id, run_id, c))
        except Exception:
            unrecorded = True
            raise

    try:
        outcome = await step([c for c in prior if c.answered], on_call)
    except (KeyRejected, BudgetReached):
        raise
    except Exception as exc:  # a bug or a database fault must not strand the ticket
        if unrecorded:  # we hold an answer the database would not take: its reservation stays, counted as lost
            log.error("ticket %s: the answer could not be recorded: %s", ticket_id, exc)
            why = f"its answer could not be recorded ({for_people(exc)}); it waits to be classified again"
            await write(db, lambda s: queue.leave_pending(s, ticket_id, why))
            return None
        log.exception("ticket %s failed unexpectedly", ticket_id)
        outcome = Outcome(status=FAILED, reason=f"internal error: {for_people(exc)}")
    await write(db, lambda s: calls.apply_outcome(s, ticket_id, outcome))
    return outcome


async def _process_one(db: Database, run_id: int | None, ticket_id: int, step: Step, report: RunReport,
                       stop: asyncio.Event, on_ticket: OnTicket | None) -> None:
    """One ticket through `step`. A rejected key or a reached budget stops the whole run; the ticket stays
    pending (with the reason) and its calls so far are kept."""
    try:
        outcome = await _handle(db, run_id, ticket_id, step)
    except (KeyRejected, BudgetReached) as exc:
        why = str(exc)
        report.stop(why, "key" if isinstance(exc, KeyRejected) else "budget")
        stop.set()
        await write(db, lambda s: queue.leave_pending(s, ticket_id, why))
        return
    if outcome is None:
        return
    report.ended_with(ticket_id, outcome, on_ticket)


async def _process_group(db: Database, members: list[Member], router: Router, report: RunReport,
                         stop: asyncio.Event, on_ticket: OnTicket | None, *, escalate: bool = False) -> None:
    """Tickets routed together (triage.routing.group_router), their calls recorded as they return. A rejected key or a
    reached budget stops the run: the tickets that had every answer they needed are settled, the others stay
    pending with the reason (their calls so far are kept); an answer the database would not take leaves them all
    pending (its reservations stay, counted as lost)."""
    ids = [m.ticket_id for m in members]
    prior = await read(db, lambda s: {t: calls.current_calls(s, t) for t in ids})
    for m in members:
        m.calls = [c for c in prior[m.ticket_id] if c.answered]
        m.alone_at = {c.tier for c in prior[m.ticket_id] if c.error_kind == UNANSWERED}
    unrecorded = False

    async def record(pairs: Sequence[tuple[Member, CallResult]]) -> None:
        nonlocal unrecorded
        try:
            await write(db, lambda s: calls.record_calls(s, [(m.ticket_id, m.run_id, c) for m, c in pairs]))
        except Exception:
            unrecorded = True
            raise

    def leave(why: str) -> Callable[[Session], None]:
        def fn(s: Session) -> None:
            for t in ids:
                queue.leave_pending(s, t, why)
        return fn

    waiting = ""  # why the tickets without an outcome wait (stopped midway)
    outcomes: list[Outcome | None]
    try:
        outcomes = list(await GroupRouting(router, record).route(members, escalate=escalate))
    except StoppedPartway as stopped:  # a cap or the key: members with every answer they need are settled
        waiting = str(stopped.cause)
        report.stop(waiting, "key" if isinstance(stopped.cause, KeyRejected) else "budget")
        stop.set()
        outcomes = stopped.outcomes
    except Exception as exc:  # a bug or a database fault must not strand the tickets
        if unrecorded:
            log.error("tickets %s: an answer could not be recorded: %s", ids, exc)
            await write(db, leave(f"an answer could not be recorded ({for_people(exc)}); it waits to be classified "
                                  "again"))
            return
        log.exception("tickets %s failed unexpectedly", ids)
        outcomes = [Outcome(status=FAILED, reason=f"internal error: {for_people(exc)}") for _ in ids]

    def apply(s: Session) -> None:  # one transaction: each ticket's outcome, or pending with the reason
        for t, o in zip(ids, outcomes, strict=True):
            if o is not None:
                calls.apply_outcome(s, t, o)
            else:
                queue.leave_pending(s, t, waiting)

    await write(db, apply)
    for t, o in zip(ids, outcomes, strict=True):
        if o is not None:
            report.ended_with(t, o, on_ticket)


def _run_per_call(s: Session, run_id: int) -> int | None:
    run = runs.run_info(s, run_id)
    return run.per_call if run is not None else None


def _member(item: queue.Claimed, worker: str, router: Router) -> Member:
    """A claimed ticket with its run's routing (the router's defaults for a ticket of no run)."""
    return Member(item.ticket_id, item.text, CallFor(item.ticket_id, item.run_id, worker),
                  mode=item.mode if item.mode in MODES else router.mode,
                  threshold=router.threshold if item.threshold is None else item.threshold,
                  wants_tier2=item.wants_tier2, run_id=item.run_id, per_call=item.per_call)


def _step_for(router: Router, item: queue.Claimed, worker: str) -> Step:
    """Escalate when an operator asked for tier 2, else classify with the run's own mode and threshold."""
    ticket = CallFor(item.ticket_id, item.run_id, worker)
    mode = item.mode if item.mode in MODES else None
    if item.wants_tier2 and router.tier2 is not None:
        return lambda prior, cb: router.escalate(item.text, prior, cb, threshold=item.threshold, ticket=ticket)
    return lambda prior, cb: router.classify(item.text, prior=prior, on_call=cb, mode=mode,
                                             threshold=item.threshold, ticket=ticket)


async def _run_all(coros: Sequence[Coroutine[Any, Any, None]], halt: Halt | None) -> None:
    """Run the coroutines to the end; on a halt give them `halt.grace` seconds, then cancel what is left."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    everything: asyncio.Future[list[None]] = asyncio.gather(*tasks)
    waiters: list[asyncio.Future[Any]] = []
    try:
        if halt is None:
            await asyncio.wait([everything, *waiters])
        else:
            waiters.append(asyncio.ensure_future(halt.wait()))
            await asyncio.wait([everything, *waiters], return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                waiters.append(asyncio.ensure_future(halt.forced()))
                await asyncio.wait([everything, waiters[1]], timeout=halt.grace,
                                   return_when=asyncio.FIRST_COMPLETED)
        if not everything.done():  # out of patience: cut the calls off (their reservations become lost)
            everything.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not everything.cancelled():  # it ended with the CancelledError: taken, so asyncio logs no traceback
                everything.exception()
            return
        exc = everything.exception()
        if exc is not None:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise exc
    finally:
        for w in waiters:
            w.cancel()
        if not everything.done():
            everything.cancel()


async def _heartbeat(db: Database, worker: str) -> None:
    """While a pass runs: renew the worker's claims, each renewal a short transaction of its own beside the calls
    (never inside one), so a call that outlives the lease (429s waited out) keeps its ticket. A beat that fails is
    logged; the next one may land before the lease runs out."""
    while True:
        await asyncio.sleep(queue.LEASE.total_seconds() / BEATS_PER_LEASE)
        try:
            await in_transaction(db, lambda s: queue.renew_claims(s, worker))
        except Exception as exc:
            log.warning("worker %s could not renew its claims: %s", worker, exc)


async def _wind_up(db: Database, worker: str, report: RunReport, halt: Halt | None, run_id: int | None) -> None:
    """After a pass: say why it stopped, release what the worker still holds and tell the tickets left waiting
    why, and mark any call still open as lost (it was sent; its answer will never be recorded)."""
    if halt is not None and halt.requested and halt.reason:
        report.stop(halt.reason, "signal", halt.signal)
    why = report.stopped

    def release(s: Session) -> None:
        queue.release_claims(s, worker, why)
        if why and run_id is not None:  # the run's tickets never claimed say why they wait, too
            queue.explain_pending(s, run_id, why)

    await write(db, release)
    report.cut_off += await write(db, lambda s: ledger.mark_lost(
        s, worker, f"{report.stopped or 'the run ended'} with the request in flight (probably billed, answer lost)"))


async def process_queue(db: Database, router: Router, *, run_id: int | None = None, concurrency: int = 8,
                        worker: str | None = None, on_ticket: OnTicket | None = None,
                        halt: Halt | None = None) -> RunReport:
    """Classify pending tickets (of one run, or all but those of local-tier runs) until none are left or the run
    stops. Durable: claims first."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    name = worker or worker_name()
    report = RunReport(run_id)
    inbox: asyncio.Queue[tuple[bool, list[queue.Claimed]] | None] = asyncio.Queue(maxsize=concurrency * 2)
    stop = asyncio.Event()

    def chunks(batch: list[queue.Claimed]) -> list[tuple[bool, list[queue.Claimed]]]:
        """The claimed tickets in queue order, cut where the group size changes (a run may ask for its own) and
        at the size: (grouped, tickets) for one consumer at a time."""
        out: list[tuple[bool, list[queue.Claimed]]] = []
        for item in batch:
            sizes = router.sizes(item.per_call)
            if out and out[-1][1][-1].per_call == item.per_call and len(out[-1][1]) < max(sizes):
                out[-1][1].append(item)
            else:
                out.append((max(sizes) > 1, [item]))
        return out

    def stopping() -> bool:
        return stop.is_set() or (halt is not None and halt.requested)

    async def producer() -> None:
        run_size = None if run_id is None else await read(db, lambda s: _run_per_call(s, run_id))
        size = max(router.sizes(run_size))  # tickets claimed per consumer
        while not stopping():
            batch = await in_transaction(db, lambda s: queue.claim_pending(s, name, concurrency * size, run_id,
                                                                             local=False))
            if not batch:
                break
            for chunk in chunks(batch):
                await inbox.put(chunk)
        for _ in range(concurrency):
            await inbox.put(None)

    async def consumer() -> None:
        while (chunk := await inbox.get()) is not None:
            if stopping():
                continue  # released, with the reason, when the pass winds up
            grouped, items = chunk
            if grouped:
                await _process_group(db, [_member(i, name, router) for i in items], router, report, stop, on_ticket)
                continue
            for item in items:
                await _process_one(db, item.run_id, item.ticket_id, _step_for(router, item, name), report, stop,
                                   on_ticket)

    beat = asyncio.ensure_future(_heartbeat(db, name))
    try:
        await _run_all([producer()] + [consumer() for _ in range(concurrency)], halt)
    finally:
        beat.cancel()
        await _wind_up(db, name, report, halt, run_id)
    if run_id is not None:
        report.states = await read(db, lambda s: runs.run_state_counts(s, run_id))
    return report


async def escalate_tickets(db: Database, router: Router, ticket_ids: Sequence[int], *, run_id: int | None = None,
                           concurrency: int = 8, on_ticket: OnTicket | None = None, halt: Halt | None = None,
                           worker: str | None = None) -> RunReport:
    """Ask tier 2 about these tickets, whatever tier 1 said."""
    name = worker or worker_name()
    report = RunReport(run_id)
    texts = await read(db, lambda s: {t.id: t.text for t in queue.tickets_by_id(s, list(ticket_ids)).values()})
    missing = [i for i in ticket_ids if i not in texts]
    if missing:
        raise NotFound(f"no ticket with id {', '.join(map(str, missing[:10]))}")
    sem = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()

    async def together(group: list[int]) -> None:
        async with sem:
            if stop.is_set() or (halt is not None and halt.requested):
                return
            members = [Member(t, texts[t], CallFor(t, run_id, name), run_id=run_id, threshold=router.threshold)
                       for t in group]
            await _process_group(db, members, router, report, stop, on_ticket, escalate=True)

    size = router.sizes()[1]
    if size > 1:
        try:
            await _run_all([together(list(ticket_ids[i:i + size])) for i in range(0, len(ticket_ids), size)], halt)
        finally:
            await _wind_up(db, name, report, halt, None)
        return report

    async def one(tid: int) -> None:
        async with sem:
            if stop.is_set() or (halt is not None and halt.requested):
                return
            ticket = CallFor(tid, run_id, name)
            await _process_one(db, run_id, tid, lambda prior, cb: router.escalate(texts[tid], prior, cb,
                                                                                   ticket=ticket),
                               report, stop, on_ticket)

    try:
        await _run_all([one(t) for t in ticket_ids], halt)
    finally:
        await _wind_up(db, name, report, halt, None)
    return report


async def drain(db: Database, router: Router, *, concurrency: int = 8, once: bool = False,
                poll_seconds: float = 2.0, stop: asyncio.Event | None = None,
                before_pass: Callable[[], Awaitable[None]] | None = None, halt: Halt | None = None) -> RunReport:
    """Process every pending ticket, whichever run queued it; poll for more unless `once`.

    `before_pass` may raise BudgetReached to stop before claiming anything."""
    total = RunReport(None)
    while True:
        if halt is not None and halt.requested and halt.reason:
            total.stop(halt.reason, "signal", halt.signal)
            return total
        if before_pass is not None:
            try:
                await before_pass()
            except BudgetReached as exc:
                total.stop(str(exc), "budget")
                return total
        report = await process_queue(db, router, concurrency=concurrency, halt=halt)
        total.add(report)
        if report.stopped or once or (stop is not None and stop.is_set()):
            return total
        wakers = [asyncio.ensure_future(e.wait()) for e in (stop, halt) if e is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wait(wakers, return_when=asyncio.FIRST_COMPLETED) if wakers
                                   else asyncio.sleep(poll_seconds), timeout=poll_seconds)
        for w in wakers:
            w.cancel()
