"""How good are the models, measured against operators: accuracy, agreement, calibration, and what another
escalation threshold would have done (replayed on stored answers, no new calls)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from db import quality as q
from db.engine import Database
from triage.domain import from_pico
from triage.local.head import expected_calibration_error

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


def measure(db: Database, bins: int = 10) -> Quality:
    """Measured on the newest labelled tickets' answers (up to db.quality.LIMIT answers)."""
    with db.read() as s:
        rows = q.labelled_answers(s)
    return from_answers(rows, bins)


def latest_answers(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The labelled answers from raw labelled calls (db.quality.labelled_calls, in call order): each ticket's
    latest answer per tier, newest tickets first. What the labelled_answers rollup holds."""
    latest: dict[tuple[int, int], dict[str, Any]] = {}
    for r in calls:
        latest[(r["ticket_id"], r["tier"])] = r  # call order: the latest wins
    return [(t, tier, r["truth"], r["label"], r["confidence"], r["cost_pico"])
            for (t, tier), r in sorted(latest.items(), key=lambda kv: (-kv[0][0], -kv[0][1]))]


def from_answers(rows: list[tuple[Any, ...]], bins: int = 10) -> Quality:
    """The figures from (ticket_id, tier, truth, label, confidence, cost_pico) rows, one per ticket and tier,
    newest ticket first. Vectorised: a row costs microseconds, so the page stays fast at the row limit."""
    if not rows:
        return Quality(0, [], [], {"escalated": 0, "flipped": 0, "sonnet_right": 0, "haiku_right": 0}, [])
    ticket, tier, truth, label, confidence, cost = (list(c) for c in zip(*rows, strict=True))
    a = _Answers(np.array(ticket), np.array(tier), np.array(truth, dtype=object), np.array(label, dtype=object),
                 np.array([c or 0.0 for c in confidence], dtype=float), cost)
    per_tier, reliability = [], []
    for t in (0, 1, 2):
        m = (a.tier == t) & a.has_label
        if not m.any():
            continue
        conf, correct = a.confidence[m], a.label[m] == a.truth[m]
        correct = correct.astype(bool)
        per_tier.append({"tier": t, "name": TIER_NAME[t], "n": int(m.sum()), "accuracy": float(correct.mean()),
                         "ece": expected_calibration_error(conf, correct), "mean_confidence": float(conf.mean())})
        edges = np.linspace(0, 1, bins + 1)
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            b = (conf >= lo) & ((conf < hi) if hi < 1 else (conf <= hi))
            if b.any():
                reliability.append({"tier": t, "name": TIER_NAME[t], "bin_mid": float((lo + hi) / 2),
                                    "confidence": float(conf[b].mean()), "accuracy": float(correct[b].mean()),
                                    "n": int(b.sum())})
    return Quality(len(np.unique(a.ticket)), per_tier, reliability, _flips(a), _whatif(a))


class _Answers:
    """Column arrays of the labelled answers, and where each tier-1 answer's ticket has a tier-2 answer."""

    def __init__(self, ticket: np.ndarray, tier: np.ndarray, truth: np.ndarray, label: np.ndarray,
                 confidence: np.ndarray, cost: list[int]):
        self.ticket, self.tier, self.truth, self.label, self.confidence = ticket, tier, truth, label, confidence
        self.cost = cost  # Python ints: sums stay exact
        self.has_label = np.array([x is not None for x in label], dtype=bool)
        self.h, self.s = np.flatnonzero(tier == 1), np.flatnonzero(tier == 2)  # row indices, newest first
        order = np.argsort(ticket[self.s], kind="stable")
        pos = np.searchsorted(ticket[self.s], ticket[self.h], sorter=order)
        pos = np.minimum(pos, max(len(self.s) - 1, 0))
        match = order[pos] if len(self.s) else np.zeros(len(self.h), dtype=int)
        self.h_has_s = (ticket[self.s][match] == ticket[self.h]) if len(self.s) else np.zeros(len(self.h), bool)
        self.h_s = self.s[match] if len(self.s) else match  # the tier-2 row of each tier-1 row's ticket


def _truthy(labels: np.ndarray) -> np.ndarray:
    return np.array([bool(x) for x in labels], dtype=bool)


def _flips(a: _Answers) -> dict[str, Any]:
    """Tickets both tiers labelled: how often Sonnet changed Haiku's label, and who the operator sided with."""
    both = a.h_has_s & _truthy(a.label[a.h]) & _truthy(a.label[a.h_s])
    h, s = a.h[both], a.h_s[both]
    flipped = a.label[h] != a.label[s]
    return {"escalated": int(both.sum()), "flipped": int(flipped.sum()),
            "sonnet_right": int((a.label[s][flipped] == a.truth[s][flipped]).sum()),
            "haiku_right": int((a.label[h][flipped] == a.truth[h][flipped]).sum())}


def _whatif(a: _Answers) -> list[dict[str, Any]]:
    """Replay: escalate when Haiku's confidence is under t; use Sonnet's stored answer where there is one."""
    keep = a.has_label[a.h]
    haiku, has_sonnet, sonnet_row = a.h[keep], a.h_has_s[keep], a.h_s[keep]
    if not len(haiku):
        return []
    sonnet_pico = [a.cost[i] for i in a.s]
    avg_sonnet = from_pico(sum(sonnet_pico)) / len(sonnet_pico) if sonnet_pico else None  # exact sums
    haiku_cost = from_pico(sum(a.cost[i] for i in haiku)) / len(haiku)
    conf = a.confidence[haiku]
    haiku_right = (a.label[haiku] == a.truth[haiku]).astype(bool)
    sonnet_right = has_sonnet & (a.label[sonnet_row] == a.truth[haiku]).astype(bool)
    out = []
    for t in [round(0.5 + 0.05 * i, 2) for i in range(10)]:
        escalate = conf < t
        answered = ~escalate | has_sonnet  # an escalated ticket without a Sonnet answer cannot be replayed
        n_escalated, n_answered = int(escalate.sum()), int(answered.sum())
        right = int(np.where(escalate, sonnet_right, haiku_right)[answered].sum())
        cost = haiku_cost + (avg_sonnet or Decimal(0)) * n_escalated / len(haiku)
        out.append({"threshold": t, "escalation_rate": n_escalated / len(haiku),
                    "accuracy": right / n_answered if n_answered else None, "replayed": n_answered,
                    "cost_per_ticket": cost if avg_sonnet is not None or not n_escalated else None})
    return out
