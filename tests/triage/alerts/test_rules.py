"""The spike rule on seeded histories: silent on noise (hour-to-hour wobble included), firing on a real jump; the
exact binomial tail; the backoff."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from triage.alerts import rules
from triage.alerts.rules import Jump, backoff, binomial_tail


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.3), (3, 10, 0.3), (10, 10, 0.3), (7, 40, 0.05), (1, 1, 0.5)])
def test_the_binomial_tail_is_exact(k: int, n: int, p: float) -> None:
    brute = sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert binomial_tail(k, n, p) == pytest.approx(brute, rel=1e-9, abs=1e-300)


def test_the_binomial_tail_stays_finite_on_large_counts() -> None:
    assert 0 < binomial_tail(900, 5000, 0.1) < 1e-30
    assert binomial_tail(400, 5000, 0.1) == pytest.approx(1.0, abs=1e-6)


def baseline(rng: random.Random, share: float, hours: int = 7 * 24, per_hour: int = 30) -> tuple[int, int]:
    n0 = hours * per_hour
    k0 = sum(rng.random() < share for _ in range(n0))
    return k0, n0


def test_silent_on_noise_across_many_seeded_hours() -> None:
    """2,000 ordinary hours (volume 10-80 an hour, each hour's share wobbling 30% around the usual), ten shares
    tested at once: not one alert."""
    fired = 0
    for seed in range(200):
        rng = random.Random(seed)
        usual = [0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.12]
        base = [baseline(rng, p) for p in usual]
        for _ in range(10):
            n = rng.randint(10, 80)
            for (k0, n0), p in zip(base, usual, strict=True):
                k = sum(rng.random() < p * rng.uniform(0.7, 1.3) for _ in range(n))
                fired += Jump(k, n, k0, n0, tests=len(usual)).fires
    assert fired == 0


@pytest.mark.parametrize("seed", range(20))
def test_fires_on_a_real_spike(seed: int) -> None:
    """An outage: billing goes from 10% of the tickets to 45% of an hour of 40."""
    rng = random.Random(seed)
    k0, n0 = baseline(rng, 0.10)
    k = sum(rng.random() < 0.45 for _ in range(40))
    jump = Jump(k, 40, k0, n0, tests=11)
    assert jump.fires, (k, jump.p_value)
    assert not jump.cleared


def test_each_guard_alone_keeps_it_silent() -> None:
    assert Jump(30, 60, 500, 5000, 11).fires  # 50% against 10%: fires
    assert not Jump(8, 10, 500, 5000, 11).fires  # 80%, but 8 tickets: under the minimum count
    assert not Jump(30, 60, 10, 100, 11).fires  # a baseline of 100 tickets: too little to compare with
    assert not Jump(2300, 10000, 2000, 10000, 11).fires  # significant, but 23% against 20%: not a jump
    assert not Jump(12, 60, 500, 5000, 11).fires  # 20% against 10%: doubled, but 12 of 60 is not that unlikely
    assert Jump(12, 20, 0, 5000, 11).fires  # a category never seen before, now 60%: fires (smoothed baseline)


def test_an_episode_clears_once_the_share_is_back() -> None:
    assert not Jump(30, 60, 500, 5000, 11).cleared
    assert Jump(8, 60, 500, 5000, 11).cleared  # 13% against 10%: under 1.5 x
    assert Jump(0, 0, 500, 5000, 11).cleared  # nothing arrived


def test_backoff_doubles_up_to_an_hour_and_honours_retry_after() -> None:
    assert [backoff(i).total_seconds() for i in range(1, 6)] == [30, 60, 120, 240, 480]
    assert backoff(20) == timedelta(hours=1)
    assert backoff(1, retry_after=300) == timedelta(seconds=300)
    assert backoff(1, retry_after=99999) == timedelta(hours=1)
    assert rules.MAX_ATTEMPTS == 6
