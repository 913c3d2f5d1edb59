"""What every provider returns: one model call, with its usage, cost and outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from triage.pricing import Usage
from triage.taxonomy import Taxonomy

# outcome values
OK = "ok"                      # a label from the taxonomy and a confidence
UNKNOWN_LABEL = "unknown_label"  # answered, but the label is outside the taxonomy
UNPARSED = "unparsed"          # answered, but no usable label could be read
REFUSAL = "refusal"            # stop_reason "refusal"
TRUNCATED = "max_tokens"       # stop_reason "max_tokens" and nothing usable
ERROR = "error"                # no answer: see error_kind

# error_kind values
AUTH = "auth"                  # 401/403: stop the run, do not retry
BAD_REQUEST = "bad_request"    # 400/404/413/422: recorded on the ticket with the API's message
TRANSIENT = "transient"        # 429/5xx/529/timeouts/connection, still failing after the retries


@dataclass
class CallResult:
    tier: int
    model: str
    outcome: str
    category: str | None = None
    confidence: float | None = None
    reason: str = ""
    problem: str | None = None
    model_returned: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    request_id: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    vector: bytes | None = field(default=None, repr=False)  # the local tier's embedding, stored once

    @property
    def answered(self) -> bool:
        return self.outcome != ERROR

    @property
    def usable(self) -> bool:
        """A label from the taxonomy that routing can trust (confidence may still be low)."""
        return self.outcome == OK and self.category is not None


class Provider(Protocol):
    tier: int
    model: str

    async def classify(self, text: str, taxonomy: Taxonomy) -> CallResult: ...
