"""The alert rules that are arithmetic: the spike test, the review queue's hysteresis and the retry backoff. Pure
(no database, no network), so each rule is tested on seeded histories.

The spike rule (docs/configuration.md, Alerts). A share (the escalation rate: escalated tickets among the decided
ones; or a category's share of the decided tickets) in the WINDOW (the last hour of arrivals) is compared with the
same share in the BASELINE (the 7 days before the window). It fires only when all of these hold:
- the baseline has at least MIN_BASELINE decided tickets (no baseline, no claim of a jump);
- the window has at least MIN_COUNT tickets of the kind (a handful is never an outage);
- the share at least doubled (JUMP_RATIO) and rose by at least MIN_RISE (10 points): a real jump, not a
  significant wobble on a large volume;
- a one-sided exact binomial test says the window's count is that unlikely under the baseline share:
  P(X >= k | n, p0) <= ALPHA / m, where p0 is the baseline share with one success and one failure added (a category
  never seen before has a small, non-zero baseline) and m the number of shares tested at once (Bonferroni: testing
  every category does not multiply the false alarms).
An episode ends (so the next jump alerts again) once the share is back under CLEAR_RATIO x p0."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

WINDOW = timedelta(hours=1)
BASELINE = timedelta(days=7)
MIN_BASELINE = 200
MIN_COUNT = 10
JUMP_RATIO = 2.0
MIN_RISE = 0.10
ALPHA = 0.001
CLEAR_RATIO = 1.5

REVIEW_REARM = 0.8  # the review queue alerts again once it has fallen to 80% of the limit


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly in log space (n up to millions stays finite)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    terms = [base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True)
class Jump:
    """One share tested: the window's count and size, the baseline's, and the verdict."""

    k: int
    n: int
    k0: int
    n0: int
    tests: int  # shares tested together (the Bonferroni divisor)

    @property
    def share(self) -> float:
        return self.k / self.n if self.n else 0.0

    @property
    def baseline(self) -> float:
        return (self.k0 + 1) / (self.n0 + 2)

    @property
    def p_value(self) -> float:
        return binomial_tail(self.k, self.n, self.baseline)

    @property
    def fires(self) -> bool:
        return (self.n0 >= MIN_BASELINE and self.k >= MIN_COUNT and self.share >= JUMP_RATIO * self.baseline
                and self.share - self.baseline >= MIN_RISE and self.p_value <= ALPHA / max(1, self.tests))

    @property
    def cleared(self) -> bool:
        """Back to normal: an episode may end, and the next jump alert again."""
        return self.share < CLEAR_RATIO * self.baseline or self.k < MIN_COUNT // 2


def review_rearmed(waiting: int, limit: int) -> bool:
    return waiting <= int(limit * REVIEW_REARM)


BACKOFF_BASE_S = 30.0
BACKOFF_MAX_S = 3600.0
MAX_ATTEMPTS = 6  # 30 s, 1, 2, 4, 8 minutes between them: about a quarter of an hour, then given up


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: doubling from 30 s up to an hour, or longer when
    the receiver asked (Retry-After, capped at the hour)."""
    wait = min(BACKOFF_BASE_S * 2 ** max(0, attempts - 1), BACKOFF_MAX_S)
    if retry_after is not None and retry_after > wait:
        wait = min(retry_after, BACKOFF_MAX_S)
    return timedelta(seconds=wait)
