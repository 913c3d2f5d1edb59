"""Rate limits: requests paced from the API's own headers, so a run under a per-minute limit finishes with no
ticket failed for rate limiting and a throughput close to the limit."""

import asyncio
import time

from sqlalchemy import select

from db.engine import Database
from db.models import Ticket
from tests.support.actors import LEAD
from tests.support.fake_anthropic import FakeAnthropic
from triage import taxonomy
from triage.providers import ratelimit
from triage.settings import Settings
from triage.work import pipeline, runs, services

TEXTS = ["I was charged twice for invoice {n}, please refund", "App crashes with error {n} on upload",
         "Password reset link {n} never arrives", "Please add dark mode, feature idea {n}"]


def run_under_limit(db: Database, fake: FakeAnthropic, n: int, concurrency: int) -> pipeline.RunReport:
    settings = Settings(api_key=fake.api_key, base_url=fake.base_url, concurrency=concurrency)
    router = services.build_router(settings, taxonomy.default(), mode="haiku")
    imp = runs.start_run(db, [(None, TEXTS[i % 4].format(n=i)) for i in range(n)], source="t", mode="haiku", actor=LEAD)
    return services.run(router, pipeline.process_queue(db, router, run_id=imp.run_id, concurrency=concurrency))


def test_a_run_under_a_per_minute_limit_is_paced_not_failed(db: Database) -> None:
    rpm, burst, n = 300, 5, 50  # 5 requests a second after a burst of 5: 9 s
    with FakeAnthropic(rate_limit_rpm=rpm, rate_limit_burst=burst) as fake:
        report = run_under_limit(db, fake, n, concurrency=16)
        ok = [r["time"] for r in fake.requests if r.get("status") == 200]
    with db.read() as s:
        reasons = list(s.scalars(select(Ticket.status_reason).where(Ticket.status != "classified")))
    assert report.states == {"classified": n}, (report.states, reasons[:3])  # nothing failed or left pending
    assert fake.rate_limited <= 3, f"{fake.rate_limited} requests got a 429: bursts, not pacing"
    achieved = (len(ok) - burst) / (ok[-1] - ok[0])  # the bucket allows `burst` at once, then `rpm` a minute
    assert achieved >= 0.9 * rpm / 60, f"{achieved:.2f} requests/s against a limit of {rpm / 60:.2f}"
    assert not fake.invalid


def test_the_pacer_resynchronises_with_the_remaining_count_the_api_reports() -> None:
    pacer = ratelimit.Pacer()
    limits = {"anthropic-ratelimit-requests-limit": "60"}  # one a second

    async def scenario() -> tuple[float, float]:
        first = await pacer.acquire()
        pacer.observe(first, {**limits, "anthropic-ratelimit-requests-remaining": "3"})
        started = time.monotonic()
        second = await pacer.acquire()  # 3 left, 1 kept spare: goes at once
        quick = time.monotonic() - started
        pacer.observe(second, {**limits, "anthropic-ratelimit-requests-remaining": "0"})  # another process spent 1
        await pacer.acquire()  # so this one waits for the refill instead of earning a 429
        return quick, time.monotonic() - started

    quick, total = asyncio.run(scenario())
    assert quick < 0.2 and total >= 1.2  # without the correction it would have gone at once


def test_a_429_pauses_every_request_of_the_process_and_is_not_a_failed_attempt() -> None:
    pacer = ratelimit.Pacer()

    async def scenario() -> tuple[float | None, float]:
        slot = await pacer.acquire()
        advised = pacer.observe(slot, {"retry-after": "0.5"}, 429)
        started = time.monotonic()
        await pacer.acquire()  # another request of the same process waits out the pause too
        return advised, time.monotonic() - started

    advised, waited = asyncio.run(scenario())
    assert advised == 0.5 and waited >= 0.45 and pacer.rate_limited == 1
    assert ratelimit.pacer_for("http://x/", "k", "m") is ratelimit.pacer_for("http://x", "k", "m")
    assert ratelimit.pacer_for("http://x", "k", "m") is not ratelimit.pacer_for("http://x", "k", "other-model")
