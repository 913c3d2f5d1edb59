"""Few-shot examples for tier 1 from operator labels: a fixed representative set per category (part of the
static, cacheable prefix) and, per request, the k nearest labelled tickets by cosine similarity of the stored
local-model vectors (after the prefix, so the cache still hits).

Examples are data the model is told not to obey (see prompts.examples_block). Only operator labels are used:
they are ground truth; model labels would teach the model its own mistakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from triage.routing import prompts


@dataclass(frozen=True)
class Example:
    ticket_id: int
    text: str
    label: str


class ExampleBank:
    """Operator-labelled tickets and their unit vectors."""

    def __init__(self, examples: Sequence[Example], vectors: np.ndarray):
        if len(examples) != len(vectors):
            raise ValueError("one vector per example")
        self.examples = list(examples)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else np.ones((0, 1))
        self.vectors = vectors / np.where(norms == 0, 1, norms) if len(vectors) else vectors

    def __len__(self) -> int:
        return len(self.examples)

    def representative(self, per_category: int = 2) -> list[Example]:
        """Per category, the labelled tickets closest to the category's mean vector (deterministic: ties by id),
        categories in name order. This set changes only when the bank is rebuilt, so the prefix stays cached."""
        out: list[Example] = []
        labels = sorted({e.label for e in self.examples})
        for label in labels:
            idx = [i for i, e in enumerate(self.examples) if e.label == label]
            centre = self.vectors[idx].mean(axis=0)
            scores = self.vectors[idx] @ centre
            ranked = sorted(range(len(idx)), key=lambda j: (-float(scores[j]), self.examples[idx[j]].ticket_id))
            out += [self.examples[idx[j]] for j in ranked[:per_category]]
        return out

    def nearest(self, vector: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[Example]:
        """The k labelled tickets most similar to `vector`, most similar first, never the ticket itself nor the
        excluded ones (e.g. the representative set already in the prefix)."""
        if k <= 0 or not len(self):
            return []
        v = vector / (np.linalg.norm(vector) or 1)
        scores = self.vectors @ v
        banned = set(exclude)
        order = sorted(range(len(self)), key=lambda i: (-float(scores[i]), self.examples[i].ticket_id))
        return [self.examples[i] for i in order if self.examples[i].ticket_id not in banned][:k]


REPRESENTATIVE_MIN, REPRESENTATIVE_MAX = 2, 6  # fixed examples per category in the static prefix (see `fill`)


@dataclass(frozen=True)
class Shots:
    """The labelled examples of one request: the fixed representative set (part of the static prefix, the same on
    every call) and the ones retrieved for this ticket (after the prefix)."""

    representative: tuple[Example, ...] = ()
    retrieved: tuple[Example, ...] = ()

    @property
    def count(self) -> int:
        return len(self.representative) + len(self.retrieved)


def fill(bank: ExampleBank, system_prompt: str, model: str) -> tuple[Example, ...]:
    """The fixed representative set: REPRESENTATIVE_MIN per category, more (up to REPRESENTATIVE_MAX) only while
    the prefix is still under the model's minimum cacheable length. Reaching it lets the whole prefix (the system
    prompt too) be read from the cache at a tenth of the input price, which more than pays for the extra
    examples on steady traffic; past it, more fixed examples would only cost."""
    picked: list[Example] = []
    for n in range(REPRESENTATIVE_MIN, REPRESENTATIVE_MAX + 1):
        picked = bank.representative(per_category=n)
        if prompts.cacheable(prompts.static_prefix(system_prompt, picked), model):
            break
    return tuple(picked)


class ShotSource(Protocol):
    """Where a provider gets its examples (triage.local.retrieval.FewShotSource reads the database)."""

    def shots_for(self, text: str) -> Shots:
        """The fixed set and the examples retrieved for this ticket's text."""
        ...

    def fixed(self) -> Shots:
        """The fixed set alone (when retrieval fails)."""
        ...

    def worst_case(self) -> Shots:
        """Shots at least as long as any `shots_for` can give (for the worst-case cost)."""
        ...
