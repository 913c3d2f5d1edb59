"""Priority against operators' priorities: how often the model's priority was the one an operator set, per level,
and how well its own confidence matched (the Quality page and `triage quality`). The category's figures are
`measure`'s; the category alone drives escalation."""

from __future__ import annotations

from dataclasses import dataclass, field

from db import quality
from db.engine import Database
from triage.access import Action, Actor, require
from triage.domain import UNKNOWN
from triage.routing.calibration import ece


@dataclass(frozen=True)
class PriorityQuality:
    n: int  # tickets an operator gave a priority that a model had answered
    right: int
    unknown: int  # of those, the model gave none (the local tier, or an unusable answer)
    ece: float | None  # calibration error of the stated priority confidence (None: no answers with one)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (operator's, model's or unknown) -> n

    @property
    def accuracy(self) -> float | None:
        return self.right / self.n if self.n else None


def measure(db: Database, *, actor: Actor) -> PriorityQuality:
    require(actor, Action.VIEW_REPORTS)
    with db.read() as s:
        pairs = quality.priority_pairs(s)
    confusion: dict[tuple[str, str], int] = {}
    for truth, said, _ in pairs:
        key = (truth, said or UNKNOWN)
        confusion[key] = confusion.get(key, 0) + 1
    scored = [(c, truth == said) for truth, said, c in pairs if said is not None and c is not None]
    return PriorityQuality(
        n=len(pairs), right=sum(1 for truth, said, _ in pairs if truth == said),
        unknown=sum(1 for _, said, _ in pairs if said is None),
        ece=ece([c for c, _ in scored], [ok for _, ok in scored]) if scored else None, confusion=confusion)


def data_version(db: Database) -> tuple[int, int]:
    """Changes when `measure` can give another answer: an operator label or priority (a model's later priority on
    a ticket an operator already prioritised shows with the next of either)."""
    with db.read() as s:
        return quality.labels_version(s), quality.priority_version(s)
