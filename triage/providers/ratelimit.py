"""Pacing requests to the API's rate limits, learnt from its response headers.

The Messages API refills each limit continuously, like a token bucket (requests, input tokens, output tokens
and their sum per minute, per model), and says where a caller stands on every response:
`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`, plus `retry-after`
on a 429. A `Pacer` keeps a local copy of each bucket: before a request it reserves the request's cost (one
request, its estimated input tokens, its `max_tokens`) and waits until every bucket can pay; each response
re-synchronises the copy with what the API reported for that request. Requests then leave at the rate the API
refills instead of in bursts that earn 429s. Several processes sharing a key stay in step too, because
`remaining` counts everyone's requests.

One pacer per API endpoint, key and model, shared by every provider of the process (`pacer_for`). Thread-safe
and not bound to an event loop: the dashboard's worker runs a fresh loop on each pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

DIMENSIONS = ("requests", "tokens", "input-tokens", "output-tokens")
MARGIN = 1.0  # units kept spare in each bucket, so that rounding and jitter do not earn a 429
PROBE_TIMEOUT = 10.0  # seconds the first request may take before others go without waiting for its headers


@dataclass
class _Bucket:
    rate: float  # units per second
    capacity: float
    level: float
    at: float  # monotonic time of `level`
    shift: float = 0.0  # every correction so far, so that a reservation's projection can be brought up to date

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now


@dataclass
class Reservation:
    """What one request took from the buckets, and the buckets' levels right after (to compare with what the
    API reports for the same request)."""

    cost: dict[str, float]
    levels: dict[str, float] = field(default_factory=dict)
    shifts: dict[str, float] = field(default_factory=dict)


class Pacer:
    """A local copy of the API's buckets for one endpoint, key and model."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._buckets: dict[str, _Bucket] = {}
        self._paused_until = 0.0
        self._outstanding = 0
        self._known = False  # heard from the API at least once
        self._probe_since: float | None = None  # the first request is in flight: the others wait for its headers
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds requests spent waiting here, for benchmarks and tests
        self.rate_limited = 0  # 429s seen

    async def acquire(self, cost: Mapping[str, float] | None = None) -> Reservation:
        """Reserve one request's cost and wait until the buckets can pay for it."""
        res = Reservation({"requests": 1.0, **(cost or {})})
        if not self.enabled:
            return res
        await self._probe_first()
        with self._lock:
            now = time.monotonic()
            wait = max(0.0, self._paused_until - now)
            for bucket in self._buckets.values():
                bucket.refill(now)
            for dim, bucket in self._buckets.items():
                bucket.level -= res.cost.get(dim, 0.0)
                if bucket.level < MARGIN:
                    wait = max(wait, (MARGIN - bucket.level) / bucket.rate)
            for dim, bucket in self._buckets.items():
                # the level when this request leaves, counting only the reservations made before it (those
                # made after it wait longer and leave later): what the API should report for it
                res.levels[dim] = min(bucket.capacity, bucket.level + wait * bucket.rate)
                res.shifts[dim] = bucket.shift
            self._outstanding += 1
        if wait > 0:
            self.waited += wait
            await asyncio.sleep(wait)
        return res

    async def _probe_first(self) -> None:
        """Until the API has told us its limits, one request goes alone (slow start, not a burst of 429s)."""
        while True:
            with self._lock:
                now = time.monotonic()
                if self._known:
                    return
                if self._probe_since is None or now - self._probe_since > PROBE_TIMEOUT:
                    self._probe_since = now
                    return
            await asyncio.sleep(0.01)

    def observe(self, res: Reservation, headers: Mapping[str, str], status: int = 200) -> float | None:
        """Learn from a response's headers; returns the wait the API asked for on a 429 (None when it gave none)."""
        advised = retry_after(headers) if status == 429 else None
        if not self.enabled:
            return advised
        with self._lock:
            self._outstanding = max(0, self._outstanding - 1)
            self._known = True
            now = time.monotonic()
            synced = False  # the headers explain where we stand: the buckets' own waits suffice
            for dim in DIMENSIONS:
                limit, remaining = _number(headers, f"{dim}-limit"), _number(headers, f"{dim}-remaining")
                if not limit or remaining is None:
                    continue
                if status == 429 and dim == "requests":
                    remaining = 0.0
                rate = limit / 60.0
                bucket = self._buckets.get(dim)
                if bucket is None:  # the first word from the API
                    self._buckets[dim] = _Bucket(rate, limit, remaining, now)
                    synced = True
                    continue
                bucket.refill(now)
                bucket.rate, bucket.capacity = rate, limit  # a minute's worth; a smaller real bucket shows in remaining
                if dim in res.levels:  # re-synchronise: the API's count for this request against ours (the
                    # projection brought up to date with corrections made since, so none is counted twice)
                    expected = res.levels[dim] + bucket.shift - res.shifts[dim]
                    error = expected - (remaining + 0.5)  # the API rounds down: the middle of [remaining, +1)
                    bucket.level -= error
                    bucket.shift -= error
                else:  # reserved before we knew the limits: at least do not believe in more than the API has
                    bucket.level = min(bucket.level, remaining)
                bucket.level = min(bucket.level, bucket.capacity)
                synced = True
            if status == 429:
                self.rate_limited += 1
                if advised is not None and not synced:  # a limit we cannot see: everybody waits as asked
                    self._paused_until = max(self._paused_until, now + advised)
        return advised

    def release(self, res: Reservation) -> None:
        """The request got no answer (connection error): nothing to learn."""
        with self._lock:
            self._outstanding = max(0, self._outstanding - 1)
            self._probe_since = None  # let another request find out


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(f"anthropic-ratelimit-{name}")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the API asked a caller to wait (retry-after-ms, retry-after in seconds or as an HTTP date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:  # an HTTP date
                from email.utils import parsedate_to_datetime

                seconds = (parsedate_to_datetime(value) - datetime.now().astimezone()).total_seconds()
            except (TypeError, ValueError):
                continue
        return max(0.0, seconds)
    return None


_pacers: dict[tuple[str, str, str], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(base_url: str, api_key: str | None, model: str) -> Pacer:
    """The process's pacer for this endpoint, key and model (the API's limits are per model). The key is kept
    only as a hash, in memory."""
    key = (base_url.rstrip("/"), hashlib.sha256((api_key or "").encode()).hexdigest()[:16], model)
    with _pacers_lock:
        return _pacers.setdefault(key, Pacer())
