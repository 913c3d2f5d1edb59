"""Claude over the official SDK: structured output, exact usage, our own retry loop honouring retry-after."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anthropic
import httpx
from anthropic.types import Message, TextBlock

from triage.domain import (
    AUTH,
    BAD_REQUEST,
    ERROR,
    OK,
    REFUSAL,
    TRANSIENT,
    TRUNCATED,
    UNANSWERED,
    UNKNOWN,
    UNKNOWN_LABEL,
    UNPARSED,
    CallResult,
    Usage,
    from_pico,
    to_pico,
)
from triage.errors import UnknownModel
from triage.providers import ratelimit
from triage.routing import grouping, prompts
from triage.routing.fewshot import Shots, ShotSource
from triage.routing.parsing import parse_answer
from triage.routing.prompts import Prefix
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy

if TYPE_CHECKING:
    from triage.routing.gate import Reservation

log = logging.getLogger(__name__)
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
Client = anthropic.AsyncAnthropic


def new_client(api_key: str | None, base_url: str | None, timeout: float) -> Client:
    """The SDK client the Claude tiers of a router share. Its own retries are off: the provider retries, and
    puts every attempt on the books."""
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)


class AnthropicProvider:
    """One tier backed by one Claude model. The SDK's own retries are off: this class retries."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        model: str,
        tier: int,
        prices: PriceTable,
        *,
        max_tokens: int = 300,
        effort: str | None = "low",
        thinking: dict[str, Any] | None = None,
        max_attempts: int = 5,
        max_retry_wait: float = 60.0,
        base_delay: float = 0.5,
        pacer: ratelimit.Pacer | None = None,
        max_rate_limit_wait: float = 900.0,
        fewshot: ShotSource | None = None,
    ) -> None:
        self.client = client
        self.model = model
        self.tier = tier
        self.prices = prices
        self.max_tokens = max_tokens
        self.effort = effort
        self.thinking = thinking
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.base_delay = base_delay
        # shared by every provider of this process for the same endpoint, key and model
        self.pacer = pacer or ratelimit.pacer_for(str(getattr(client, "base_url", "")),
                                                  getattr(client, "api_key", None), model)
        self.max_rate_limit_wait = max_rate_limit_wait  # seconds one call may wait out 429s before it fails
        self.fewshot = fewshot  # labelled examples, prepared by the gate's step at load (triage.local.retrieval)

    def prefix(self, taxonomy: Taxonomy, shots: Shots | None = None) -> Prefix:
        """What precedes the ticket block(s): the static, cacheable part first, then the retrieved examples
        (triage.routing.prompts.request_prefix). No shots: exactly the system prompt of a request without examples."""
        return prompts.request_prefix(prompts.system_prompt(taxonomy), shots, self.model)

    def request_body(self, text: str, taxonomy: Taxonomy, shots: Shots | None = None) -> dict[str, Any]:
        """The Messages request for one ticket (`text` as the gate prepared it, triage.routing.gate); with
        `shots`, its labelled examples (see `prefix`)."""
        prefix = self.prefix(taxonomy, shots)
        content = prefix.user_content(prompts.user_message(text))
        output_config: dict[str, Any] = {"format": {"type": "json_schema",
                                                    "schema": prompts.output_schema(taxonomy)}}
        if self.effort:
            output_config["effort"] = self.effort
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": prefix.system,
            "messages": [{"role": "user", "content": content}],
            "output_config": output_config,
        }
        if self.thinking:
            body["thinking"] = self.thinking
        return body

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most this ticket's request can cost: its input estimated high from the whole body (with few-shot,
        the longest examples the bank could retrieve), all of `max_tokens` as output, at this model's price today
        (raises errors.UnknownModel when it has none). Batches are sent without examples."""
        today = _now()
        shots = self.fewshot.worst_case() if self.fewshot is not None and not batch else None
        body = self.request_body(text, taxonomy, shots)
        tokens = prompts.estimate_request_tokens(body) + (len(shots.retrieved) if shots else 0)
        return self.prices.worst_case(self.model, tokens, self.max_tokens, today, batch=batch,
                                      cache_write=prompts.cache_write(body))

    async def shots_for(self, text: str) -> Shots | None:
        """This ticket's examples, or None without few-shot. A failed look-up (the database busy past its
        timeout, say) sends the fixed examples only, logged, rather than failing the ticket."""
        if self.fewshot is None:
            return None
        try:
            return await asyncio.to_thread(self.fewshot.shots_for, text)
        except Exception as exc:  # any failure: classify without the retrieved examples
            log.warning("few-shot retrieval failed, sending the fixed examples only: %s", exc)
            return self.fewshot.fixed()

    async def classify(self, text: str, taxonomy: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        """One request about `text` (prepared by the gate, which passes its reservation as `paid`)."""
        shots = await self.shots_for(text)
        result = await self.send(self.request_body(text, taxonomy, shots), taxonomy, paid)
        result.examples = shots.count if shots and shots.count else None
        return result

    async def send(self, body: dict[str, Any], taxonomy: Taxonomy, paid: Reservation | None = None) -> CallResult:
        """Send one request with our retry loop; every outcome is a CallResult (errors included)."""
        started = time.perf_counter()
        sent = await self._send(body, started, paid)
        if isinstance(sent, CallResult):
            return sent
        message, request_id, attempt = sent
        return self._answer_result(message, request_id, taxonomy, attempt, started)

    def _cost(self, body: dict[str, Any]) -> dict[str, float]:
        """What one request takes from the API's rate-limit buckets: its input tokens (a high estimate) and its
        `max_tokens` (the API counts output tokens from `max_tokens` when the request starts)."""
        tokens = float(prompts.estimate_tokens(_text_of(body["system"]) + _text_of(body["messages"][-1]["content"])
                                               + str(body.get("output_config", ""))))
        out = float(body["max_tokens"])
        return {"input-tokens": tokens, "output-tokens": out, "tokens": tokens + out}

    def _backoff(self, attempt: int) -> float:
        return min(self.base_delay * 2.0 ** (attempt - 1), 8.0) * random.uniform(0.75, 1.0)

    def _retry_wait(self, status: int, headers: Mapping[str, str], attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if status not in RETRYABLE_STATUS or attempt >= self.max_attempts:
            return None
        if headers.get("x-should-retry") == "false":
            return None
        advised = ratelimit.retry_after(headers)
        if advised is not None:
            return advised if advised <= self.max_retry_wait else None
        return self._backoff(attempt)

    def _error_result(self, exc: anthropic.APIStatusError, attempt: int, started: float) -> CallResult:
        status = exc.status_code
        api_message = getattr(exc, "api_message", None) or str(exc)
        if status in (401, 403):
            kind, error = AUTH, f"the API key was rejected ({status}): {api_message}"
        elif status in RETRYABLE_STATUS:
            advised = ratelimit.retry_after(exc.response.headers)
            hint = f"; the API asked to wait {advised:.0f} s" if advised else ""
            kind, error = TRANSIENT, f"API error {status} after {attempt} attempts{hint}: {api_message}"
        else:
            kind, error = BAD_REQUEST, f"API rejected the request ({status}): {api_message}"
        return CallResult(
            self.tier, self.model, ERROR, error=error, error_kind=kind, attempts=attempt,
            request_id=exc.request_id, latency_ms=_ms(started),
        )

    def _answer_result(self, message: Message, request_id: str | None, taxonomy: Taxonomy, attempt: int,
                       started: float) -> CallResult:
        latency_ms = _ms(started)
        usage = usage_from_message(message)
        cost, cost_note, estimate = Decimal(0), None, None
        try:
            cost = self.prices.cost(message.model or self.model, usage, _now())
        except UnknownModel as exc:  # billed all the same: recorded with its cost unknown, never dropped
            cost_note = f"the API answered as model {message.model!r}: {exc}"
            estimate = self.prices.dearest_cost(usage, _now())  # on the books at this, never at $0
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
        result = CallResult(
            self.tier, self.model, OK, model_returned=message.model, usage=usage, cost_usd=cost,
            cost_known=cost_note is None, cost_note=cost_note, estimated_usd=estimate, latency_ms=latency_ms,
            request_id=request_id, stop_reason=message.stop_reason, attempts=attempt,
        )
        if message.stop_reason == "refusal":
            details = getattr(message, "stop_details", None)
            category = getattr(details, "category", None) if details else None
            result.outcome, result.problem = REFUSAL, f"the model refused ({category or 'no category given'})"
            return result
        parsed = parse_answer(text, taxonomy)
        result.category, result.confidence, result.reason = parsed.category, parsed.confidence, parsed.reason
        result.problem = parsed.problem
        result.priority, result.priority_confidence = parsed.priority, parsed.priority_confidence
        if parsed.category is None:
            result.outcome = TRUNCATED if message.stop_reason == "max_tokens" else UNPARSED
            if message.stop_reason == "max_tokens":
                result.problem = f"answer cut off at max_tokens={self.max_tokens}"
        elif parsed.category == UNKNOWN:
            result.outcome = UNKNOWN_LABEL
        elif parsed.confidence is None:
            result.outcome = UNPARSED
        return result


    # -- several tickets per request (triage.routing.grouping) -------------------------------------------------------
    def group_request_body(self, texts: Sequence[str], taxonomy: Taxonomy) -> dict[str, Any]:
        """The single-ticket request with the same static system prompt (the cacheable prefix), its user turn
        holding each ticket in a block named by its position, an answers array as the output format and
        `max_tokens` the single budget times the number of tickets."""
        body: dict[str, Any] = self.request_body(texts[0], taxonomy)
        last = body["messages"][-1]
        content = grouping.user_message(list(texts))
        if isinstance(last["content"], list):  # content blocks: the ticket is the last text block
            blocks = list(last["content"])
            blocks[-1] = {**blocks[-1], "text": content}
            last["content"] = blocks
        else:
            last["content"] = content
        body["max_tokens"] = self.max_tokens * len(texts)
        body["output_config"] = {**body["output_config"],
                                 "format": {"type": "json_schema", "schema": grouping.output_schema(taxonomy)}}
        return body

    def group_worst_case_cost(self, texts: Sequence[str], taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        """The most one request about these tickets can cost (its input estimated high, all its output budget)."""
        body = self.group_request_body(texts, taxonomy)
        return self.prices.worst_case(self.model, prompts.estimate_request_tokens(body), body["max_tokens"], _now(),
                                      batch=batch, cache_write=prompts.cache_write(body))

    async def classify_group(self, texts: Sequence[str], taxonomy: Taxonomy, *,
                             paid: Reservation | None = None) -> grouping.GroupCall:
        """One request about several tickets (prepared by the gate, which passes their reservations as `paid`),
        read per ticket (never by position): see grouping.GroupCall."""
        n = len(texts)
        body = self.group_request_body(texts, taxonomy)
        started = time.perf_counter()
        sent = await self._send(body, started, paid)
        if isinstance(sent, CallResult):  # no answer: every ticket of the request ends with the same error
            sent.group_size = n
            return grouping.GroupCall(sent, [replace(sent, group_position=k) for k in range(1, n + 1)])
        message, request_id, attempt = sent
        return self.read_group(message, request_id, texts, taxonomy, attempt=attempt, started=started,
                               max_tokens=body["max_tokens"])

    def read_group(self, message: Any, request_id: str | None, texts: Sequence[str], taxonomy: Taxonomy, *,
                   attempt: int = 1, started: float | None = None, max_tokens: int | None = None
                   ) -> grouping.GroupCall:
        """A multi-ticket answer (live, or a Message Batches result) read per ticket, priced once, its cost
        and tokens split exactly between the tickets."""
        n = len(texts)
        started = time.perf_counter() if started is None else started
        max_tokens = self.max_tokens * n if max_tokens is None else max_tokens
        usage = usage_from_message(message)
        model = message.model or self.model
        cost, output_part, cost_note, estimate = Decimal(0), Decimal(0), None, None
        try:
            cost = self.prices.cost(model, usage, _now())
            output_part = cost - self.prices.cost(model, replace(usage, output_tokens=0), _now())
        except UnknownModel as exc:  # billed all the same: recorded with its cost unknown, never dropped
            cost_note = f"the API answered as model {message.model!r}: {exc}"
            estimate = self.prices.dearest_cost(usage, _now())  # on the books at this, never at $0
        whole = CallResult(self.tier, self.model, OK, model_returned=message.model, usage=usage, cost_usd=cost,
                           cost_known=cost_note is None, cost_note=cost_note, estimated_usd=estimate,
                           latency_ms=_ms(started), request_id=request_id, stop_reason=message.stop_reason,
                           attempts=attempt, group_size=n)
        text = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        read = grouping.read(text, taxonomy, n)
        if message.stop_reason == "refusal":
            details = getattr(message, "stop_details", None)
            category = getattr(details, "category", None) if details else None
            whole.outcome, whole.problem = REFUSAL, f"the model refused ({category or 'no category given'})"
        elif message.stop_reason == "max_tokens":
            whole.outcome, whole.problem = TRUNCATED, f"answer cut off at max_tokens={max_tokens}"
        elif read.unreadable:
            whole.outcome, whole.problem = UNPARSED, read.unreadable
        retry_group = whole.outcome != OK
        answers = {} if retry_group else read.answers
        weights_in = grouping.input_weights(texts)
        weights_out = [read.output_chars.get(k, 0) if k in answers else 0 for k in range(1, n + 1)]
        shares = grouping.apportion(to_pico(cost), weights_in, weights_out, to_pico(output_part))
        estimates = None if estimate is None else grouping.apportion(to_pico(estimate), weights_in, [0] * n, 0)
        usages = grouping.split_usage(usage, weights_in, weights_out)
        tickets = []
        for k in range(1, n + 1):
            one = replace(whole, usage=usages[k - 1], cost_usd=from_pico(shares[k - 1]), group_position=k,
                          problem=None, estimated_usd=None if estimates is None else from_pico(estimates[k - 1]))
            parsed = answers.get(k)
            if parsed is None:
                why = whole.problem if retry_group else read.problems.get(k, "no clean answer")
                one.outcome, one.error_kind = ERROR, UNANSWERED
                one.error = f"asked together with {n - 1} other tickets: {why}; asked again"
            else:
                one.category, one.confidence, one.reason = parsed.category, parsed.confidence, parsed.reason
                one.priority, one.priority_confidence = parsed.priority, parsed.priority_confidence
                one.problem = parsed.problem
                one.outcome = UNKNOWN_LABEL if parsed.category == UNKNOWN else OK
            tickets.append(one)
        return grouping.GroupCall(whole, tickets, retry_group=retry_group, stray=read.stray)

    async def _send(self, body: dict[str, Any], started: float, paid: Reservation | None
                    ) -> tuple[Any, str | None, int] | CallResult:
        """Send one request with this provider's retries and pacing: (message, request id, attempts), or the
        error CallResult when no answer came (a 429 the API said when to retry after is waited out, never a
        failed attempt). An attempt that may have been billed without an answer is booked on `paid` (the
        request's reservation, from the gate) before the next one goes, or as lost when it was the last."""
        cost = self._cost(body)
        attempt = limited = 0
        rate_limit_wait = 0.0
        while True:
            attempt += 1
            slot = await self.pacer.acquire(cost)
            try:
                raw = await self.client.messages.with_raw_response.create(**body)
                message = await raw.parse()
            except anthropic.APIStatusError as exc:
                advised = self.pacer.observe(slot, exc.response.headers, exc.status_code)
                if (exc.status_code == 429 and self.pacer.enabled and advised is not None
                        and rate_limit_wait + advised <= self.max_rate_limit_wait):
                    limited += 1
                    rate_limit_wait += advised
                    await asyncio.sleep(advised)
                    continue
                wait = self._retry_wait(exc.status_code, exc.response.headers, attempt - limited)
                if wait is not None:
                    await asyncio.sleep(wait)
                    continue
                return self._error_result(exc, attempt, started)
            except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
                self.pacer.release(slot)
                kind = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "could not connect"
                billed = paid if maybe_billed(exc) else None
                note = (f"attempt {attempt} {kind} after the request was sent ({exc}): probably billed, answer "
                        "lost")
                if attempt - limited < self.max_attempts:
                    await asyncio.sleep(self._backoff(attempt - limited))
                    if billed is not None:  # that attempt stays on the books; the next one fits the caps or waits
                        await billed.again(note)
                    continue
                if billed is not None:
                    await billed.lost(note)
                return CallResult(
                    self.tier, self.model, ERROR, error=f"API {kind} after {attempt} attempts: {exc}",
                    error_kind=TRANSIENT, attempts=attempt, latency_ms=_ms(started),
                )
            self.pacer.observe(slot, raw.headers)
            return message, raw.request_id, attempt


def maybe_billed(exc: anthropic.APITimeoutError | anthropic.APIConnectionError) -> bool:
    """Whether the API may have answered (and billed) a request that raised `exc`: yes unless the request
    surely never left (no connection was made, no pooled connection was free). A read timeout or a connection
    closed while waiting for the answer is billed like any answer."""
    return not isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def usage_from_message(message: Message) -> Usage:
    u = message.usage
    write_total = u.cache_creation_input_tokens or 0
    cc = getattr(u, "cache_creation", None)
    w5 = (cc.ephemeral_5m_input_tokens or 0) if cc else write_total
    w1h = (cc.ephemeral_1h_input_tokens or 0) if cc else 0
    return Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1h,
        cache_read_tokens=u.cache_read_input_tokens or 0,
        service_tier=u.service_tier,
        inference_geo=getattr(u, "inference_geo", None),
    )


def _text_of(content: str | list[dict[str, Any]]) -> str:
    """A system prompt or message content as one string: a plain string, or its text blocks joined."""
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _now() -> datetime:
    return datetime.now(UTC)
