"""How good are the models, measured against operators: accuracy, agreement, calibration, and what another
escalation threshold would have done (replayed on stored answers, no new calls)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from db import quality as q
from db import rollups
from db.engine import Database
from triage.domain import from_pico

TIER_NAME = {0: "local model", 1: "Haiku", 2: "Sonnet"}


@dataclass
class Quality:
    n_tickets: int
    per_tier: list[dict[str, Any]]  # tier, model, n, accuracy, ece
    reliability: list[dict[str, Any]]  # tier, bin_mid, confidence, accuracy, n
    flips: dict[str, int]  # Sonnet disagreed with Haiku: how often the operator sided with Sonnet
    whatif: list[dict[str, Any]]  # threshold, escalation_rate, accuracy, cost_per_ticket


def data_version(db: Database) -> int:
    """Changes whenever `measure` could give another answer (an operator label, a call on a labelled ticket)."""
    with db.read() as s:
        return q.labels_version(s)


THRESHOLDS = rollups.THRESHOLDS  # the what-if's escalation thresholds


def measure(db: Database) -> Quality:
    """Measured on every labelled ticket's latest answer per tier, from counts kept as labels and calls arrive:
    the page costs the same whether operators labelled a thousand tickets or a million."""
    edges = rollups.QUALITY_EDGES
    with db.read() as s:
        stats = q.quality_stats(s)
    if not stats["tickets"]:
        return Quality(0, [], [], {"escalated": 0, "flipped": 0, "sonnet_right": 0, "haiku_right": 0}, [])
    per_tier, reliability = [], []
    for tier in (0, 1, 2):
        rows = [r for r in stats["bins"] if r[0] == tier]
        n = sum(r[3] for r in rows)
        if not n:
            continue
        ece = 0.0
        for b in range(len(edges) - 1):  # expected calibration error, as triage.local.head computes it
            group = [r for r in rows if r[2] == b]
            k = sum(r[3] for r in group)
            if k:
                ece += k / n * abs(sum(r[4] for r in group) / k - sum(r[5] for r in group) / k)
        per_tier.append({"tier": tier, "name": TIER_NAME[tier], "n": n, "accuracy": sum(r[5] for r in rows) / n,
                         "ece": ece, "mean_confidence": sum(r[4] for r in rows) / n})
        for b, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
            group = [r for r in rows if r[1] == b]
            k = sum(r[3] for r in group)
            if k:
                reliability.append({"tier": tier, "name": TIER_NAME[tier], "bin_mid": (lo + hi) / 2,
                                    "confidence": sum(r[4] for r in group) / k,
                                    "accuracy": sum(r[5] for r in group) / k, "n": k})
    pairs = stats["pairs"]  # (above, has_sonnet, haiku_right, sonnet_right, both, differ, n, haiku_pico)
    flipped = [r for r in pairs if r[4] and r[5]]
    flips = {"escalated": sum(r[6] for r in pairs if r[4]), "flipped": sum(r[6] for r in flipped),
             "sonnet_right": sum(r[6] for r in flipped if r[3]), "haiku_right": sum(r[6] for r in flipped if r[2])}
    return Quality(stats["tickets"], per_tier, reliability, flips, _whatif(pairs, stats["sonnet"]))


def _whatif(pairs: list[tuple[int, ...]], sonnet: tuple[int, int]) -> list[dict[str, Any]]:
    """Replay: escalate when Haiku's confidence is under t; use Sonnet's stored answer where there is one."""
    n_haiku = sum(r[6] for r in pairs)
    if not n_haiku:
        return []
    n_sonnet, sonnet_pico = sonnet
    avg_sonnet = from_pico(int(sonnet_pico)) / n_sonnet if n_sonnet else None  # exact sums
    haiku_cost = from_pico(sum(int(r[7] or 0) for r in pairs)) / n_haiku
    out = []
    for i, t in enumerate(THRESHOLDS):
        escalated = [r for r in pairs if r[0] <= i]  # Haiku's confidence under t
        kept = [r for r in pairs if r[0] > i]
        n_escalated = sum(r[6] for r in escalated)
        n_answered = sum(r[6] for r in kept) + sum(r[6] for r in escalated if r[1])  # no Sonnet answer: no replay
        right = sum(r[6] for r in kept if r[2]) + sum(r[6] for r in escalated if r[1] and r[3])
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * n_escalated / n_haiku
        out.append({"threshold": t, "escalation_rate": n_escalated / n_haiku,
                    "accuracy": right / n_answered if n_answered else None, "replayed": n_answered,
                    "cost_per_ticket": cost if avg_sonnet is not None or not n_escalated else None})
    return out
