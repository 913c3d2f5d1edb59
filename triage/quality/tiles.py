"""What a per-model accuracy figure rests on, so a page can say so: a figure on a handful of labels is shown as
the range it allows, not as large as one on hundreds (issue 27). Pure: no database, no Streamlit."""

from __future__ import annotations

from dataclasses import dataclass

from triage.quality.threshold import wilson

MIN_TO_JUDGE = 30  # labelled answers under which a model's accuracy is shown as "too few labels to judge"

# One figure, one name. The Quality page and Settings both speak of the local model's accuracy on operator labels,
# but they measure two things; each says which and why they differ.
ANSWERS_GIVEN = ("How often the answers it gave when it classified were right, against the operator labels "
                 "those tickets got later: what the model in force at the time did. Settings → Local model shows "
                 "the retrained model's out-of-fold accuracy instead (it has learnt from these labels since), "
                 "which is usually higher.")
RETRAINED_OUT_OF_FOLD = ("The model as last retrained: each operator label predicted by a model trained without "
                         "it (out-of-fold). The Quality page's local-model tile measures the answers it actually "
                         "gave when it classified, before it learnt from those labels, so it is usually lower.")


@dataclass(frozen=True)
class Tile:
    name: str
    n: int
    accuracy: float
    low: float  # 90% interval (Wilson)
    high: float

    @property
    def few(self) -> bool:
        return self.n < MIN_TO_JUDGE

    @property
    def note(self) -> str:
        """The figure as a person should read it."""
        if self.few:
            return (f"only {self.n} label{'s' if self.n != 1 else ''}: too few to judge; somewhere between "
                    f"{self.low:.0%} and {self.high:.0%}")
        return f"{self.n} labels; 90% interval {self.low:.0%}-{self.high:.0%}"


def tile(name: str, accuracy: float, n: int) -> Tile:
    low, high = wilson(round(accuracy * n), n)
    return Tile(name, n, accuracy, low, high)
