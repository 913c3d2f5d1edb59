"""Tier 1's few-shot examples from the database: operator-labelled tickets and their stored local vectors
(ticket_vectors, all-MiniLM-L6-v2), loaded once per labels version and shared by every call of a process.

`load` gives None while no operator label exists: the request is then exactly the one without few-shot."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np

from db import fewshot
from db.engine import Database
from db.models import text_hash
from triage.local.embedder import MODEL_ID, Embedder, from_bytes, to_bytes
from triage.routing import gate, prompts, redact
from triage.routing.fewshot import Example, ExampleBank, Shots, fill
from triage.taxonomy import Taxonomy

log = logging.getLogger(__name__)


class FewShotSource:
    """The labelled examples of one taxonomy: the fixed representative set and, per ticket, its k nearest."""

    def __init__(self, db: Database, bank: ExampleBank, representative: tuple[Example, ...], k: int,
                 embedder: Embedder, hashes: dict[int, str | None]):
        self.db, self.bank, self.representative, self.k, self.embedder = db, bank, representative, k, embedder
        self.hashes = hashes  # ticket id -> its text hash
        self.fixed_ids = {e.ticket_id for e in representative}
        # the k examples whose block is the largest: no k retrieved ones can make a longer request
        size = {e.ticket_id: prompts.estimate_tokens(json.dumps(prompts.examples_block([(e.text, e.label)], "")))
                for e in bank.examples if e.ticket_id not in self.fixed_ids}
        largest = sorted((e for e in bank.examples if e.ticket_id in size), key=lambda e: (-size[e.ticket_id],
                                                                                          e.ticket_id))
        self._worst = Shots(representative, tuple(largest[:k]))

    def fixed(self) -> Shots:
        return Shots(self.representative)

    def worst_case(self) -> Shots:
        """Shots at least as long as any ticket's, for the worst-case cost reserved before a call."""
        return self._worst

    def shots_for(self, text: str) -> Shots:
        """The representative set and the k operator-labelled tickets nearest to `text` (cosine of the stored
        vectors), never the ticket itself nor any ticket with the same text (their label would be the answer)."""
        if self.k <= 0:
            return Shots(self.representative)
        h = text_hash(text)
        with self.db.read() as s:
            ids, stored = fewshot.same_text(s, h, MODEL_ID)
        if stored is not None:
            vector = from_bytes(stored)
        else:
            vector = self.embedder.embed([text])[0]
            if ids:  # embedded once: the local tier and later calls read it
                with self.db.transaction() as s:
                    from db import vectors

                    vectors.store(s, {tid: to_bytes(vector) for tid in ids}, MODEL_ID)
        banned = self.fixed_ids | set(ids) | {tid for tid, th in self.hashes.items() if th == h}
        return Shots(self.representative, tuple(self.bank.nearest(vector, self.k, exclude=sorted(banned))))


_cache: dict[tuple[str, str, int, str, redact.MaskPolicy], tuple[tuple[int, int], FewShotSource | None]] = {}
_lock = threading.Lock()


def load(db: Database, taxonomy: Taxonomy, k: int, model: str, embedder: Embedder | None = None,
         policy: redact.MaskPolicy = redact.DEFAULT_POLICY) -> FewShotSource | None:
    """The examples for `model`'s requests (None without operator labels), their texts prepared by the gate's
    step with `policy`, the gate's masking (triage.routing.gate.prepare: masked, block tags neutralised), as
    requests carry them, so the fixed set and the worst case are sized on what is sent. Cached until an operator label
    changes: a new label or correction reloads them (and may change the representative set, so the next call writes
    the prompt cache once)."""
    if k <= 0:
        return None
    from triage.local.tier import ensure_vectors, taxonomy_key

    with db.read() as s:
        version = fewshot.labels_stamp(s)
    key = (db.url, taxonomy_key(taxonomy), k, model, policy)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    with db.read() as s:
        rows = fewshot.operator_labelled(s, taxonomy.names)
    source: FewShotSource | None = None
    if rows:
        if embedder is None:
            from triage.local.embedder import shared

            embedder = shared()
        vecs = ensure_vectors(db, [r[0] for r in rows], embedder)
        bank = ExampleBank([Example(tid, gate.prepare(txt, policy), label) for tid, txt, label, _ in rows],
                           np.stack([vecs[r[0]] for r in rows]))
        source = FewShotSource(db, bank, fill(bank, prompts.system_prompt(taxonomy), model), k,
                               embedder, {tid: th for tid, _, _, th in rows})
        log.info("few-shot: %d operator-labelled examples, %d fixed in the prefix", len(bank),
                 len(source.representative))
    with _lock:
        _cache[key] = (version, source)
    return source


def operator_labels(db: Database, taxonomy: Taxonomy) -> int:
    """How many tickets carry an operator's label from the taxonomy: the examples few-shot can draw on."""
    with db.read() as s:
        return fewshot.count_operator_labelled(s, taxonomy.names)
