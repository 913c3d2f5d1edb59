"""The domain: what a ticket, a model call and a routing outcome are. Every layer may import this module; it
imports nothing of ours, so the database layer can depend on it without depending on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

UNKNOWN = "unknown"  # the label recorded when a model answers outside the taxonomy


class TicketState(StrEnum):
    """Where a ticket is. Every ticket is in exactly one of these; the values are what the database stores."""

    PENDING = "pending"  # not processed yet (new, paused by the budget, or left by a stopped run)
    CLASSIFIED = "classified"  # a confident tier-1 (or tier-0) label
    ESCALATED = "escalated"  # tier 2 decided
    NEEDS_REVIEW = "needs_review"  # low confidence, unknown label, unreadable answer or refusal
    FAILED = "failed"  # the API failed after retries; the reason is stored and the ticket is retryable


PENDING, CLASSIFIED, ESCALATED, NEEDS_REVIEW, FAILED = (TicketState.PENDING, TicketState.CLASSIFIED,
                                                        TicketState.ESCALATED, TicketState.NEEDS_REVIEW,
                                                        TicketState.FAILED)
STATES = tuple(TicketState)

MODES = ("auto", "haiku", "sonnet")  # the paid routes (the router's modes): both tiers, or one model only
LOCAL = "local"  # the route of the offline model ($0, no API key needed)
ROUTES = (*MODES, LOCAL)  # a run's route: how its tickets are classified (stored as `runs.mode`)

# what a run and its tickets are for (`runs.purpose`, `tickets.purpose`, migration 0025): production traffic;
# `triage eval`'s gold rows; a pilot's sample (triage/work/pilot.py), kept out of every production figure and queue
PRODUCTION, EVAL, PILOT = "production", "eval", "pilot"
PURPOSES = (PRODUCTION, EVAL, PILOT)


class CallOutcome(StrEnum):
    """What one model call produced."""

    OK = "ok"  # a label from the taxonomy and a confidence
    UNKNOWN_LABEL = "unknown_label"  # answered, but the label is outside the taxonomy
    UNPARSED = "unparsed"  # answered, but no usable label could be read
    REFUSAL = "refusal"  # stop_reason "refusal"
    TRUNCATED = "max_tokens"  # stop_reason "max_tokens" and nothing usable
    ERROR = "error"  # no answer: see error_kind


OK, UNKNOWN_LABEL, UNPARSED, REFUSAL, TRUNCATED, ERROR = tuple(CallOutcome)


class ErrorKind(StrEnum):
    AUTH = "auth"  # 401/403: stop the run, do not retry
    BAD_REQUEST = "bad_request"  # 400/404/413/422: recorded on the ticket with the API's message
    TRANSIENT = "transient"  # 429/5xx/529/timeouts/connection, still failing after the retries
    UNANSWERED = "unanswered"  # a several-ticket answer gave this ticket no clean answer: it is asked again alone


AUTH, BAD_REQUEST, TRANSIENT, UNANSWERED = tuple(ErrorKind)

# money: Decimal dollars in Python, integer pico-dollars in the database, so every sum is exact
PICO = Decimal("1e12")


def to_pico(amount: Decimal) -> int:
    return int((amount * PICO).to_integral_value())


def from_pico(pico: int | None) -> Decimal:
    return Decimal(pico or 0) / PICO if pico else Decimal(0)


def money_text(amount: Decimal) -> str:
    """A dollar amount as a plain decimal for files and JSON: 0, 0.000364, 12.5 (never 0E-12 or 1E-7)."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Usage:
    """Token counts as the API's `usage` reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    service_tier: str | None = None  # "standard" | "priority" | "batch"
    inference_geo: str | None = None  # "us" costs more on the Claude API

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens


@dataclass
class CallResult:
    """One model call (API or local), answered or not, with its usage and exact cost."""

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
    cost_known: bool = True  # False: the API billed it but the price table has no price (cost_usd is then 0)
    cost_note: str | None = None  # why the cost is unknown
    estimated_usd: Decimal | None = None  # cost unknown: the most it can have cost (usage at the dearest known price)
    latency_ms: int = 0
    request_id: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    vector: bytes | None = field(default=None, repr=False)  # the local tier's embedding, stored once
    reservation_id: int | None = None  # its row in the spending ledger, settled when the call is recorded
    # the calibration in force when the call was routed (triage/quality/calibrate.py) and what it made of `confidence`
    calibration_id: int | None = None
    calibrated_confidence: float | None = None
    examples: int | None = None  # labelled few-shot examples in its request; None: sent without any
    group_size: int = 1  # how many tickets shared the request (usage and cost here are this ticket's share)
    group_position: int = 1  # this ticket's id (1..group_size) in that request
    # the priority answered in the same request as the category (a level of the taxonomy's scale) and its own
    # confidence; None: unknown (the local tier never guesses one, an answer without a usable priority)
    priority: str | None = None
    priority_confidence: float | None = None

    @property
    def routing_confidence(self) -> float | None:
        """What routing compares with the threshold: the calibrated confidence when a calibration was in force for
        this call, else the stated one."""
        return self.calibrated_confidence if self.calibration_id is not None else self.confidence

    @property
    def answered(self) -> bool:
        return self.outcome != ERROR

    @property
    def usable(self) -> bool:
        """A label from the taxonomy that routing can trust (confidence may still be low)."""
        return self.outcome == OK and self.category is not None


@dataclass(frozen=True)
class CallFor:
    """Whom a paid call is for: written on its reservation (the record of the attempt) before the request goes."""

    ticket_id: int | None = None
    run_id: int | None = None
    worker: str | None = None  # the name of the process sending it (`worker_identity`)


def worker_identity(host: str, pid: int, start: str) -> str:
    """A worker's name on its claims and reservations: `host:pid:start`, where `start` is drawn once per process
    start, so two processes with the same host and pid (containers, a reused pid) never share a name."""
    return f"{host}:{pid}:{start}"


def worker_pid(worker: str, host: str) -> int | None:
    """The process id in a worker's name when the worker runs on `host`, so that its liveness can be asked; None
    for another host's worker or a holder that is no process (a Message Batch, the demo). Names of the older
    `host:pid` form are read too."""
    parts = worker.split(":")
    if len(parts) in (2, 3) and parts[0] == host and parts[1].isdigit():
        return int(parts[1])
    return None


@dataclass
class Outcome:
    """Where one ticket ended after a pass through the tiers, and every call it took."""

    calls: list[CallResult] = field(default_factory=list)
    status: TicketState = PENDING
    category: str | None = None
    confidence: float | None = None
    tier: int | None = None
    model: str | None = None
    escalated: bool = False
    reason: str | None = None  # why the ticket is failed, pending or needs review

    @property
    def priority_call(self) -> CallResult | None:
        """The call whose priority the ticket takes: the deciding call (the latest answer of the deciding tier, as
        `router.decide` picks it) when it gave one. The category alone drives escalation and review."""
        answered = [c for c in self.calls if c.answered and c.tier == self.tier]
        best = answered[-1] if answered else None
        return best if best is not None and best.priority is not None else None

    @property
    def priority(self) -> str | None:
        call = self.priority_call
        return call.priority if call else None

    @property
    def priority_confidence(self) -> float | None:
        call = self.priority_call
        return call.priority_confidence if call else None


class ReviewReason(StrEnum):
    """Why the review queue shows a ticket (its filter's choices)."""

    LOW_CONFIDENCE = "low_confidence"  # under the threshold (stated, or calibrated when routing used that)
    UNKNOWN = "unknown"  # a label outside the taxonomy, or none
    FAILED = "failed"  # the API failed after retries
    DISAGREEMENT = "disagreement"  # Haiku and Sonnet disagreed


@dataclass(frozen=True)
class ReviewFilter:
    """Which tickets the review queue shows. Plain data: db.review turns it into SQL."""

    reasons: tuple[str, ...] = ()  # any of ReviewReason; empty = every ticket
    threshold: float = 0.7  # what "low confidence" means
    corrected: bool | None = None  # None = both
    categories: tuple[str, ...] = ()
    created_from: date | None = None
    created_to: date | None = None
    search: str = ""
    run_id: int | None = None  # the run that (last) queued the ticket
    source: str = ""  # the file (or "paste") it came from
    priorities: tuple[str, ...] = ()  # levels of the scale; "unknown" matches tickets without a priority
    languages: tuple[str, ...] = ()  # ISO 639 codes; "unknown" matches tickets without a detected language
    teams: tuple[str, ...] = ()  # "unknown" matches tickets without a team
    # the scale's levels most urgent first: the queue shows them in that order (urgent first), each level by its
    # usual order (least confident first), tickets without a priority last; empty: no priority order
    priority_order: tuple[str, ...] = ()
    masked: bool = False  # only tickets in which masking replaced a value (counted at import)


@dataclass(frozen=True)
class ReviewRow:
    """One ticket as the review table shows it."""

    id: int
    external_id: str | None
    text: str
    category: str | None
    confidence: float | None
    status: str
    label_source: str | None
    tier1_category: str | None
    tier2_category: str | None
    corrected: bool
    version: int
    created_at: datetime
    priority: str | None = None
    priority_confidence: float | None = None
    language: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class TicketView:
    """A ticket as the detail view shows it."""

    id: int
    external_id: str | None
    text: str
    source: str
    status: str
    status_reason: str | None
    category: str | None
    confidence: float | None
    label_source: str | None
    corrected: bool
    version: int
    priority: str | None = None
    priority_confidence: float | None = None
    priority_source: str | None = None
    language: str | None = None
    team: str | None = None
    masked_count: int | None = None  # values masking replaced at import (None: not counted)


@dataclass(frozen=True)
class TeamRule:
    """One row of the routing table: a ticket whose category, priority and language match (None: any) goes to
    `team`. Rows are tried in order, the first match wins; a row matching anything is the default team, last."""

    team: str
    category: str | None = None
    priority: str | None = None
    language: str | None = None

    def matches(self, category: str | None, priority: str | None, language: str | None) -> bool:
        return ((self.category is None or self.category == category)
                and (self.priority is None or self.priority == priority)
                and (self.language is None or self.language == language))

    @property
    def is_default(self) -> bool:
        return self.category is None and self.priority is None and self.language is None


def team_for(rules: tuple[TeamRule, ...] | list[TeamRule], category: str | None, priority: str | None,
             language: str | None) -> str | None:
    """The team of a ticket by the routing table: the first row that matches (deterministic); None without one."""
    return next((r.team for r in rules if r.matches(category, priority, language)), None)
