"""Masking personal data (triage.routing.redact): recall per type and false positives on look-alikes, on the seeded
set of tests/support/pii_corpus.py, and the CPU cost per ticket; each printed against a naive regex-only masker
(no checksums, no parser) measured in the same run.

    .venv/bin/python -m bench.bench_masking [--seeds 21,1,2] [--tickets 400]

Recall: a value counts when one span of its type covers it whole. False positives: a look-alike (order number,
date, amount, version string, tracking code) counts when any span touches it. Cost: CPU time (process_time, so the
load of a shared box inflates it less) per ticket, on the sample tickets (triage/samples/tickets.jsonl, ordinary
support text) and on tickets full of personal data (three values and two look-alikes each), the phone parser's
cache cleared first. Not part of the test pass/fail; the goals are asserted in tests/triage/routing/test_redact.py.

Accuracy with masking on and off, in the same run: the local tier (all-MiniLM-L6-v2 on the CPU, triage/local/; no
network) classifies each ticket as a request carries it (`gate.prepare`: masked under the default policy, or under a
policy with every type off, then neutralised), scored against the ticket's label with the Quality page's figures
(accuracy, ECE from `triage.routing.calibration.ece`). Two heads: zero-shot (the taxonomy's descriptions and the
built-in examples: the local tier before any operator label) and trained on the other folds' labels (5-fold, texts in
the same form as the scored ones). Two data sets: the sample tickets as they are (few personal values), and the
same tickets each with one to three personal values added the way customers write them (a card "so you can find the
charge", an e-mail, a phone, an IBAN; tests/support/pii_corpus.py `with_personal_values`, seeded by --seed).
`--skip-accuracy` leaves this part out (it loads the model: ~20 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support import pii_corpus
from triage.routing import gate, redact
from triage.routing.calibration import ece

SAMPLES = Path(__file__).resolve().parent.parent / "triage" / "samples" / "tickets.jsonl"
Spans = list[tuple[int, int, str]]

_NAIVE = (  # what a first attempt looks like: shapes only
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")),
    ("CARD", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}")),
    ("PHONE", re.compile(r"\+?\(?\d[\d ().-]{5,}\d")),
)


def naive(text: str) -> Spans:
    out: Spans = []
    for kind, rx in _NAIVE:
        for m in rx.finditer(text):
            if not any(a < m.end() and m.start() < b for a, b, _ in out):
                out.append((m.start(), m.end(), kind))
    return out


def ours(text: str) -> Spans:
    return [(s.start, s.end, s.kind) for s in redact.mask(text).spans]


def quality(find: Callable[[str], Spans], seeds: list[int]) -> tuple[dict[str, float], dict[str, float], float]:
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    touched: Counter[str] = Counter()
    looked: Counter[str] = Counter()
    for seed in seeds:
        for s in pii_corpus.positives(seed):
            total[s.kind] += 1
            hit[s.kind] += any(a <= s.start and s.end <= b and k == s.kind for a, b, k in find(s.text))
        for s in pii_corpus.negatives(seed):
            looked[s.kind] += 1
            touched[s.kind] += any(a < s.end and s.start < b for a, b, _ in find(s.text))
    recall = {k: hit[k] / total[k] for k in sorted(total)}
    per_family = {k: touched[k] / looked[k] for k in sorted(looked)}
    return recall, per_family, sum(touched.values()) / sum(looked.values())


def cost(find: Callable[[str], Spans], texts: list[str]) -> float:
    redact._phone_key.cache_clear()
    started = time.process_time()
    for text in texts:
        find(text)
    return (time.process_time() - started) / len(texts) * 1e6


OFF = redact.MaskPolicy(cards=False, ibans=False, emails=False, phones=False, ips=False)  # masking off, all else equal
FOLDS = 5


@dataclass(frozen=True)
class Scored:
    """One row of the accuracy table: a data set, a head, masking on or off."""

    data: str
    head: str
    masking: str
    n: int
    masked: int  # values masking replaced in these texts
    accuracy: float
    ece: float


def scored(truth: Sequence[str], said: Sequence[str], confidence: np.ndarray) -> tuple[float, float]:
    right = np.array([t == p for t, p in zip(truth, said, strict=True)])
    return float(right.mean()), ece(confidence, right)


def local_accuracy(texts: Sequence[str], truth: Sequence[str], data: str, seed: int) -> list[Scored]:
    """The local tier on `texts` with masking off and on: zero-shot, and trained on the other folds' labels."""
    from triage import taxonomy
    from triage.local import tier as local
    from triage.local.embedder import shared

    tax, embedder = taxonomy.default(), shared()
    seeds = local.seeds_for(embedder, tax)
    zero = local.build_head(seeds, tax, [])
    fold = np.random.default_rng(seed).permutation(len(texts)) % FOLDS
    out = []
    for masking, policy in (("off", OFF), ("on", redact.DEFAULT_POLICY)):
        X = embedder.embed([gate.prepare(t, policy) for t in texts])
        masked = sum(redact.mask(t, policy).count for t in texts)
        said, conf = zero.predict(X)
        out.append(Scored(data, "zero-shot", masking, len(texts), masked, *scored(truth, said, conf)))
        said_cv: list[str] = [""] * len(texts)
        conf_cv = np.zeros(len(texts))
        for f in range(FOLDS):
            head = local.build_head(seeds, tax, [(X[i], truth[i], "operator") for i in np.where(fold != f)[0]])
            test = np.where(fold == f)[0]
            labels, c = head.predict(X[test])
            for i, label, value in zip(test, labels, c, strict=True):
                said_cv[i], conf_cv[i] = label, float(value)
        out.append(Scored(data, f"{FOLDS}-fold trained", masking, len(texts), masked,
                          *scored(truth, said_cv, conf_cv)))
    return out


def accuracy_table(seed: int) -> list[str]:
    from triage import taxonomy

    tax = taxonomy.default()
    rows = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["label"] in tax]
    texts, truth = [str(r["text"]) for r in rows], [str(r["label"]) for r in rows]
    variant = pii_corpus.with_personal_values(texts, seed)
    results = (local_accuracy(texts, truth, "sample set", seed)
               + local_accuracy([t for t, _ in variant], truth, "+ personal values", seed))
    lines = [f"accuracy with masking off and on: the local tier (all-MiniLM-L6-v2, CPU) on triage/samples/"
             f"{SAMPLES.name} ({len(texts)} labelled tickets) as they are, and each with 1-3 personal values added as "
             f"customers write them ({sum(len(v) for _, v in variant)} values: cards, e-mails, phones, IBANs; "
             f"seed {seed})",
             f"{'data':<18} {'head':<16} {'masking':>7} {'n':>5} {'masked':>7} {'accuracy':>9} {'ECE':>7}"]
    lines += [f"{r.data:<18} {r.head:<16} {r.masking:>7} {r.n:>5} {r.masked:>7} {r.accuracy:>9.3f} {r.ece:>7.3f}"
              for r in sorted(results, key=lambda r: (r.data != "sample set", r.head, r.masking))]
    by = {(r.data, r.head, r.masking): r for r in results}
    for data, head, _ in [k for k in by if k[2] == "off"]:
        off, on = by[data, head, "off"], by[data, head, "on"]
        lines.append(f"{data}, {head}: masking on {on.accuracy - off.accuracy:+.3f} accuracy, "
                     f"{on.ece - off.ece:+.3f} ECE against off")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="21,1,2")
    ap.add_argument("--tickets", type=int, default=400)
    ap.add_argument("--seed", type=int, default=21, help="the personal values added for the accuracy table")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    n_pos = sum(len(pii_corpus.positives(s)) for s in seeds)
    n_neg = sum(len(pii_corpus.negatives(s)) for s in seeds)
    print(f"seeded set: {n_pos} values, {n_neg} look-alikes (seeds {args.seeds})")
    results = {name: quality(find, seeds) for name, find in (("masker", ours), ("naive regex", naive))}
    print(f"{'recall':<12}" + "".join(f"{k:>9}" for k in results["masker"][0]))
    for name, (recall, _, _) in results.items():
        print(f"{name:<12}" + "".join(f"{v:>9.3f}" for v in recall.values()))
    print(f"{'look-alikes touched':<21}" + "".join(f"{k:>9}" for k in results["masker"][1]) + "      all")
    for name, (_, per_family, rate) in results.items():
        print(f"{name:<21}" + "".join(f"{v:>9.3f}" for v in per_family.values()) + f"{rate:>9.3f}")
    ours_fp, naive_fp = results["masker"][2], results["naive regex"][2]
    print(f"false positives: {ours_fp:.2%} against {naive_fp:.2%} for the naive masker "
          f"({naive_fp / ours_fp:.0f}x fewer)" if ours_fp else f"false positives: none ({naive_fp:.2%} naive)")
    samples = [str(json.loads(line).get("text") or "") for line in SAMPLES.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    dense = pii_corpus.tickets(seeds[0], args.tickets)
    for label, texts in (("sample tickets", samples), ("tickets full of personal data", dense)):
        ours_us, naive_us = cost(ours, texts), cost(naive, texts)
        chars = sum(map(len, texts)) / len(texts)
        print(f"cost per ticket, {label} ({len(texts)}, {chars:.0f} characters on average): {ours_us:.0f} us CPU "
              f"({ours_us / naive_us:.1f}x the naive masker's {naive_us:.0f} us)")
    if not args.skip_accuracy:
        print("\n".join(accuracy_table(args.seed)))


if __name__ == "__main__":
    main()
