"""Masking personal data (triage.routing.redact): recall per type and false positives on look-alikes, on the seeded
set of tests/support/pii_corpus.py, and the CPU cost per ticket; each printed against a naive regex-only masker
(no checksums, no parser) measured in the same run.

    .venv/bin/python -m bench.bench_masking [--seeds 21,1,2] [--tickets 400]

Recall: a value counts when one span of its type covers it whole. False positives: a look-alike (order number,
date, amount, version string, tracking code) counts when any span touches it. Cost: CPU time (process_time, so the
load of a shared box inflates it less) per ticket, on the sample tickets (triage/samples/tickets.jsonl, ordinary
support text) and on tickets full of personal data (three values and two look-alikes each), the phone parser's
cache cleared first. Not part of the test pass/fail; the goals are asserted in tests/triage/routing/test_redact.py.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.support import pii_corpus
from triage.routing import redact

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="21,1,2")
    ap.add_argument("--tickets", type=int, default=400)
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


if __name__ == "__main__":
    main()
