"""The schema. Money is stored as integer pico-dollars so sums in SQL are exact on every backend."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from triage.domain import PENDING


def utcnow() -> datetime:
    return datetime.now(UTC)


def normal_text(text: str) -> str:
    """A ticket's text with its whitespace normalised: what "the same text" means everywhere."""
    return " ".join(text.split())  # the same as re.sub(r"\s+", " ", text.strip()) for every character, 4x faster


def text_hash(text: str) -> str:
    """The hash of a ticket's normalised text alone (no id): how a labelled row finds its ticket by text."""
    return normalised_text_hash(normal_text(text))


def normalised_text_hash(normal: str) -> str:
    """`text_hash` of a text already through `normal_text` (bulk imports normalise once)."""
    return hashlib.sha256(normal.encode()).hexdigest()


def _text_hash_of_row(context: DefaultExecutionContext) -> str:
    params: dict[str, str] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return text_hash(params["text"])


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One batch of work: who started it, from where, and when it ended."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_by: Mapped[str] = mapped_column(String(120), default="cli")
    source: Mapped[str] = mapped_column(String(255), default="")
    mode: Mapped[str] = mapped_column(String(16), default="auto")
    threshold: Mapped[float] = mapped_column(Float, default=0.7)
    per_call: Mapped[int | None] = mapped_column(Integer)  # tickets per tier-1 request; None: the worker's setting
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | finished | stopped
    # production | eval | pilot (triage.domain.PURPOSES): a pilot's runs are kept out of production figures (0025)
    purpose: Mapped[str] = mapped_column(String(12), server_default="production")
    message: Mapped[str | None] = mapped_column(Text)
    n_tickets: Mapped[int] = mapped_column(Integer, default=0)
    n_new: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[str | None] = mapped_column(String(80))  # its Message Batch, once the API has given an id
    # queued | submitting | in_progress | collecting | collected | gone | failed (None: not a batch run); see
    # triage/work/batches.py
    batch_state: Mapped[str | None] = mapped_column(String(16))
    batch_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when it entered that state
    batch_key: Mapped[str | None] = mapped_column(String(16))  # this submission's nonce, in its custom ids (0019)
    batch_owner: Mapped[str | None] = mapped_column(String(120))  # the process submitting or collecting it (0019)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(255), default="")
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # set on every insert from the text; migration 0011 filled it for older tickets
    text_hash: Mapped[str | None] = mapped_column(String(64), index=True, default=_text_hash_of_row)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    # the current label, derived from calls and corrections and kept here for fast filtering
    category: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    label_source: Mapped[str | None] = mapped_column(String(16))  # operator | tier2 | tier1 | tier0
    tier1_category: Mapped[str | None] = mapped_column(String(64))
    tier2_category: Mapped[str | None] = mapped_column(String(64))
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    disagree: Mapped[bool] = mapped_column(Boolean, default=False)  # tier 1 and tier 2 gave different labels
    corrected: Mapped[bool] = mapped_column(Boolean, default=False)
    corrected_by: Mapped[str | None] = mapped_column(String(120))
    corrected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic concurrency for corrections
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    escalation_requested: Mapped[bool] = mapped_column(Boolean, default=False)  # operator asked for tier 2
    first_call_id: Mapped[int] = mapped_column(Integer, default=0)  # calls before this id are history only
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the priority (a level of the taxonomy's scale; NULL: unknown) from the deciding call, or an operator's (0020)
    priority: Mapped[str | None] = mapped_column(String(32))
    priority_confidence: Mapped[float | None] = mapped_column(Float)
    priority_source: Mapped[str | None] = mapped_column(String(16))  # operator | tier2 | tier1 (NULL: unknown)
    language: Mapped[str | None] = mapped_column(String(8))  # ISO 639 code detected locally at import (0020)
    team: Mapped[str | None] = mapped_column(String(64))  # from the routing table (triage/teams.py) (0020)
    # who wrote it: HMAC-SHA256 of the requester's e-mail keyed with the installation's salt (db/privacy.py), so
    # `triage erase --requester` finds their tickets and the address itself is never stored (0021)
    requester_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # values the masking policy in force at import replaced before any model saw the text; NULL: not counted (0021)
    masked_count: Mapped[int | None] = mapped_column(Integer)
    # the path (db.paths.key) path_daily counts this ticket under; NULL: not counted yet (0023)
    path: Mapped[str | None] = mapped_column(String(80))
    # production | eval | pilot (triage.domain.PURPOSES), its run's: a pilot's tickets never reach the review queue,
    # the Quality figures, the audit draws, the routing story or exports (0025)
    purpose: Mapped[str] = mapped_column(String(12), server_default="production")
    calls: Mapped[list[ModelCall]] = relationship(back_populates="ticket", order_by="ModelCall.id")

    __table_args__ = (
        Index("ix_tickets_status_confidence", "status", "confidence"),
        Index("ix_tickets_category_confidence", "category", "confidence"),
        Index("ix_tickets_confidence_id", "confidence", "id"),
        Index("ix_tickets_disagree", "disagree", "confidence"),
        # the worker's claim (status = pending, oldest first): without it an idle poll walks every ticket
        Index("ix_tickets_status_id", "status", "id"),
        # is any pending ticket free to take: two probes, not a walk over the pending tickets others hold (0018)
        Index("ix_tickets_status_claimed", "status", "claimed_at"),
        # the operator-labelled tickets few-shot can draw on, counted on the Settings page (0018)
        Index("ix_tickets_label_source_category", "label_source", "category"),
        # the review queue's urgent-first walks inside a filter (0020)
        Index("ix_tickets_priority_confidence", "priority", "confidence", "id"),
        Index("ix_tickets_team", "team"),
        Index("ix_tickets_language", "language"),
    )


FEWSHOT_OR_CACHED = text("(examples IS NOT NULL OR cache_read_tokens > 0 OR cache_write_5m_tokens > 0 "
                         "OR cache_write_1h_tokens > 0)")  # in parentheses: it is ANDed with other terms


class ModelCall(Base):
    """One API or local-model call. Cost history is reproducible from these rows and the price table."""

    __tablename__ = "model_calls"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    tier: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    model_returned: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_5m_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_1h_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    service_tier: Mapped[str | None] = mapped_column(String(16))
    inference_geo: Mapped[str | None] = mapped_column(String(16))
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    # False when the API billed the call but the price table could not price it (cost_pico is then 0)
    cost_known: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    cost_note: Mapped[str | None] = mapped_column(Text)  # why the cost is unknown
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(120), index=True)  # batch results: "batch/custom id"
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    # several tickets per request: each has a row with its share of usage and cost; the request is counted once
    # (on the row of position 1)
    group_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    group_position: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the calibration in force when the call was routed (calibrations.id; no foreign key, so adding the column
    # never rewrites the table) and the confidence routing compared with the threshold
    calibration_id: Mapped[int | None] = mapped_column(Integer)
    calibrated_confidence: Mapped[float | None] = mapped_column(Float)
    # labelled few-shot examples in the request (fixed + retrieved); NULL: sent without any (migration 0013)
    examples: Mapped[int | None] = mapped_column(Integer)
    # the priority answered in the same request as the category, with its own confidence (0020)
    priority: Mapped[str | None] = mapped_column(String(32))
    priority_confidence: Mapped[float | None] = mapped_column(Float)
    ticket: Mapped[Ticket] = relationship(back_populates="calls")

    __table_args__ = (
        # covering index for spend reports: a range scan on created_at never touches the table
        Index("ix_model_calls_spend", "created_at", "model", "tier", "cost_pico", "latency_ms"),
        # calls of unknown cost by date (the Spend page): only those rows, so the count never walks the history
        Index("ix_model_calls_unknown_cost", "created_at", sqlite_where=text("cost_known = 0"),
              postgresql_where=text("cost_known = false")),
        # the Spend page's few-shot and cache figures read only the calls that had either (partial index)
        Index("ix_model_calls_fewshot", "created_at", sqlite_where=FEWSHOT_OR_CACHED,
              postgresql_where=FEWSHOT_OR_CACHED),
    )


class Calibration(Base):
    """A map from a model's stated confidence to the observed chance of being right (Platt scaling, see
    triage/routing/calibration.py), fitted on operator labels. The latest row per model is the one in force; rows are
    never changed, so every call's calibration_id names the exact map it was routed with."""

    __tablename__ = "calibrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16), default="platt")
    a: Mapped[float] = mapped_column(Float)  # p = sigmoid(a * logit(stated) + b)
    b: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)  # labelled answers it was fitted on
    n_right: Mapped[int] = mapped_column(Integer)
    ece_before: Mapped[float] = mapped_column(Float)  # of the stated confidence on those answers
    ece_after: Mapped[float | None] = mapped_column(Float)  # of the calibrated one, cross-validated
    trigger: Mapped[str] = mapped_column(String(40))  # label import | corrections | manual
    fitted_by: Mapped[str] = mapped_column(String(255))  # who made the change that triggered it
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_calibrations_model_id", "model", "id"),)


class CallAttempt(Base):
    """The spending ledger: a paid call's worst-case cost, reserved before its request is sent.

    `open` while the request is in flight (deleted in the transaction that records the call); `lost` when its
    process stopped or died before the answer arrived (probably billed, answer lost); `unpriced` when the answer
    came back but the price table could not price it. Lost and unpriced rows count at their estimate in spend
    and budget; open rows count in the budget."""

    __tablename__ = "call_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="call")  # call | batch
    ticket_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: money outlives a deleted ticket
    run_id: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(120))  # host:pid of the process that sent it
    estimated_pico: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | lost | unpriced
    call_id: Mapped[int | None] = mapped_column(Integer)  # the recorded call, for unpriced ones
    note: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_call_attempts_state_started", "state", "started_at"),)


class TicketVector(Base):
    """A ticket's sentence embedding, computed once and reused by every retraining of the local head."""

    __tablename__ = "ticket_vectors"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # little-endian float32


class SpendDaily(Base):
    """Per UTC day, model and tier: totals kept in step with model_calls in the same transaction, so spend
    charts never scan a million calls. `db.rollups.rebuild` recomputes every rollup from the calls."""

    __tablename__ = "spend_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)  # one per ticket a request was about
    # API requests (<= calls); no Python default, so migration 0007's rebuild (before this column) can insert rows
    requests: Mapped[int] = mapped_column(Integer, server_default="0")
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    # tokens of answered calls only (outcome != error): what "Sonnet alone" prices
    answered_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    answered_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    demo_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # request id demo_...
    demo_cost_pico: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class CacheDaily(Base):
    """Per UTC day, the calls that carried few-shot examples or used the prompt cache, summed by what prices them:
    model, tier, with examples or not, service tier, inference geo ('' for none) and prompt size in thousands of
    tokens (`db.rollups.prompt_kilo`: exact for price bands whose limits are whole thousands). Kept in step with
    model_calls like spend_daily, so the Spend page's few-shot and cache figures cost the days shown."""

    __tablename__ = "cache_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    tier: Mapped[int] = mapped_column(Integer, primary_key=True)
    with_examples: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1: model_calls.examples is not NULL
    service_tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    inference_geo: Mapped[str] = mapped_column(String(16), primary_key=True)
    prompt_kilo: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    examples: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_5m_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_1h_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)


class RoutingDaily(Base):
    """Per UTC day: distinct tickets with a call that day (any tier, tier 1, tier 2), and the cost of tier-2
    calls on tickets tier 1 never saw. Kept in step with model_calls like spend_daily (see db.rollups)."""

    __tablename__ = "routing_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    tier1_tickets: Mapped[int] = mapped_column(Integer, default=0)
    tier2_tickets: Mapped[int] = mapped_column(Integer, default=0)
    direct_tier2_pico: Mapped[int] = mapped_column(BigInteger, default=0)


class PathDaily(Base):
    """Per UTC day a ticket arrived: its tickets per path through the tiers to their outcome (db.paths), of which
    demo. Kept exact by db.paths.sync, called wherever a ticket's path can change, in the same transaction."""

    __tablename__ = "path_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    decider: Mapped[str] = mapped_column(String(10), primary_key=True)
    via_haiku: Mapped[int] = mapped_column(Integer, primary_key=True)
    result: Mapped[str] = mapped_column(String(10), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(10), primary_key=True)
    label_from: Mapped[str] = mapped_column(String(8), primary_key=True)  # review | import | "" (no operator label)
    tickets: Mapped[int] = mapped_column(Integer, default=0)
    demo_tickets: Mapped[int] = mapped_column(Integer, default=0)


class LatencyDaily(Base):
    """Per UTC day and model: answered live calls (batch calls have no latency) counted in latency buckets;
    `bucket_ms` is the latency rounded down to two significant digits (see db.rollups.latency_bucket)."""

    __tablename__ = "latency_daily"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket_ms: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)


class LabelledAnswer(Base):
    """For each ticket an operator labelled: per tier, its latest answered call next to the operator's label, and
    apart from it, its latest sent with few-shot examples (with_examples 1) and without (0), so the Quality page's
    with/without comparison reads this too. Kept in step by record_call and corrections (see db.rollups), so the
    Quality page reads one or two rows per answer instead of joining every call of every labelled ticket. A
    ticket's latest answer of a tier is its row of that tier with the highest call_id."""

    __tablename__ = "labelled_answers"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    tier: Mapped[int] = mapped_column(Integer, primary_key=True)
    with_examples: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1: the call's examples is not NULL
    call_id: Mapped[int] = mapped_column(Integer)
    truth: Mapped[str] = mapped_column(String(64))  # the operator's label
    label: Mapped[str | None] = mapped_column(String(64))  # the model's answer
    confidence: Mapped[float | None] = mapped_column(Float)
    cost_pico: Mapped[int] = mapped_column(BigInteger, default=0)
    model: Mapped[str] = mapped_column(String(64))  # the call's, copied so the page reads no call
    outcome: Mapped[str] = mapped_column(String(16))
    examples: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = ({"sqlite_with_rowid": False},)  # stored in key order: the page reads it newest first


class DataVersion(Base):
    """Counters bumped in the same transaction as the change they name ('labels': an operator label or a call
    on a labelled ticket), so a page can tell cheaply whether its cached figures are still current."""

    __tablename__ = "data_versions"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class PriorityCorrection(Base):
    """Append-only trail of operator priorities (0020): like `corrections`, apart so that setting a priority never
    reads as confirming the category."""

    __tablename__ = "priority_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    previous_priority: Mapped[str | None] = mapped_column(String(32))
    new_priority: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Correction(Base):
    """Append-only audit trail of operator labels."""

    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    previous_label: Mapped[str | None] = mapped_column(String(64))
    new_label: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="review", server_default="review")  # review | import
    file: Mapped[str | None] = mapped_column(String(255))  # the file an imported label came from
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """Taxonomy, threshold and other settings operators change from the UI (JSON values)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Append-only record of what people did outside the ticket trail: settings changed, exports, label imports,
    retraining, escalation requests, demo loads. Runs started are recorded on `runs` (started_by)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what changed, how many rows, which filter


class AuditDraw(Base):
    """The blind audit sample: one row per ticket settled without review (classified or escalated, not corrected)
    since the audit began, written in the transaction that settled it. `probability` is the chance it had of being
    drawn (the audit rate in force then, or a stratum's own rate), so estimates weight each audited ticket by its
    inverse and stay unbiased when rates change. `label` is the machine label it settled with; `answer` the
    operator's blind label, once given."""

    __tablename__ = "audit_draws"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    settled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    tier: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    drawn: Mapped[bool] = mapped_column(Boolean)
    answer: Mapped[str | None] = mapped_column(String(64))
    answered_by: Mapped[str | None] = mapped_column(String(120))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # the population per stratum (settled), read from the index alone
        Index("ix_audit_draws_stratum", "tier", "model", "drawn"),
        # the drawn tickets awaiting an answer, and the answered ones the estimate reads
        Index("ix_audit_draws_drawn", "drawn", "answered_at", "ticket_id"),
    )


class AlertEvent(Base):
    """Something a lead asked to be told about (triage/alerts): an urgent ticket, the review queue over its limit,
    a budget level passed, a spike. `key` is `condition#episode` and UNIQUE: of any number of workers noticing the
    same thing, exactly one inserts it (0024). A condition that holds again after it cleared is a new episode.
    Never holds ticket text: the message is written when it is sent (masked text, only if a lead allowed it)."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    condition: Mapped[str] = mapped_column(String(180))
    episode: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16))  # urgent | review_queue | budget | spike | test
    title: Mapped[str] = mapped_column(String(300))
    facts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: figures and ids, never ticket text
    ticket_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: the alert outlives an erased ticket
    team: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the condition stopped holding

    __table_args__ = (
        Index("ix_alert_events_condition_episode", "condition", "episode"),
        Index("ix_alert_events_ticket_id", "ticket_id"),  # which urgent tickets were announced already
    )


class AlertDelivery(Base):
    """The outbox: one row per event and channel (webhook, email), sent once. `pending` until a worker claims it
    (`sending`, a compare-and-set), then `sent`, or `pending` again with `next_at` backed off after a failed
    attempt, or `failed` once it gave up. A claim older than the lease is taken over (its process died)."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_id", "channel", name="uq_alert_deliveries_event_channel"),
        Index("ix_alert_deliveries_state_next", "state", "next_at"),
    )


class AlertAttempt(Base):
    """Every attempt to deliver an alert: when, by whom, how it went (an HTTP or SMTP status and the error's kind;
    never the webhook's address, which carries its token)."""

    __tablename__ = "alert_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("alert_deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt
    worker: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer)  # HTTP or SMTP reply code, when there was one
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)


class Pilot(Base):
    """A pilot on a team's own history (triage/work/pilot.py): a seeded sample of a labelled file run through the
    routes worth comparing, as recorded runs (purpose pilot) under its own cap, queued by a lead and worked by the
    CLI or the dashboard's worker. `spec` (JSON) holds the sample's rows with their labels, the routes' runs and
    the settings it was measured with; `result` (JSON) the figures once it ended."""

    __tablename__ = "pilots"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(255))  # the labelled file's name
    started_by: Mapped[str] = mapped_column(String(120))
    # preparing | queued | running | finished | stopped | failed (db/pilots.py)
    status: Mapped[str] = mapped_column(String(16), default="preparing")
    message: Mapped[str | None] = mapped_column(Text)  # why it stopped or failed
    sample: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    cap_pico: Mapped[int] = mapped_column(BigInteger)  # its own cap: never spends past it, on any path
    volume: Mapped[int | None] = mapped_column(Integer)  # tickets a month the figures are projected at
    spec: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(120))  # the process working it (status running)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_pilots_status", "status", "id"),)
