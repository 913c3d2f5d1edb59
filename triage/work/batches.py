"""Tier 1 through the Message Batches API: half price, results within 24 hours.

A batch run's life (the state is stored on the run, see db/batches.py):

  queued -> submitting -> in_progress -> collected         (or gone, when the API no longer knows the batch;
                                                             or failed, when it refused the submission)

* **Submit.** The run's pending tickets are held for the batch (for as long as it is open) and the run marked
  `submitting` (with the time, the submitting process and a fresh random key) *before* the request is sent.
  Entering `submitting` is a compare-and-set: of two processes checking the same queued run (two dashboards, a
  dashboard and `triage collect`) exactly one submits and reserves. Every custom id of the batch starts with the
  key. A crash after the API accepted the batch but before its id was stored is found again on a later check: a
  batch listed since then with this run's number of requests is adopted only once its results prove it is this
  submission's (their custom ids carry the key), never another deployment's on a shared API key, and nothing is
  sent again while such a batch may be this run's. A submission the API refused releases the tickets with a
  clear message.
* **Check / collect.** Transient API errors (connection, 429, 5xx, 529) are retried with backoff (retry-after
  honoured). Collecting an ended batch is a compare-and-set too (in_progress -> collecting): one process records,
  a chunk per transaction that first checks it still owns the collect and skips request ids (`batch id/custom
  id`) already on the books, so an interrupted collect can be re-run any number of times and records every
  result once. Answers are decided with the run's own mode and threshold (a `--tier haiku` run never goes to
  tier 2); unsure ones are queued for tier 2 in the same transaction. An answer is always recorded, but decides
  its ticket only while the batch still holds it: it never overwrites what happened to the ticket meanwhile (a
  Sonnet decision, an operator's label). Expired or canceled requests, and every ticket of a batch the API no
  longer knows (404), go back to the queue as pending, not failed; what was recorded stays. One batch failing
  never stops the others from being checked.
* **Who.** Every service here that may spend takes an `access.Actor` allowed to classify.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from db import batches as db_batches
from db import calls as db_calls
from db import queue, runs
from db.engine import Database
from triage.access import Action, Actor, require
from triage.domain import UNANSWERED
from triage.errors import ApiUnreachable, InputError, TriageError
from triage.providers.anthropic_batches import BatchApi, BatchRefused, BatchResult, BatchStatus, Gone, with_retries
from triage.providers.anthropic_provider import AnthropicProvider
from triage.routing import grouping
from triage.routing.router import Router, decide, should_escalate
from triage.work import pipeline
from triage.work.host import hostname, pid_alive, worker_name

T = TypeVar("T")
log = logging.getLogger(__name__)
CHUNK = 200  # results recorded per transaction
ADOPT_GRACE = timedelta(minutes=15)  # a submission older than this is abandoned (a create with every retry and
# its 60 s timeouts ends well within it), unless its process is known to be dead
COLLECT_GRACE = timedelta(minutes=10)  # a collect that recorded nothing for this long is abandoned


class _NotOwner(Exception):
    """Another process took the run's submission or collect over: this one stops without writing more."""


@dataclass
class BatchNews:
    """What one check found for one run's batch, in words for the operator."""

    run_id: int
    state: str  # queued | submitting | in_progress | collected | gone | failed | unreachable
    message: str
    batch_id: str | None = None
    answered: int = 0
    failed: int = 0
    escalating: int = 0
    requeued: int = 0

    @property
    def open(self) -> bool:
        """Still waiting on the API: check again later."""
        return self.state in db_batches.OPEN


def _prefix(key: str | None, run_id: int) -> str:
    """What every custom id of a submission starts with: its key (none before migration 0019) and its run."""
    return f"{key}-run-{run_id}-" if key else f"run-{run_id}-"


def custom_id(key: str | None, run_id: int, ticket_id: int) -> str:
    return f"{_prefix(key, run_id)}ticket-{ticket_id}"


def ticket_of(custom: str) -> int | None:
    m = re.search(r"ticket-(\d+)$", custom)
    return int(m.group(1)) if m else None


def group_custom_id(key: str | None, run_id: int, ticket_ids: Sequence[int]) -> str:
    """A request about several of the run's held tickets: the first and last ticket id and how many (the held
    tickets are grouped in id order, so these name them; a custom id holds at most 64 characters)."""
    return f"{_prefix(key, run_id)}group-{ticket_ids[0]}-{ticket_ids[-1]}-{len(ticket_ids)}"


def group_of(custom: str) -> tuple[int, int, int] | None:
    m = re.search(r"group-(\d+)-(\d+)-(\d+)$", custom)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _requests(router: Router, key: str | None, run_id: int, tickets: Sequence[tuple[int, str]],
              per_call: int) -> list[Any]:
    """The batch's requests: one per ticket, or (several tickets per call) one per group planned in id order,
    a group of one being the single-ticket request."""
    api = _api(router)
    out = []
    for group in grouping.plan(list(tickets), lambda t: t[1], per_call):
        texts = router.gate.prepared([x for _, x in group])  # the gate's prepare step, as every request
        ids = [t for t, _ in group]
        name = custom_id(key, run_id, ids[0]) if len(group) == 1 else group_custom_id(key, run_id, ids)
        out.append(api.request(name, texts, router.taxonomy))
    return out


def _per_call(s: Session, router: Router, run_id: int) -> int:
    run = runs.run_info(s, run_id)
    return (run.per_call if run is not None and run.per_call else None) or router.per_call


@dataclass
class _Search:
    """What the API lists that this run's submission may have created: the batch proven to be it (its results
    carry the submission's key), and the ones that may be it but cannot be told yet (not ended)."""

    proven: BatchStatus | None = None
    unproven: list[str] | None = None


async def _find_submitted(api: BatchApi, since: datetime, n: int, prefix: str, taken: set[str]) -> _Search:
    """The batch this submission sent at `since` (a crash or a lost answer kept its id from us): created no
    earlier than a minute before, with exactly `n` requests, no run's batch yet, and custom ids starting with
    `prefix` (its key and run). A batch that has not ended cannot show its custom ids: it is reported unproven,
    never adopted on its number of requests alone."""
    async def look() -> _Search:
        found = _Search(unproven=[])
        candidates = []
        async for b in api.recent():
            if b.created_at < since - timedelta(minutes=1):
                break  # newest first: the rest are older
            if b.total == n and b.id not in taken:
                candidates.append(b.id)
        for batch_id in candidates:
            b = await api.retrieve(batch_id)
            if not b.ended:
                assert found.unproven is not None
                found.unproven.append(b.id)
            elif (first := await api.first_custom_id(b.id)) is not None and first.startswith(prefix):
                found.proven = b
                return found
        return found
    return await with_retries("list recent batches", look)


# -- submit ------------------------------------------------------------------------------------------------------

def _db(db: Database, fn: Callable[[Session], T]) -> Awaitable[T]:
    return pipeline.in_transaction(db, fn)


def _tier1(router: Router) -> AnthropicProvider:
    """Tier 1, the Claude model a batch goes to (`services.build_router` always makes it one)."""
    if not isinstance(router.tier1, AnthropicProvider):
        raise InputError("an economy batch needs a Claude model as tier 1")
    return router.tier1


def _api(router: Router) -> BatchApi:
    """The Message Batches API through tier 1's client."""
    return BatchApi(_tier1(router))


def _owner() -> str:
    """This attempt's name on the run while it submits or collects: the process (`host:pid`) and a nonce."""
    return f"{worker_name()}#{secrets.token_hex(4)}"


def _new_key() -> str:
    return secrets.token_hex(6)


def _dead(owner: str | None) -> bool:
    """Whether the process named in `owner` is known to be gone (on this host: its pid is not alive)."""
    if not owner:
        return True
    host, _, rest = owner.partition("#")[0].rpartition(":")
    return host == hostname() and rest.isdigit() and not pid_alive(int(rest))


def _release_as(run_id: int, why: str, state: str, message: str | None = None,
                owner: str | None = None) -> Callable[[Session], int]:
    """A transaction: give the run's held tickets back (saying why), set its batch state; how many were held.
    With `owner`, only while that process still collects the batch (else _NotOwner, nothing written)."""
    def write(s: Session) -> int:
        if owner is not None and not db_batches.still_collecting(s, run_id, owner):
            raise _NotOwner()
        n = db_batches.release(s, run_id, why)
        db_batches.set_state(s, run_id, state, message=message)
        return n
    return write


async def submit(db: Database, router: Router, run_id: int, *, actor: Actor) -> str | None:
    """Hold the run's pending tickets and send them as one batch; returns the batch id (None when nothing was
    pending, or when the answer to the submission was lost and the batch found cannot be proven this run's yet:
    the run stays `submitting` and `check` adopts it once it can). Refused (errors.BudgetReached) when a
    spending cap is reached."""
    require(actor, Action.CLASSIFY)
    await _reserve(db, router, run_id, await pipeline.read(db, lambda s: queue.pending_texts(s, run_id)))
    owner, key = _owner(), _new_key()
    if not await _db(db, lambda s: db_batches.hold(s, run_id, "submitting", owner=owner, key=key)):
        return None
    return (await _send(db, router, run_id, owner, key)).batch_id


async def _send(db: Database, router: Router, run_id: int, owner: str, key: str, reserve: bool = False) -> BatchNews:
    """Send the run's held tickets as one batch, the run being `submitting` for `owner` under `key` (this process
    won the compare-and-set); no batch state when none are held any more.

    `reserve`: first reserve the batch's worst case (the economy route, whose tickets were held before any
    reservation). Refused (errors.BudgetReached) when a cap would be crossed: the run goes back to queued, its
    tickets held, and the next check tries again."""
    mine = db_batches.owned_by(owner)
    tickets = await pipeline.read(db, lambda s: db_batches.held(s, run_id))
    if not tickets:
        await _db(db, lambda s: db_batches.set_state(s, run_id, None, where=mine))
        return BatchNews(run_id, "none", "nothing left to submit")
    api = _api(router)
    if reserve:
        try:
            await _reserve(db, router, run_id, [t for _, t in tickets])
        except TriageError:
            await _db(db, lambda s: db_batches.set_state(s, run_id, "queued", where=mine))
            raise
    per_call = await pipeline.read(db, lambda s: _per_call(s, router, run_id))
    requests = _requests(router, key, run_id, tickets, per_call)
    since = datetime.now(UTC) - timedelta(seconds=5)  # the run entered submitting just before
    taken = await pipeline.read(db, db_batches.known_batch_ids)
    maybe: list[str] = []

    async def reached_the_api() -> BatchStatus | None:
        found = await _find_submitted(api, since, len(requests), _prefix(key, run_id), taken)
        if found.unproven:
            maybe.extend(found.unproven)
            raise _MaybeSent()
        return found.proven

    try:
        batch = await with_retries("submit the batch", lambda: api.create(requests), on_retry=reached_the_api)
        remembered = await _db(db, lambda s: db_batches.submitted(s, run_id, key, batch.id))
    except _MaybeSent:
        await _db(db, lambda s: db_batches.let_go(s, run_id, owner))
        return BatchNews(run_id, "submitting", f"the answer to the submission was lost; batch {', '.join(maybe)} may "
                         "be this run's and is adopted once its results prove it (nothing is sent twice)")
    except BatchRefused as exc:
        why = f"{exc}; its {len(tickets)} tickets are pending again"
        await _db(db, _release_as(run_id, why, "failed", why))
        raise BatchRefused(why) from None
    except BaseException:  # it may or may not have reached the API: the next check looks before sending again
        await _db(db, lambda s: db_batches.let_go(s, run_id, owner))
        raise
    if not remembered:
        log.error("run %s: batch %s was created after its submission was taken over by another process", run_id,
                  batch.id)
        return BatchNews(run_id, "submitting", f"batch {batch.id} was created after another process took this "
                         "submission over", batch.id)
    return BatchNews(run_id, "in_progress", f"submitted batch {batch.id}", batch.id)


async def _reserve(db: Database, router: Router, run_id: int, texts: Sequence[str]) -> int | None:
    """The gate's reserve step for the run's batch: the worst case of its requests about these texts, prepared
    as they are sent (errors.BudgetReached when a cap would be crossed: nothing is sent)."""
    provider = _tier1(router)
    return await router.gate.reserve_batch(run_id, provider, router.taxonomy, router.gate.prepared(texts))


class _MaybeSent(Exception):
    """A batch that may be this submission's is listed but cannot be proven yet: never send again meanwhile."""


# -- check and collect -------------------------------------------------------------------------------------------

async def check(db: Database, router: Router, run_id: int, *, actor: Actor) -> BatchNews:
    """One look at a run's batch: submit it if queued, find it if a submission was interrupted, record its
    results once it has ended, requeue its tickets if it is gone. Raises ApiUnreachable after retries."""
    require(actor, Action.CLASSIFY)
    return await _check(db, router, run_id)


async def _check(db: Database, router: Router, run_id: int) -> BatchNews:
    run = await pipeline.read(db, lambda s: db_batches.batch_run(s, run_id))
    if run is None or run.state is None:
        return BatchNews(run_id, "none", "not a batch run")
    if run.state == "queued":  # the economy route: held without a reservation so far
        owner, key = _owner(), _new_key()
        if not await _db(db, lambda s: db_batches.begin_submission(s, run_id, owner, key, seen=run,
                                                              abandoned=ADOPT_GRACE)):
            return BatchNews(run_id, "submitting", "another process is submitting this batch")
        return await _send(db, router, run_id, owner, key, reserve=True)
    if run.state == "submitting":
        return await _resume_submission(db, router, run)
    if run.state == "collecting" and not _abandoned(run, COLLECT_GRACE):
        return BatchNews(run_id, "collecting", f"another process is recording the results of batch {run.batch_id}",
                         run.batch_id)
    if run.state not in ("in_progress", "collecting") or not run.batch_id:
        return BatchNews(run_id, run.state, run.message or run.state, run.batch_id)
    batch_id = run.batch_id
    api = _api(router)
    owner = _owner()
    try:
        batch = await with_retries(f"check batch {batch_id}", lambda: api.retrieve(batch_id))
        if not batch.ended:
            await _db(db, lambda s: db_batches.set_state(s, run_id, "in_progress",  # last checked now
                                                    where=db_batches.in_state("in_progress")))
            return BatchNews(run_id, "in_progress", f"batch {batch_id} still running ({batch.processing} of "
                             f"{batch.total} requests processing; results within 24 h)", batch_id)
        grace = timedelta(0) if run.state == "collecting" and _dead(run.owner) else COLLECT_GRACE
        if not await _db(db, lambda s: db_batches.begin_collecting(s, run_id, owner, seen=run, abandoned=grace)):
            return BatchNews(run_id, "collecting", f"another process is recording the results of batch {batch_id}",
                             batch_id)
        try:
            return await _collect(db, router, run_id, batch_id, owner)
        except _NotOwner:
            return BatchNews(run_id, "collecting", f"another process took over recording batch {batch_id}",
                             batch_id)
        except BaseException:  # interrupted: the next check (any process) resumes at once
            await _db(db, lambda s: db_batches.set_state(s, run_id, "in_progress", where=(db_batches.owned_by(owner))))
            raise
    except Gone:
        why = f"batch {batch_id} is gone (the API no longer knows it): its unanswered tickets are pending again"
        n = await _db(db, _release_as(run_id, why, "gone", why))
        return BatchNews(run_id, "gone", f"{why} ({n} tickets; answers already recorded are kept)", batch_id,
                         requeued=n)


def _abandoned(run: db_batches.BatchRun, grace: timedelta) -> bool:
    since = run.since if run.since is None or run.since.tzinfo else run.since.replace(tzinfo=UTC)
    return _dead(run.owner) or since is None or datetime.now(UTC) - since >= grace


async def _resume_submission(db: Database, router: Router, run: db_batches.BatchRun) -> BatchNews:
    """A submission was interrupted before its batch id was stored: adopt the batch once the API shows it is
    this submission's, wait while one may be, else (once the submission is clearly abandoned) send it again."""
    if not _abandoned(run, ADOPT_GRACE):
        return BatchNews(run.run_id, "submitting", "a submission is under way; checking again shortly")
    held = await pipeline.read(db, lambda s: db_batches.held(s, run.run_id))
    per_call = await pipeline.read(db, lambda s: _per_call(s, router, run.run_id))
    n = len(_requests(router, run.key, run.run_id, held, per_call)) if held else 0  # as the submission counted
    since = run.since if run.since is None or run.since.tzinfo else run.since.replace(tzinfo=UTC)
    taken = await pipeline.read(db, db_batches.known_batch_ids)
    found = await _find_submitted(_api(router), since or datetime.now(UTC), n, _prefix(run.key, run.run_id),
                                  taken) if n else _Search()
    proven = found.proven
    if proven is not None:
        if await _db(db, lambda s: db_batches.submitted(s, run.run_id, run.key, proven.id)):
            return BatchNews(run.run_id, "in_progress", f"found batch {proven.id}, sent before an interruption: "
                             "not sent again", proven.id)
        return BatchNews(run.run_id, "submitting", "another process resumed this submission")
    if found.unproven:
        return BatchNews(run.run_id, "submitting", f"batch {', '.join(found.unproven)} may be this run's lost "
                         "submission: adopted once its results prove it, and nothing is sent again meanwhile")
    owner, key = _owner(), _new_key()
    if not await _db(db, lambda s: db_batches.begin_submission(s, run.run_id, owner, key, seen=run,
                                                          abandoned=timedelta(0) if _dead(run.owner)
                                                          else ADOPT_GRACE)):
        return BatchNews(run.run_id, "submitting", "another process resumed this submission")
    news = await _send(db, router, run.run_id, owner, key)
    if news.state == "in_progress":
        news.message = f"submitted batch {news.batch_id} (the earlier attempt never reached the API)"
    return news


async def _collect(db: Database, router: Router, run_id: int, batch_id: str, owner: str) -> BatchNews:
    """Record an ended batch's results, a chunk per transaction, each result once whatever happened before; with
    the run's own mode and threshold."""
    api = _api(router)
    news = BatchNews(run_id, "collected", "", batch_id)
    run = await pipeline.read(db, lambda s: runs.run_info(s, run_id))
    route = _Route(owner, run.mode if run is not None else router.mode,
                   run.threshold if run is not None and run.threshold is not None else router.threshold)

    async def download() -> BatchNews:
        chunk: list[BatchResult] = []
        async for item in api.results(batch_id):
            chunk.append(item)
            if len(chunk) >= CHUNK:
                await _record(db, router, run_id, batch_id, chunk, news, route)
                chunk = []
        if chunk:
            await _record(db, router, run_id, batch_id, chunk, news, route)
        return news

    await with_retries(f"download the results of batch {batch_id}", download)
    why = f"batch {batch_id} returned no answer for it: pending again"
    left = await _db(db, _release_as(run_id, why, "collected", owner=owner))
    news.requeued += left
    news.message = (f"batch {batch_id}: {news.answered} answered, {news.failed} failed, {news.escalating} going "
                    f"to tier 2" + (f", {news.requeued} expired or unanswered and pending again" if news.requeued
                                    else ""))
    return news


@dataclass(frozen=True)
class _Route:
    """Who records (the collect's owner) and how the run asked its answers to be routed."""

    owner: str
    mode: str
    threshold: float


async def _record(db: Database, router: Router, run_id: int, batch_id: str,
                  items: list[BatchResult], news: BatchNews, route: _Route) -> None:
    api = _api(router)
    started = time.perf_counter()
    to_tier2 = route.mode == "auto" and router.tier2 is not None

    def write(s: Session) -> None:
        if not db_batches.still_collecting(s, run_id, route.owner):  # the run's row lock: collectors never overlap
            raise _NotOwner()
        ids = {f"{batch_id}/{item.custom_id}": item for item in items}
        done = db_batches.recorded(s, list(ids))
        tickets = db_batches.existing_tickets(s, [t for i in items if (t := ticket_of(i.custom_id)) is not None])
        escalate, requeue, alone = [], [], []
        held_now: dict[int, str] | None = None
        for request_id, item in ids.items():
            group = group_of(item.custom_id)
            if group is not None:
                if request_id in done:
                    continue
                held_now = dict(db_batches.held(s, run_id)) if held_now is None else held_now
                first, last, n = group
                members = [(t, text) for t, text in held_now.items() if first <= t <= last]
                if len(members) != n or item.never_processed:
                    requeue += [t for t, _ in members]  # never guessed: back to the queue
                    continue
                calls = api.group_calls(item, request_id, [text for _, text in members], router.taxonomy, started)
                for call in calls:
                    router.calibrate(call)  # routed on the calibration in force, like a single answer
                db_calls.record_calls(s, [(t, run_id, c) for (t, _), c in zip(members, calls, strict=True)])
                for (t, _), call in zip(members, calls, strict=True):
                    if call.error_kind == UNANSWERED:
                        alone.append(t)  # no clean answer in the group: asked again alone, live
                        continue
                    db_calls.apply_outcome(s, t, decide([call], route.threshold))
                    if to_tier2 and should_escalate(call, route.threshold):
                        escalate.append(t)
                    news.answered += call.answered
                    news.failed += not call.answered
                continue
            ticket_id = ticket_of(item.custom_id)
            if request_id in done or ticket_id is None or ticket_id not in tickets:
                continue
            if item.never_processed:
                requeue.append(ticket_id)  # never billed: back to the queue
                continue
            call = api.call(item, request_id, router.taxonomy, started)
            if item.kind == "succeeded":
                router.calibrate(call)
            held = db_batches.is_held(s, run_id, ticket_id)
            db_calls.record_call(s, ticket_id, run_id, call)  # billed: on the books whatever the ticket became
            if not held:
                continue  # decided meanwhile (tier 2, an operator): the batch's answer never overwrites that
            db_calls.apply_outcome(s, ticket_id, decide([call], route.threshold))
            if to_tier2 and should_escalate(call, route.threshold):
                escalate.append(ticket_id)
            news.answered += call.answered
            news.failed += not call.answered
        if escalate:
            queue.request_escalation(s, escalate)
        if requeue:
            news.requeued += db_batches.release(s, run_id, f"batch {batch_id}: request expired, pending again", requeue)
        if alone:
            news.requeued += db_batches.release(s, run_id, f"batch {batch_id}: no clean answer among the tickets "
                                                f"of its request; asked again alone", alone)
        news.escalating += len(escalate)

    await pipeline.in_transaction(db, write)


async def check_open(db: Database, router: Router, run_ids: Sequence[int] | None = None, *,
                     actor: Actor) -> list[BatchNews]:
    """Check every open batch run (or these): one that fails is reported and never stops the others."""
    require(actor, Action.CLASSIFY)
    if run_ids is None:
        run_ids = [r.run_id for r in await pipeline.read(db, db_batches.open_runs)]
    out = []
    for run_id in run_ids:
        try:
            out.append(await _check(db, router, run_id))
        except ApiUnreachable as exc:
            out.append(BatchNews(run_id, "unreachable", str(exc)))
        except TriageError as exc:
            out.append(BatchNews(run_id, "failed", str(exc)))
    return out


def open_batch_runs(db: Database) -> list[db_batches.BatchRun]:
    with db.read() as s:
        return db_batches.open_runs(s)


def held_by_batches(db: Database, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Those of these tickets an open Message Batch holds (their answer is on its way: working them live would
    bill them twice), each with the batch in words."""
    with db.read() as s:
        return {t: f"the Message Batch of run {r.run_id}" + (f" ({r.batch_id})" if r.batch_id else "")
                for t, r in db_batches.holding_batch(s, list(ticket_ids)).items()}


def status_line(db: Database, run_id: int) -> str | None:
    """The batch's state in one line for the Classify page (None for a live run)."""
    with db.read() as s:
        run = db_batches.batch_run(s, run_id)
        waiting = len(db_batches.held(s, run_id)) if run and run.state in db_batches.OPEN else 0
    if run is None or run.state is None:
        return None
    since = run.since.strftime("%H:%M UTC") if run.since else ""
    return {
        "queued": f"Economy batch: {waiting} tickets waiting to be sent (the background worker submits them).",
        "submitting": f"Economy batch: {waiting} tickets being submitted (since {since}).",
        "in_progress": f"Economy batch {run.batch_id}: {waiting} tickets at the API, last checked {since}; results "
                       "within 24 h (half price). Checked every minute.",
        "collecting": f"Economy batch {run.batch_id}: recording its results (since {since}).",
        "collected": f"Economy batch {run.batch_id}: results recorded ({since}).",
    }.get(run.state, f"Economy batch {run.batch_id or ''}: {run.message or run.state}")
