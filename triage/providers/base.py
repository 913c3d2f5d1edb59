"""What the router needs from a tier: classify one text, return one call (see triage.domain.CallResult)."""

from __future__ import annotations

from typing import Protocol

from triage.domain import CallResult
from triage.taxonomy import Taxonomy


class Provider(Protocol):
    tier: int
    model: str

    async def classify(self, text: str, taxonomy: Taxonomy) -> CallResult: ...
