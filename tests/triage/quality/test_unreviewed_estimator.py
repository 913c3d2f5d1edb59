"""The blind audit's estimator against a known truth: a simulated traffic of two strata with different accuracy,
the hard stratum oversampled, audited at random; the 90% interval must cover the traffic's true accuracy about
90% of the time, and the weighted estimate must not lean the way the oversampling pulls."""

import numpy as np
import pytest

from triage.quality.unreviewed import estimate, wilson

REPS = 300


def simulate(seed: int, reps: int = REPS) -> tuple[float, float, float]:
    """(coverage, mean estimate - truth, mean audits) over `reps` simulated audits of about 400 tickets each."""
    rng = np.random.default_rng(seed)
    # 10,000 settled tickets: 8,000 confident Haiku ones (95% right) drawn at 2%, 2,000 escalated Sonnet ones
    # (80% right) oversampled at 12%: about 160 + 240 = 400 audits
    sizes, accuracy, rate = np.array([8000, 2000]), np.array([0.95, 0.80]), np.array([0.02, 0.12])
    covered, bias, audits = 0, 0.0, 0
    for _ in range(reps):
        right = np.concatenate([rng.random(n) < a for n, a in zip(sizes, accuracy, strict=True)])
        p = np.repeat(rate, sizes)
        truth = right.mean()  # the traffic's own accuracy, known here
        drawn = rng.random(len(p)) < p
        e = estimate(zip(right[drawn], p[drawn], strict=True), int(len(p)))
        covered += e.low <= truth <= e.high
        bias += e.accuracy - truth
        audits += e.audited
    return covered / reps, bias / reps, audits / reps


@pytest.mark.parametrize("seed", [1, 2])
def test_interval_covers_the_truth_at_about_the_stated_rate(seed: int) -> None:
    coverage, bias, audits = simulate(seed)
    assert 370 < audits < 430
    # 300 repetitions: the coverage itself is known to about +-1.7 points (one standard error at 90%)
    assert 0.85 <= coverage <= 0.95, coverage
    assert abs(bias) < 0.005, bias  # unweighted, the oversampled hard stratum would pull it down ~6 points


def test_unweighted_would_be_biased() -> None:
    """The same audits read without their weights: the oversampled stratum drags the estimate down, which is why
    each audit carries its probability."""
    rng = np.random.default_rng(5)
    right = np.concatenate([rng.random(8000) < 0.95, rng.random(2000) < 0.80])
    p = np.repeat([0.02, 0.12], [8000, 2000])
    drawn = rng.random(len(p)) < p
    weighted = estimate(zip(right[drawn], p[drawn], strict=True))
    flat = estimate(zip(right[drawn], np.full(drawn.sum(), 0.05), strict=True))
    assert abs(weighted.accuracy - right.mean()) < abs(flat.accuracy - right.mean())
    assert flat.accuracy < right.mean() - 0.03


def test_equal_probabilities_give_the_plain_wilson_interval() -> None:
    e = estimate([(True, 0.05)] * 45 + [(False, 0.05)] * 5, settled=1000)
    assert e.accuracy == pytest.approx(0.9)
    assert (e.low, e.high) == pytest.approx(wilson(0.9, 50))
    assert e.effective == pytest.approx(50)
    assert e.audited == 50 and e.settled == 1000


def test_all_right_still_has_an_interval() -> None:
    e = estimate([(True, 0.03)] * 40)
    assert e.accuracy == 1.0 and e.high == 1.0
    assert e.low is not None and 0.9 < e.low < 0.97  # not [100%, 100%]: 40 audits cannot prove perfection


def test_nothing_audited() -> None:
    e = estimate([], settled=12)
    assert e.accuracy is None and e.audited == 0 and e.settled == 12
