"""The threshold recommendation on a replay whose right answer is known."""

import pytest

from triage.quality import threshold

WHATIF: list[threshold.Replay] = [  # threshold, accuracy on n labelled tickets, escalation rate, cost per ticket
    {"threshold": 0.5, "accuracy": 0.80, "replayed": 400, "escalation_rate": 0.05, "cost_per_ticket": 0.0002},
    {"threshold": 0.7, "accuracy": 0.90, "replayed": 400, "escalation_rate": 0.15, "cost_per_ticket": 0.0004},
    {"threshold": 0.8, "accuracy": 0.94, "replayed": 400, "escalation_rate": 0.25, "cost_per_ticket": 0.0006},
    {"threshold": 0.9, "accuracy": 0.95, "replayed": 400, "escalation_rate": 0.45, "cost_per_ticket": 0.0010},
]


def test_the_cheapest_threshold_whose_interval_clears_the_target_is_recommended() -> None:
    rec = threshold.recommend(WHATIF, target=0.9)
    assert rec.threshold == 0.8  # 0.7 measures 90% but its interval reaches below 90%
    assert rec.n == 400 and rec.interval is not None and rec.interval[0] >= 0.9 > threshold.wilson(360, 400)[0]
    assert rec.message.startswith("escalate under 0.80: accuracy 94%")


def test_too_few_labels_get_no_recommendation_and_say_so() -> None:
    thin: list[threshold.Replay] = [{**r, "replayed": 20} for r in WHATIF]
    rec = threshold.recommend(thin, target=0.9)
    assert rec.threshold is None and "no threshold reaches 90%" in rec.message and "20 labels" in rec.message


def test_nothing_to_replay() -> None:
    assert threshold.recommend([], 0.9).threshold is None


@pytest.mark.parametrize(("right", "n"), [(90, 100), (9, 10), (0, 5), (5, 5)])
def test_wilson_brackets_the_measured_rate(right: int, n: int) -> None:
    lo, hi = threshold.wilson(right, n)
    assert 0 <= lo <= right / n <= hi <= 1 and hi - lo < 1
