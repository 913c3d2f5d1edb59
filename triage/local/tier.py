"""The local tier as a service: a zero-shot head from the taxonomy, retraining from labels in the database,
batch classification of the queue without an API key, and a tier-0 provider for the router."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from db import calls, queue, settings, vectors
from db.engine import Database
from triage import audit
from triage.access import Action, Actor, require
from triage.domain import OK, CallResult, Outcome
from triage.local import curve
from triage.local.embedder import MODEL_ID, Embedder, from_bytes, to_bytes
from triage.local.examples import VOICES
from triage.local.head import DESCRIPTION, Head, fit
from triage.local.head import MIN_CALIBRATION as MIN_CALIBRATION  # shown in Settings
from triage.routing.gate import Reservation
from triage.routing.router import decide
from triage.taxonomy import Taxonomy

LOCAL_MODEL = "local-minilm"  # model id recorded on the tier-0 calls (priced at $0 in the price table)
WEIGHTS = {"operator": 2.0, "tier2": 1.5, "tier1": 1.0}  # human labels count most
RETRAIN_EVERY = 50  # new usable labels since the last training
SETTING = "local_head"
HEAD_VERSION = 3  # 3: the zero-shot map for taxonomies without examples (triage.local.zero_shot); older heads retrain
TIER0_SETTING = "tier0"
CURVE_MIN_LABELS = curve.MIN_LABELS
TIER0_DEFAULTS = {"enabled": False, "target_accuracy": 0.9, "threshold": 0.9, "min_labels": 30}

_cache: dict[tuple[str, str], tuple[str, Head]] = {}
_cache_lock = threading.Lock()

OnTicket = Callable[[int, Outcome], None]


def taxonomy_key(taxonomy: Taxonomy) -> str:
    return hashlib.sha256(json.dumps(taxonomy.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def seed_examples(taxonomy: Taxonomy) -> tuple[list[str], list[str], list[str]]:
    """Each category's description, plus the built-in example tickets of categories that have them: texts,
    labels, and each row's group (its voice, or DESCRIPTION for the description rows)."""
    texts, labels, groups = [], [], []
    for c in taxonomy.categories:
        texts.append(description_text(c.name, c.description))
        labels.append(c.name)
        groups.append(DESCRIPTION)
    for voice, examples in VOICES.items():
        for c in taxonomy.categories:
            for example in examples.get(c.name, []):
                texts.append(example)
                labels.append(c.name)
                groups.append(voice)
    return texts, labels, groups


def description_text(name: str, description: str) -> str:
    return f"{name.replace('_', ' ')}: {description}"


@dataclass
class Seeds:
    X: np.ndarray
    labels: list[str]
    groups: list[str | None]
    desc: np.ndarray  # (categories, dim): the description rows, in taxonomy order


_seeds: dict[tuple[str, ...], Seeds] = {}


def seeds_for(embedder: Embedder, taxonomy: Taxonomy) -> Seeds:
    """The embedded seed rows, computed once per process and taxonomy."""
    texts, labels, groups = seed_examples(taxonomy)
    key = (MODEL_ID, *texts)
    with _cache_lock:
        hit = _seeds.get(key)
    if hit is None:
        X = embedder.embed(texts)
        hit = Seeds(X, labels, list(groups), X[:len(taxonomy.names)].copy())
        with _cache_lock:
            _seeds[key] = hit
    return hit


def build_head(seeds: Seeds, taxonomy: Taxonomy, labelled: list[tuple[np.ndarray, str, str]]) -> Head:
    """Seed rows plus (vector, label, source) rows, trained and calibrated (triage.local.head.fit)."""
    X, labels, groups = seeds.X, list(seeds.labels), list(seeds.groups)
    w = [1.0] * len(labels)
    human = [False] * len(labels)
    if labelled:
        X = np.vstack([X, np.stack([v for v, _, _ in labelled])])
        labels += [lab for _, lab, _ in labelled]
        groups += [None] * len(labelled)
        w += [WEIGHTS.get(src, 1.0) for _, _, src in labelled]
        human += [src == "operator" for _, _, src in labelled]
    return fit(X, labels, np.array(w, dtype=np.float32), taxonomy.names, np.array(human), groups, seeds.desc)


def train_head(embedder: Embedder, taxonomy: Taxonomy, labelled: list[tuple[np.ndarray, str, str]]) -> Head:
    """Seed examples plus (vector, label, source) rows from the database. With enough operator labels, the
    learning curve (triage.local.curve) on those is measured too and kept with the head's metrics."""
    seeds = seeds_for(embedder, taxonomy)
    head = build_head(seeds, taxonomy, labelled)
    counts: dict[str, int] = {}
    for _, _, src in labelled:
        counts[src] = counts.get(src, 0) + 1
    head.metrics.update(labels=counts, trained_at=datetime.now(UTC).isoformat(timespec="seconds"))
    operator = [(v, lab) for v, lab, src in labelled if src == "operator"]
    if len(operator) >= curve.MIN_LABELS:
        def on_labels(X: np.ndarray, labels: list[str]) -> Head:
            return build_head(seeds, taxonomy, [(x, lab, "operator") for x, lab in zip(X, labels, strict=True)])

        head.metrics["learning_curve"] = curve.learning_curve(on_labels, np.stack([v for v, _ in operator]),
                                                              [lab for _, lab in operator])
    return head


def save_head(db: Database, taxonomy: Taxonomy, head: Head, n_labels: int) -> None:
    with db.transaction() as s:
        settings.put(s, SETTING, {"taxonomy_key": taxonomy_key(taxonomy), "version": HEAD_VERSION,
                                     "head": head.to_dict(), "labels_at_training": n_labels}, operator="local-tier")


def current_head(db: Database, taxonomy: Taxonomy, embedder: Embedder) -> Head:
    """The stored head for this taxonomy, or one trained (and stored) from its descriptions, the built-in examples
    and the labels in the database when none fits (first use, a new taxonomy, a head from an older version)."""
    key = taxonomy_key(taxonomy)
    with db.read() as s:
        stored = settings.get(s, SETTING)
    usable = bool(stored) and stored.get("taxonomy_key") == key and stored.get("version") == HEAD_VERSION
    stamp = json.dumps(stored.get("head", {}).get("metrics", {}), sort_keys=True) if usable else ""
    with _cache_lock:
        hit = _cache.get((db.url, key))
        if usable and hit and hit[0] == stamp:
            return hit[1]
    if usable:
        head = Head.from_dict(stored["head"])
    else:
        head = train_from_labels(db, taxonomy, embedder)
        stamp = json.dumps(head.metrics, sort_keys=True)
    with _cache_lock:
        _cache[(db.url, key)] = (stamp, head)
    return head


def ensure_vectors(db: Database, ticket_ids: list[int], embedder: Embedder) -> dict[int, np.ndarray]:
    """Each ticket is embedded once; later calls read the stored vector."""
    with db.read() as s:
        have = {tid: from_bytes(v) for tid, v in vectors.vectors_for(s, ticket_ids, MODEL_ID).items()}
        missing = [t for t in ticket_ids if t not in have]
        texts = vectors.text_of(s, missing) if missing else {}
    if missing:
        embedded = embedder.embed([texts[t] for t in missing])
        with db.transaction() as s:
            vectors.store(s, {t: to_bytes(v) for t, v in zip(missing, embedded, strict=True)}, MODEL_ID)
        have.update(dict(zip(missing, embedded, strict=True)))
    return have


def retrain(db: Database, taxonomy: Taxonomy, embedder: Embedder, *, actor: Actor) -> Head:
    """A lead's "Retrain now" (or `triage train`), recorded in the audit trail."""
    require(actor, Action.RETRAIN)
    head = train_from_labels(db, taxonomy, embedder)
    with db.transaction() as s:
        audit.record(s, actor, audit.RETRAIN, labels=head.metrics.get("labels") or {},
                     n_train=head.metrics.get("n_train"))
    return head


def train_from_labels(db: Database, taxonomy: Taxonomy, embedder: Embedder) -> Head:
    """Train and store a head on the labels in the database (also run on its own after RETRAIN_EVERY labels)."""
    with db.read() as s:
        rows = vectors.labelled(s, taxonomy.names)
    vecs = ensure_vectors(db, [r[0] for r in rows], embedder)
    head = train_head(embedder, taxonomy, [(vecs[tid], label, src) for tid, _, label, src in rows])
    save_head(db, taxonomy, head, len(rows))
    return head


def maybe_retrain(db: Database, taxonomy: Taxonomy, embedder: Embedder, every: int = RETRAIN_EVERY) -> Head | None:
    with db.read() as s:
        stored = settings.get(s, SETTING) or {}
        n = len(vectors.labelled(s, taxonomy.names))
    current = stored.get("taxonomy_key") == taxonomy_key(taxonomy) and stored.get("version") == HEAD_VERSION
    if current and n - stored.get("labels_at_training", 0) < every:
        return None
    return train_from_labels(db, taxonomy, embedder)


def stored_metrics(db: Database) -> dict[str, Any] | None:
    """What the last training measured, without loading the model (for the Settings page)."""
    with db.read() as s:
        stored = settings.get(s, SETTING)
    return stored["head"].get("metrics", {}) if stored else None


def tier0_config(db: Database) -> dict[str, Any]:
    with db.read() as s:
        return {**TIER0_DEFAULTS, **(settings.get(s, TIER0_SETTING) or {})}


def save_tier0_config(db: Database, *, actor: Actor, **values: object) -> None:
    """A lead turns tier 0 on or off and sets its targets; the audit trail keeps each changed value (from, to)."""
    require(actor, Action.CONFIGURE)
    before = tier0_config(db)
    with db.transaction() as s:
        settings.put(s, TIER0_SETTING, {**before, **values}, operator=actor.identity)
        audit.record(s, actor, audit.SETTINGS_TIER0,
                     changed={k: [before.get(k), v] for k, v in values.items() if before.get(k) != v})


def tier0_active(db: Database, metrics: dict[str, Any]) -> tuple[bool, str]:
    """Tier 0 answers in front of Haiku only when a lead turned it on and its measured accuracy on
    operator-labelled tickets reaches the lead's target."""
    cfg = tier0_config(db)
    n, acc = metrics.get("human_n", 0), metrics.get("human_accuracy")
    if not cfg["enabled"]:
        return False, "off"
    if n < cfg["min_labels"] or acc is None:
        return False, f"waiting for {cfg['min_labels']} operator labels (has {n})"
    if acc < cfg["target_accuracy"]:
        return False, f"accuracy {acc:.0%} on {n} operator labels is under the target {cfg['target_accuracy']:.0%}"
    return True, f"on: accuracy {acc:.0%} on {n} operator labels"


class LocalProvider:
    """Tier 0 for the router: one ticket at a time, $0, its vector handed back for storage."""

    tier = 0
    model = LOCAL_MODEL

    def __init__(self, embedder: Embedder, head: Head):
        self.embedder, self.head = embedder, head

    def worst_case_cost(self, text: str, taxonomy: Taxonomy, *, batch: bool = False) -> Decimal:
        return Decimal(0)

    async def classify(self, text: str, taxonomy: Taxonomy, *, paid: Reservation | None = None) -> CallResult:
        """Local and free: nothing to reserve (`paid` is always None, tier 0 does not pass the gate)."""
        started = time.perf_counter()
        vec = await asyncio.to_thread(self.embedder.embed, [text])
        return self.answer(vec[0], started, 1)

    def answer(self, vec: np.ndarray, started: float, batch: int) -> CallResult:
        """The call for one embedded ticket; latency is the batch's time shared out."""
        (label,), (conf,) = self.head.predict(vec[None, :])
        return CallResult(0, LOCAL_MODEL, OK, category=label, confidence=float(conf), model_returned=LOCAL_MODEL,
                          reason=f"closest to {label.replace('_', ' ')} (local model)",
                          latency_ms=int((time.perf_counter() - started) * 1000 / batch), vector=to_bytes(vec))


def answer_and_record(db: Database, provider: LocalProvider, tickets: list[tuple[int, int | None]], *,
                      threshold: float, on_ticket: OnTicket | None = None,
                      created_at: dict[int, datetime] | None = None) -> None:
    """Embed (once, stored), answer and record a batch of (ticket id, run id) in one short transaction."""
    started = time.perf_counter()
    vecs = ensure_vectors(db, [tid for tid, _ in tickets], provider.embedder)
    with db.transaction() as s:
        for tid, run_id in tickets:
            call = provider.answer(vecs[tid], started, len(tickets))
            call.vector = None  # already stored by ensure_vectors
            if created_at and tid in created_at:
                call.created_at = created_at[tid]
            calls.record_call(s, tid, run_id, call)
            outcome = decide([call], threshold)
            calls.apply_outcome(s, tid, outcome)
            if on_ticket:
                on_ticket(tid, outcome)


def classify_queue_locally(db: Database, taxonomy: Taxonomy, embedder: Embedder, *, threshold: float,
                           run_id: int | None = None, worker: str = "local", batch: int = 64,
                           on_ticket: OnTicket | None = None, local_runs_only: bool = False) -> int:
    """Classify pending tickets with the local tier only (no API key, or runs that asked for it): confident ones
    are classified, the rest go to the review queue — the operator is the escalation tier."""
    head = current_head(db, taxonomy, embedder)
    provider = LocalProvider(embedder, head)
    done = 0
    while True:
        with db.transaction() as s:
            claimed = queue.claim_pending(s, worker, batch, run_id, local=True if local_runs_only else None)
        if not claimed:
            return done
        answer_and_record(db, provider, [(c.ticket_id, c.run_id) for c in claimed], threshold=threshold,
                          on_ticket=on_ticket)
        done += len(claimed)
