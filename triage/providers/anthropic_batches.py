"""The Message Batches API on the wire: the one place that calls `client.messages.batches`.

triage/work/batches.py decides what a batch run does (hold, submit, adopt, collect, record); this module only
speaks to the API for it and answers in the project's own words: a batch's status (`BatchStatus`), its results
(`BatchResult`, read into `CallResult`s by the provider that built the requests), and three failures — the API
no longer knows the batch (`Gone`), it refused the request (`BatchRefused`: a 4xx other than 429), or it could not
be reached after the retries (`errors.ApiUnreachable`). Transient errors (connection, timeouts, 408/409/429/5xx/
529, a results line cut off mid-download) are retried with backoff, `retry-after` honoured up to two minutes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import anthropic
import httpx2
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch, MessageBatchRequestCounts
from anthropic.types.messages.batch_create_params import Request

from triage.domain import ERROR, TRANSIENT, CallResult
from triage.errors import ApiUnreachable, InputError
from triage.providers.anthropic_provider import AnthropicProvider
from triage.providers.ratelimit import retry_after
from triage.taxonomy import Taxonomy

T = TypeVar("T")
RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}
ATTEMPTS = 5
BASE_DELAY = 1.0  # seconds; doubled each attempt, capped at 16


class BatchRefused(InputError):
    """The API refused the batch (a 4xx other than 429): nothing was sent; the tickets are pending again."""


class Gone(Exception):
    """404: the API no longer knows the batch."""


@dataclass(frozen=True)
class BatchStatus:
    id: str
    ended: bool  # processing_status "ended": its results can be downloaded
    total: int  # requests in it
    processing: int  # of which not processed yet
    created_at: datetime  # UTC


@dataclass(frozen=True)
class BatchResult:
    """One request's result: `kind` is succeeded | errored | expired | canceled."""

    custom_id: str
    kind: str
    message: Any = None  # the model's message when it succeeded
    error: str | None = None  # the API's words when it errored

    @property
    def never_processed(self) -> bool:
        """Expired or canceled: never processed and never billed."""
        return self.kind in ("expired", "canceled")


def _total(counts: MessageBatchRequestCounts) -> int:
    return int(counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired)


def _status(b: MessageBatch) -> BatchStatus:
    created = b.created_at if b.created_at.tzinfo else b.created_at.replace(tzinfo=UTC)
    return BatchStatus(b.id, b.processing_status == "ended", _total(b.request_counts),
                       int(b.request_counts.processing), created)


def _result(item: Any) -> BatchResult:
    result = item.result
    error = getattr(getattr(result, "error", None), "error", None)
    return BatchResult(item.custom_id, result.type, getattr(result, "message", None),
                       getattr(error, "message", None))


async def with_retries(what: str, call: Callable[[], Awaitable[T]], *,
                       on_retry: Callable[[], Awaitable[T | None]] | None = None) -> T:
    """`call`, retried on transient errors; 404 raises Gone, other 4xx BatchRefused, exhaustion ApiUnreachable.
    `on_retry` runs before each retry and may return the result instead (a create that did reach the API)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await call()
        except anthropic.NotFoundError as exc:
            raise Gone(str(exc)) from exc
        except anthropic.APIStatusError as exc:
            if exc.status_code not in RETRYABLE:
                raise BatchRefused(f"the API refused to {what} ({exc.status_code}): "
                                   f"{getattr(exc, 'api_message', None) or exc}") from exc
            error: Exception = exc
            advised = retry_after(exc.response.headers)
            wait = advised if advised is not None and advised <= 120 else None
        except (anthropic.APIConnectionError, anthropic.APITimeoutError, httpx2.TransportError, OSError,
                ValueError) as exc:  # ValueError: a results line cut off mid-download
            error, wait = exc, None
        if attempt == ATTEMPTS:
            break
        await asyncio.sleep(wait if wait is not None else min(BASE_DELAY * 2 ** (attempt - 1), 16.0)
                            * random.uniform(0.75, 1.0))
        if on_retry is not None and (found := await on_retry()) is not None:
            return found
    status = getattr(error, "status_code", None)
    raise ApiUnreachable(f"could not {what} after {ATTEMPTS} attempts ({f'API error {status}' if status else error}"
                         "); nothing was lost: run `triage collect` again later")


class BatchApi:
    """The Message Batches endpoints through a Claude provider's client, and the reading of their results by
    that provider (the same parsing as a live answer)."""

    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider
        self._batches = provider.client.messages.batches

    # -- requests ----------------------------------------------------------------------------------------------

    def request(self, custom_id: str, texts: Sequence[str], taxonomy: Taxonomy) -> Request:
        """One batch request about these prepared texts: the single-ticket body for one, the grouped for several."""
        p = self.provider
        body = p.request_body(texts[0], taxonomy) if len(texts) == 1 else p.group_request_body(texts, taxonomy)
        return Request(custom_id=custom_id, params=cast(MessageCreateParamsNonStreaming, body))

    async def create(self, requests: list[Request]) -> BatchStatus:
        return _status(await self._batches.create(requests=requests))

    async def retrieve(self, batch_id: str) -> BatchStatus:
        return _status(await self._batches.retrieve(batch_id))

    async def recent(self) -> AsyncIterator[BatchStatus]:
        """The account's batches, newest first."""
        async for b in self._batches.list(limit=100):
            yield _status(b)

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        stream = await self._batches.results(batch_id)
        try:
            async for item in stream:
                yield _result(item)
        finally:
            await stream.close()

    async def first_custom_id(self, batch_id: str) -> str | None:
        """The custom id of an ended batch's first result (every result of a batch carries its submission's key)."""
        async for r in self.results(batch_id):
            return r.custom_id
        return None

    # -- results into calls ------------------------------------------------------------------------------------

    def _failed(self, r: BatchResult, request_id: str, **extra: Any) -> CallResult:
        p = self.provider
        return CallResult(p.tier, p.model, ERROR, error_kind=TRANSIENT, request_id=request_id,
                          error=f"batch request {r.kind}" + (f": {r.error}" if r.error else ""), **extra)

    def call(self, r: BatchResult, request_id: str, taxonomy: Taxonomy, started: float) -> CallResult:
        """A one-ticket request's result as a call (batch calls have no per-request latency: 0)."""
        if r.kind != "succeeded":
            return self._failed(r, request_id)
        call = self.provider._answer_result(r.message, request_id, taxonomy, 1, started)
        call.latency_ms = 0  # the latency charts leave batch calls out
        return call

    def group_calls(self, r: BatchResult, request_id: str, texts: list[str], taxonomy: Taxonomy,
                    started: float) -> list[CallResult]:
        """One call per ticket of a multi-ticket request: its share of the answer and of the cost, or the
        request's error on each."""
        if r.kind != "succeeded":
            return [self._failed(r, request_id, group_size=len(texts), group_position=k)
                    for k in range(1, len(texts) + 1)]
        calls = self.provider.read_group(r.message, request_id, texts, taxonomy, started=started).tickets
        for c in calls:
            c.latency_ms = 0
        return list(calls)
