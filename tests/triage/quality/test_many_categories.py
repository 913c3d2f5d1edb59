"""Readable at 77 categories: the most confused pairs, recall per category (worst first), a submatrix with an
"other" column whose rows still add up, and `triage quality`'s text (the full matrix only up to 10 categories)."""

from tests.support.taxonomies import many
from triage.quality import metrics
from triage.quality.report import confused_text as format_confused

NAMES = many().names


def matrix() -> metrics.Confusion:
    truth: list[str] = []
    said: list[str | None] = []
    for c in NAMES:
        truth += [c] * 10
        said += [c] * 10
    # refund_not_showing_up taken for request_refund 6 times of 10, card_arrival for card_delivery_estimate 3
    for a, b, n in [("refund_not_showing_up", "request_refund", 6), ("card_arrival", "card_delivery_estimate", 3)]:
        i = NAMES.index(a) * 10
        said[i:i + n] = [b] * n
    return metrics.confusion(truth, said, NAMES)


def test_confused_pairs_and_recall_worst_first() -> None:
    c = matrix()
    pairs = metrics.confused_pairs(c)
    assert [(p["truth"], p["said"], p["n"]) for p in pairs] == [
        ("refund_not_showing_up", "request_refund", 6), ("card_arrival", "card_delivery_estimate", 3)]
    assert pairs[0]["share"] == 0.6
    recall = metrics.recall_by_category(c)
    assert [(r["category"], r["recall"]) for r in recall[:2]] == [("refund_not_showing_up", 0.4),
                                                                  ("card_arrival", 0.7)]
    assert len(recall) == 77 and recall[-1]["recall"] == 1.0


def test_a_submatrix_keeps_every_row_whole() -> None:
    c = matrix()
    keep = metrics.most_confused_labels(c)
    assert set(keep) == {"refund_not_showing_up", "request_refund", "card_arrival", "card_delivery_estimate"}
    sub = metrics.submatrix(c, keep)
    assert sub["labels"] == keep and sub["columns"] == [*keep, "other"]
    assert all(sum(row) == 10 for row in sub["matrix"])
    assert sub["matrix"][keep.index("refund_not_showing_up")][keep.index("request_refund")] == 6


def test_the_text_report_is_readable_at_77() -> None:
    text = format_confused(matrix(), "Haiku")
    assert "refund_not_showing_up -> request_refund: 6 (60%)" in text
    assert "(the full 77x77 matrix: triage quality --json)" in text
    lines = text.splitlines()
    assert len(lines) < 100 and max(len(line) for line in lines) < 120
