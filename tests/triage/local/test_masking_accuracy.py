"""Masking does not change what the classifier decides (issue 21 item 5): the local tier (the real embedding model)
labels tickets whose only difference is a personal value the same once masked, and its accuracy on the sample set
with masking on is not below masking off. The full table (two heads, the sample set with personal values added) is
printed by bench/bench_masking.py and quoted in docs/data.md."""

from typing import Any

import numpy as np
import pytest

from tests.support import pii_corpus
from triage import taxonomy
from triage.local import tier as local
from triage.local.embedder import Embedder
from triage.local.head import Head
from triage.routing import gate, redact

TAX = taxonomy.default()
OFF = redact.MaskPolicy(cards=False, ibans=False, emails=False, phones=False, ips=False)


@pytest.fixture(scope="module")
def head(embedder: Embedder) -> Head:
    return local.build_head(local.seeds_for(embedder, TAX), TAX, [])  # the local tier before any operator label


def test_tickets_differing_only_in_personal_values_get_one_label_once_masked(
        embedder: Embedder, head: Head, samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    rows, _, _ = samples
    texts = [r["text"] for r in rows[::13]]  # 25 tickets of every category
    first = pii_corpus.with_personal_values(texts, seed=5, values_seed=1)
    second = pii_corpus.with_personal_values(texts, seed=5, values_seed=2)  # the same sentences, other values
    assert all(a != b for (a, _), (b, _) in zip(first, second, strict=True))
    shown: dict[str, Any] = {}
    for name, variant in (("first", first), ("second", second)):
        prepared = [gate.prepare(text) for text, _ in variant]
        for p, (_, values) in zip(prepared, variant, strict=True):
            assert not any(v in p for v in values), p  # every value added was masked
        shown[name] = prepared
        raw = head.proba(embedder.embed([gate.prepare(text, OFF) for text, _ in variant]))
        shown[name + " unmasked"] = raw
    a, b = (head.proba(embedder.embed(shown[n])) for n in ("first", "second"))
    np.testing.assert_allclose(a, b, atol=1e-6)  # same label, same confidence: the value made no difference
    assert not np.allclose(shown["first unmasked"], shown["second unmasked"], atol=1e-3)  # unmasked, it did


def test_masking_does_not_lower_the_local_tiers_accuracy_on_the_sample_set(
        embedder: Embedder, head: Head, samples: tuple[list[dict[str, Any]], np.ndarray, np.ndarray]) -> None:
    rows, X, truth = samples  # X: each text as written, embedded once for the session

    def as_sent(policy: redact.MaskPolicy) -> tuple[np.ndarray, list[int]]:
        # each text as a request carries it: only the texts preparing changes are embedded again
        prepared = [gate.prepare(r["text"], policy) for r in rows]
        changed = [i for i, r in enumerate(rows) if prepared[i] != r["text"]]
        out = X.copy()
        if changed:
            out[changed] = embedder.embed([prepared[i] for i in changed])
        return out, changed

    (X_off, _), (X_on, masked) = as_sent(OFF), as_sent(redact.DEFAULT_POLICY)
    assert masked  # the sample set holds a few personal values
    keep = np.array([r["label"] in TAX for r in rows])
    acc_off, acc_on = (float((np.array(head.predict(x)[0]) == truth)[keep].mean()) for x in (X_off, X_on))
    assert acc_on >= acc_off and acc_off > 0.7, (acc_on, acc_off)
